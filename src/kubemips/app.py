"""Entry points shared by tasks.py and noxfile.py: each a plain function over Settings.

``edge`` is the one place errors are caught: it prints the message and exits with the
error's code, so every command fails the same way.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import components, config, localregistry, log
from .arch import parse_arches
from .build import Report, Runner, raise_for_failures, report_json, summary
from .config import Settings
from .engine import Engine
from .errors import ConfigError, KubemipsError
from .plan import Plan, make_plan
from .registry import Registry
from .verify import verify_list


@contextmanager
def edge() -> Iterator[None]:
    """Turn a KubemipsError into one message on stderr and a non-zero exit."""
    try:
        yield
    except KubemipsError as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None


def settings(*, arch: str = "", registry: str = "", jobs: int = 0, config_file: str = "") -> Settings:
    flags: dict[str, Any] = {
        "build.architectures": list(a.name for a in parse_arches(arch)) if arch else None,
        "registry.address": registry or None,
        "build.jobs": jobs or None,
    }
    return config.load(config_file=Path(config_file) if config_file else None, flags=flags)


def embedded_server(s: Settings) -> localregistry.RegistryServer:
    return localregistry.embedded(s.embedded_listen, s.cache_dir)


def open_registry(s: Settings, *, start: bool = True) -> Registry:
    """A client for the configured registry; starts the embedded one when it is the target."""
    if s.embedded and start:
        localregistry.ensure_running(embedded_server(s))
    reg = Registry(
        s.registry,
        plain_http=s.plain_http,
        username=os.environ.get("REGISTRY_USERNAME", ""),
        password=os.environ.get("REGISTRY_PASSWORD", ""),
    )
    reg.ping()
    return reg


def catalog(s: Settings) -> components.Catalog:
    return components.load_catalog(s.root)


def plan_for(s: Settings, what: str | Sequence[str], *, version: str = "", source: str = "") -> tuple[Plan, SourceMap]:
    """The plan for WHAT; ``version``/``source`` override the one component requested."""
    cat = catalog(s)
    names = cat.resolve(what, s.default_what)
    sources: SourceMap = {}
    if version or source:
        owners = sorted({cat.image(n)[0].name for n in names})
        if len(owners) != 1:
            raise ConfigError(f"--version/--source need exactly one component in WHAT, got: {', '.join(owners)}")
        (owner,) = owners
        if version:
            cat = cat.with_version(owner, version)
        if source:
            sources[owner] = parse_source_flag(source, cat.components[owner])
        comp = cat.components[owner]
        pinned = catalog(s).components[owner].version
        if comp.version != pinned and not sources.get(owner) and comp.sources:
            raise ConfigError(
                f"{comp.file} pins its source for {owner} {pinned}; to build {comp.version}, "
                "give its tree with --source DIR or pin that version in the file"
            )
    return make_plan(names, s.arches, cat), sources


SourceMap = dict[str, dict[str, Path]]


def parse_source_flag(text: str, comp: components.Component) -> dict[str, Path]:
    """``DIR`` (the component's only or 'main' source) or ``NAME=DIR,NAME=DIR``."""
    result: dict[str, Path] = {}
    for part in text.split(","):
        name, sep, directory = part.partition("=")
        if not sep:
            name, directory = ("main" if len(comp.sources) <= 1 else ""), name
            if not name:
                raise ConfigError(
                    f"{comp.name} has several sources ({', '.join(comp.sources)}): use --source NAME=DIR,NAME=DIR"
                )
            if comp.sources:
                name = next(iter(comp.sources))
        path = Path(directory).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--source {part}: {path} is not a directory")
        if comp.sources and name not in comp.sources:
            raise ConfigError(f"--source {part}: {comp.name} has no source '{name}'; known: {', '.join(comp.sources)}")
        result[name] = path
    return result


def build(
    s: Settings,
    what: str | Sequence[str],
    *,
    force: bool = False,
    dry_run: bool = False,
    smoke: bool = True,
    report_path: str = "",
    version: str = "",
    source: str = "",
) -> Report | None:
    plan, sources = plan_for(s, what, version=version, source=source)
    if dry_run:
        log.print_block(plan.describe(s.registry))
        log.print_block("dry run: nothing built, pushed or started")
        return None
    arches = ", ".join(a.name for a in s.arches)
    with log.step(f"build {', '.join(plan.requested)} for {arches} into {s.registry}"):
        reg = open_registry(s)
        runner = Runner(s, reg, Engine(), force=force, smoke=smoke, sources=sources)
        report = runner.run(plan)
    path = Path(report_path) if report_path else s.cache_dir / "reports" / "last-build.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_json(report, reg), indent=2) + "\n")
    log.print_block("\n" + summary(report, reg) + f"\nreport: {path}")
    raise_for_failures(report)
    return report


def verify(s: Settings, what: str | Sequence[str]) -> None:
    """Re-verify the published lists of WHAT (no building)."""
    plan, _ = plan_for(s, what)
    reg = open_registry(s, start=False)
    rows = []
    failed = 0
    for node in plan.nodes:
        if node.id.endswith("/list"):
            name, tag = node.image.name, node.comp.tag
            try:
                children = verify_list(reg, name, tag, s.arches)
                rows.append([reg.ref(name, tag), ", ".join(a.name for a in children), "ok"])
            except KubemipsError as exc:
                failed += 1
                rows.append([reg.ref(name, tag), "-", f"FAILED: {exc}"])
    log.print_block(log.table(["manifest list", "arches", "result"], rows))
    if failed:
        raise KubemipsError(f"{failed} list(s) failed verification")


def show_config(s: Settings) -> None:
    rows = [[key, src] for key, src in sorted(s.sources.items())]
    log.print_block(
        f"config file : {s.config_path or '(none)'}\n"
        f"registry    : {s.registry} ({'embedded' if s.embedded else 'external'}, "
        f"{'http' if s.plain_http else 'https'})\n"
        f"arches      : {', '.join(f'{a.name} ({a.platform})' for a in s.arches)}\n"
        f"jobs        : {s.jobs}\n"
        f"debian      : {s.debian_suite}, mirror {s.debian_mirror or '(host apt sources)'}\n"
        f"cache       : {s.cache_dir}\n\n" + log.table(["setting", "from"], rows)
    )


def list_images(s: Settings) -> None:
    cat = catalog(s)
    rows = [[name, comp.tag, comp.name, comp.kind, image.base] for name, (comp, image) in sorted(cat.images.items())]
    log.print_block(log.table(["image", "tag", "component", "kind", "base"], rows))


def bundle(s: Settings, what: str, out: Path) -> list[Path]:
    """Export the .deb bundle a debian-packages component keeps, per arch, checksums verified.

    Read straight from the registry's layers: no daemon, no emulation.
    """
    import hashlib
    import io
    import tarfile

    cat = catalog(s)
    reg = open_registry(s, start=False)
    written: list[Path] = []
    for name in cat.resolve(what, ()):
        comp, _ = cat.image(name)
        inside = str(comp.build.get("bundle", "")).strip("/")
        if comp.kind != "debian-packages" or not inside:
            raise ConfigError(f'{comp.file}: {name} keeps no bundle (needs [build] bundle = "/path")')
        for arch in s.arches:
            tag = f"{comp.tag}-{arch.tag_suffix}"
            manifest = reg.get_manifest(name, tag)
            if manifest is None or manifest.is_list:
                raise KubemipsError(f"{reg.ref(name, tag)} is not in the registry: build it first")
            dest = out / f"{name}-{tag}"
            dest.mkdir(parents=True, exist_ok=True)
            found = 0
            for layer in manifest.doc["layers"]:
                with tarfile.open(fileobj=io.BytesIO(reg.get_blob(name, layer["digest"])), mode="r:gz") as tar:
                    for member in tar:
                        path = member.name.removeprefix("./")
                        if member.isreg() and path.startswith(inside + "/") and "/" not in path[len(inside) + 1 :]:
                            data = tar.extractfile(member)
                            if data is not None:
                                (dest / Path(path).name).write_bytes(data.read())
                                found += 1
            sums = dest / "SHA256SUMS"
            if not found or not sums.exists():
                raise KubemipsError(f"{reg.ref(name, tag)}: no bundle found at /{inside}")
            for line in sums.read_text().splitlines():
                digest, _, filename = line.partition("  ")
                if hashlib.sha256((dest / filename).read_bytes()).hexdigest() != digest:
                    raise KubemipsError(f"{dest / filename}: checksum does not match SHA256SUMS")
            log.info(f"{reg.ref(name, tag)}: {found - 1} packages in {dest}, checksums verified")
            written.append(dest)
    return written
