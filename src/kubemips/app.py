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

from . import auth, components, config, conformance, coverage, interrupt, localregistry, log, manifests, oci, shard
from .arch import parse_arch, parse_arches
from .build import ImageResult, Report, Runner, raise_for_failures, report_json, summary
from .builders.golang import source_names, uses_go_source
from .bundle import export_bundles
from .catalog import Catalog, load_catalog
from .config import Settings
from .engine import Engines, RegistryAuth
from .errors import ConfigError, Interrupted, KubemipsError, file_error
from .mirror import copy_missing
from .outputs import output_dir, output_file
from .plan import Plan, make_plan
from .registry import Registry, split_ref
from .verify import verify_list


@contextmanager
def edge(progress: str = "") -> Iterator[None]:
    """Turn a KubemipsError into one message on stderr and a non-zero exit.

    ``progress`` is the progress mode (`--progress`; empty: $KUBEMIPS_PROGRESS or auto)."""
    try:
        log.configure(progress)
        with interrupt.handled():
            yield
            interrupt.check("stopped after the work was done")
    except Interrupted as exc:
        sys.stdout.flush()
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        sys.stdout.flush()
        print("interrupted", file=sys.stderr, flush=True)
        raise SystemExit(Interrupted.exit_code) from None
    except KubemipsError as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
    except BrokenPipeError:
        # The reader went away (`| head`): nothing to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except OSError as exc:
        # A file-system fault (an output path that is a directory, a full disk, ...).
        sys.stdout.flush()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except Exception:  # a bug: say so, keep the details out of the way
        import tempfile
        import traceback

        sys.stdout.flush()
        fd, name = tempfile.mkstemp(prefix="kubemips-internal-error-", suffix=".log")
        with os.fdopen(fd, "w") as out:
            traceback.print_exc(file=out)
        print(f"internal error (a bug in kubemips); details in {name}", file=sys.stderr, flush=True)
        raise SystemExit(70) from None


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
    reg = Registry.configured(s)
    reg.ping()
    return reg


def engines(s: Settings, *, layer_cache: bool = True) -> Engines:
    """The Docker engines of a build, sending the configured registry its credentials when
    they pull from it (the embedded registry asks for none)."""
    if s.embedded:
        return Engines(s.engines, layer_cache=layer_cache)
    host = s.registry.split("/", 1)[0]
    return Engines(s.engines, registry_auth=RegistryAuth(host, auth.CredentialLookup(host)), layer_cache=layer_cache)


def catalog(s: Settings) -> Catalog:
    cat = load_catalog(s.root)
    for name, problem in sorted(cat.broken.items()):
        if name not in cat.components and not (s.root / "components" / name).is_dir():
            # e2e folders; the front ends name broken component files when they load them
            log.warn(problem)
    return cat


def plan_for(s: Settings, what: str | Sequence[str], *, version: str = "", source: str = "") -> tuple[Plan, SourceMap]:
    """The plan for WHAT; ``version``/``source`` override the one component requested."""
    cat = catalog(s)
    names = cat.resolve(what, s.default_what)
    sources: SourceMap = {}
    if version or source:
        owners = sorted({cat.image(n)[0].name for n in names})
        if len(owners) != 1:
            given = " and ".join(
                name for name, value in (("--version (or $VERSION)", version), ("--source", source)) if value
            )
            raise ConfigError(f"{given} apply to exactly one component, but WHAT names: {', '.join(owners)}")
        (owner,) = owners
        if version:
            cat = cat.with_version(owner, version)
        if source:
            sources[owner] = parse_source_flag(source, cat.components[owner])
        comp = cat.components[owner]
        pinned = catalog(s).components[owner].pinned_versions
        if comp.version not in pinned and not sources.get(owner) and comp.sources:
            raise ConfigError(
                f"{comp.file} pins its source for {owner} {' and '.join(pinned)}; to build {comp.version}, "
                f'give its tree with --source DIR or pin that version in the file ([versions."{comp.version}".source])'
            )
    return make_plan(names, s.arches, cat), sources


SourceMap = dict[str, dict[str, Path]]


def check_sources(plan: Plan, sources: SourceMap) -> None:
    """Every Go source a planned image compiles from is pinned or given with --source."""
    for comp in {node.comp.name: node.comp for node in plan.nodes}.values():
        needed = source_names(comp)
        missing = [n for n in needed if n not in comp.sources and n not in sources.get(comp.name, {})]
        if missing:
            flag = "--source DIR" if missing == ["main"] else "--source " + ",".join(f"{m}=DIR" for m in missing)
            names = ", ".join(f"'{m}'" for m in missing)
            raise ConfigError(
                f"{comp.file}: no pinned source {names} for {comp.name} {comp.version}; "
                f"pin it there or give a local tree with {flag}"
            )


def provided_bases(s: Settings, reg: Registry, plan: Plan, digests_dir: Path) -> dict[str, ImageResult]:
    """Base images of a sharded build: from digest records, else from the registry's tags."""
    records = shard.read_records(digests_dir) if digests_dir.is_dir() else []
    return shard.provided_bases(reg, catalog(s), plan, records, digests_dir, s.registry)


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
    digests_dir: str = "",
    k8s_source: str = "",
    as_json: bool = False,
) -> Report | None:
    """Build WHAT.  With ``digests_dir`` (sharded mode) the requested images are pushed by
    digest only, a record per image is written there, and no tag or list moves: bases
    come from records already in that directory, or from the registry.

    ``as_json``: stdout gets only JSON (the plan with ``dry_run``, else the report)."""
    plan, sources = plan_for(s, what, version=version, source=source)
    if k8s_source:
        # e2e images whose Go sources live in the Kubernetes tree build from this one.
        tree = Path(k8s_source).expanduser().resolve()
        if not tree.is_dir():
            raise ConfigError(f"--source {k8s_source}: not a directory")
        # ...and so does the component that tree is the source of (hyperkube).
        providers = {n.comp.build.get("go-source") for n in plan.nodes if n.comp.e2e}
        for node in plan.nodes:
            if (node.comp.e2e and uses_go_source(node.comp)) or node.comp.name in providers:
                sources[node.comp.name] = {"main": tree}
    check_sources(plan, sources)
    sharded = bool(digests_dir)
    if sharded:
        plan = shard.requested_nodes(plan)
    if dry_run:
        if as_json:
            print_json(plan.as_json(s.registry))
        else:
            log.print_block(plan.describe(s.registry))
            log.print_block("dry run: nothing built, pushed or started")
        return None
    # Where the results go is checked before anything is built or pushed.
    path = output_file("--report", Path(report_path)) if report_path else s.cache_dir / "reports" / "last-build.json"
    if sharded:
        output_dir("--digests-dir", Path(digests_dir))
    arches = ", ".join(a.name for a in s.arches)
    mode = " (push by digest)" if sharded else ""
    with log.step(f"build {', '.join(plan.requested)} for {arches} into {s.registry}{mode}"):
        reg = open_registry(s)
        preset = provided_bases(s, reg, plan, Path(digests_dir)) if sharded else {}
        runner = Runner(
            s, reg, engines(s, layer_cache=not force), force=force, smoke=smoke, sources=sources, tag_images=not sharded
        )
        runner.prepare(plan)
        report = runner.run(plan, preset=preset)
        if sharded:
            shard.write_records(Path(digests_dir), report, s.registry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = report_json(report, reg)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        error = file_error(exc, path, doing="writing the build report")
        if report.fault is None:
            raise error from None
        log.warn(f"no report: {error}")  # the fault that stopped the run is the message
        data = report_json(report, reg)
    if as_json:
        print_json({**data, "report": str(path)})
    else:
        log.print_block("\n" + summary(report, reg) + f"\nreport: {path}")
    interrupt.check("stopped at a safe point; no tag moved and no list was published after the signal")
    raise_for_failures(report)
    return report


def print_json(data: Any) -> None:
    """A command's whole stdout with `--json`."""
    log.print_block(json.dumps(data, indent=2, ensure_ascii=False))


def verify(s: Settings, what: str | Sequence[str], *, as_json: bool = False) -> None:
    """Re-verify the published lists of WHAT (no building)."""
    plan, _ = plan_for(s, what)
    reg = open_registry(s, start=False)
    rows = []
    records: list[dict[str, Any]] = []
    failed = 0
    for node in plan.nodes:
        if node.id.endswith("/list"):
            name, tag = node.image.repo, node.comp.tag
            try:
                children = verify_list(reg, name, tag, s.arches)
                rows.append([reg.ref(name, tag), ", ".join(a.name for a in children), "ok"])
                records.append({"ref": reg.ref(name, tag), "arches": [a.name for a in children], "ok": True})
            except KubemipsError as exc:
                failed += 1
                rows.append([reg.ref(name, tag), "-", f"FAILED: {exc}"])
                records.append({"ref": reg.ref(name, tag), "arches": [], "ok": False, "error": str(exc)})
    if as_json:
        print_json({"registry": s.registry, "lists": records, "failed": failed})
    else:
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
        + (f"version     : {s.version} ($VERSION: the one component a build names)\n" if s.version else "")
        + f"debian      : {s.debian_suite}, mirror {s.debian_mirror or '(host apt sources)'}\n"
        f"cache       : {s.cache_dir}\n\n" + log.table(["setting", "from"], rows)
    )


def list_images(s: Settings, *, as_json: bool = False) -> None:
    cat = catalog(s)
    rows = [[name, comp.tag, comp.name, comp.kind, image.base] for name, (comp, image) in sorted(cat.images.items())]
    if as_json:
        keys = ("image", "tag", "component", "kind", "base")
        print_json([dict(zip(keys, row, strict=True)) for row in rows])
    else:
        log.print_block(log.table(["image", "tag", "component", "kind", "base"], rows))


def bundle(settings: Settings, what: str, out: Path) -> list[Path]:
    """Export the .deb bundle a debian-packages component keeps, per arch, checksums verified."""
    reg = open_registry(settings, start=False)
    return export_bundles(reg, catalog(settings), what, settings.arches, out)


def matrix(s: Settings, what: str, *, stage: int | None = None) -> dict[str, Any]:
    """The GitHub Actions matrix for WHAT: one entry per image and arch, with its stage."""
    cat = catalog(s)
    result = shard.matrix(cat, cat.resolve(what, s.default_what), s.arches, stage=stage)
    for entry in result["include"]:
        arch = parse_arch(entry["arch"])
        entry["runner"] = s.runners.get(arch, DEFAULT_RUNNER)
        entry["id"] = f"{entry['what'].replace('/', '-')}-{arch.name}"
    return result


DEFAULT_RUNNER = "ubuntu-24.04"


def write_github_output(s: Settings, what: str, path: Path, stages: int) -> None:
    """``stageN=<matrix json>`` lines for a workflow with ``stages`` build stages."""
    output_file("--github-output", path)
    full = matrix(s, what)
    deepest = max((e["stage"] for e in full["include"]), default=0)
    if deepest >= stages:
        raise ConfigError(f"the plan needs {deepest + 1} stages but the workflow has {stages}")
    with path.open("a") as out:
        for n in range(stages):
            entries = [e for e in full["include"] if e["stage"] == n]
            out.write(f"stage{n}={json.dumps({'include': entries}, separators=(',', ':'))}\n")


def merge(s: Settings, digests_dir: Path, *, allow_partial: bool = False, complete_only: bool = False) -> None:
    reg = open_registry(s, start=False)
    records = shard.read_records(digests_dir)
    results, skipped = shard.merge(
        s, reg, catalog(s), records, allow_partial=allow_partial, complete_only=complete_only
    )
    rows = [[reg.ref(r.image, r.tag), ", ".join(r.arches), r.digest[:19], r.status] for r in results]
    log.print_block(log.table(["manifest list", "arches", "digest", "status"], rows))
    if skipped:
        raise KubemipsError(f"{len(skipped)} list(s) not published, an arch's build missing: {'; '.join(skipped)}")


def e2e_catalog(s: Settings, k8s: str) -> conformance.ConformanceCatalog:
    return conformance.load(s.root, k8s, catalog(s))


def e2e_list(s: Settings, k8s: str) -> None:
    cc = e2e_catalog(s, k8s)
    log.print_block(conformance.image_list(cc, catalog(s), s.registry))


def e2e_repo_list(s: Settings, k8s: str, out: Path | None) -> Path:
    if out is not None:
        output_file("--out", out)
    cc = e2e_catalog(s, k8s)
    path = out or s.cache_dir / f"kube-test-repo-list-{k8s}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(conformance.repo_list_yaml(cc, s.registry))
    return path


def e2e_what(s: Settings, k8s: str, names: Sequence[str]) -> list[str]:
    """The catalog's buildable images (all, or those named) for `nox -s e2e_images`."""
    cat = catalog(s)
    cc = e2e_catalog(s, k8s)
    buildable = [e.build for e in cc.provided if e.build in cat.images]
    if not names:
        return list(dict.fromkeys(buildable))
    return cat.resolve(list(names), ())


def e2e_coverage(
    s: Settings, k8s: str, *, markdown: Path | None = None, html: Path | None = None, as_json: bool = False
) -> None:
    """The image x arch coverage: terminal table (or JSON), Markdown and HTML files, and
    GitHub's job summary ($GITHUB_STEP_SUMMARY) when set."""
    if markdown is not None:
        output_file("--markdown", markdown)
    if html is not None:
        output_file("--html", html)
    cc = e2e_catalog(s, k8s)
    reg = open_registry(s, start=False)
    rows = conformance.coverage(cc, catalog(s), reg, s.arches, s.cache_dir / "smoke")
    md = coverage.markdown(rows, kubernetes=cc.kubernetes, registry=s.registry)
    written = []
    for path, text in (
        (markdown or s.cache_dir / "reports" / f"e2e-coverage-{k8s}.md", md),
        (html or s.cache_dir / "reports" / f"e2e-coverage-{k8s}.html", coverage.html_page(
            rows, kubernetes=cc.kubernetes, registry=s.registry)),
    ):  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY", "")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(md + "\n")
    if as_json:
        data = coverage.as_json(rows, kubernetes=cc.kubernetes, registry=s.registry)
        print_json({**data, "markdown": str(written[0]), "html": str(written[1])})
    else:
        log.print_block(coverage.terminal(rows) + f"\n\nmarkdown: {written[0]}\nhtml: {written[1]}")


def render_manifests(s: Settings, k8s: str, out: Path) -> list[Path]:
    output_dir("--out", out)
    rendered = manifests.render(s.root, s.registry, k8s, catalog(s))
    paths = manifests.write(rendered, out)
    for path in paths:
        log.result(f"wrote {path}")
    return paths


def verify_manifests(s: Settings, directory: Path) -> None:
    """Schema-check every document and check every image it references is a full list."""
    from . import k8sschema

    docs = manifests.load_dir(directory)
    problems = [p for doc in docs for p in k8sschema.validate(doc.body, doc.where)]
    reg = open_registry(s, start=False)
    image_problems = manifests.check_images(docs, reg, s.registry, s.arches)
    images = sorted({ref for doc in docs for ref in manifests.images_of(doc)})
    arches = ", ".join(a.name for a in s.arches)
    log.print_block(f"{len(docs)} documents in {directory}, {len(images)} images, arches {arches}")
    for text in problems + image_problems:
        log.print_block(f"  - {text}")
    if problems or image_problems:
        raise KubemipsError(
            f"{len(problems)} schema problem(s) and {len(image_problems)} image problem(s) in {directory}"
        )
    log.print_block("all documents valid; every image is in the registry for every arch")


def cluster_images(s: Settings, k8s: str) -> list[str]:
    """Every image a cluster of that version needs, as the rendered manifests name them."""
    import yaml

    refs: list[str] = []
    for name, text in manifests.render(s.root, s.registry, k8s, catalog(s)).items():
        for i, body in enumerate(yaml.safe_load_all(text)):
            if isinstance(body, dict):
                refs += manifests.images_of(manifests.Doc(Path(name), i, body))
    return sorted(set(refs))


def mirror(settings: Settings, source: str, k8s: str, what: Sequence[str]) -> None:
    """Copy the cluster's images that the registry lacks from ``source``, digests checked."""
    dest = open_registry(settings)
    src = Registry.configured(settings, source)
    src.ping()
    store = oci.BlobStore(settings.cache_dir / "blobs")
    refs = cluster_images(settings, k8s)
    if what:
        refs = [r for r in refs if split_ref(r, settings.registry)[0] in what]
    rows = copy_missing(dest, src, source, settings.registry, refs, store)
    log.print_block(log.table(["image", "result"], rows))


def bench(
    s: Settings,
    what: Sequence[str],
    cases: str,
    *,
    touch: str = "",
    out: str = "",
    keep: bool = False,
    compare: Sequence[str] = (),
) -> None:
    """Run the benchmark (or compare two result files) and print its tables."""
    from . import bench as benchmark

    if compare:
        if len(compare) != 2:
            raise ConfigError("--compare takes two result files: BEFORE,AFTER")
        before, after = (benchmark.load(p) for p in compare)
        log.print_block(benchmark.compare(before, after))
        return
    chosen = benchmark.parse_cases(cases)
    names = list(what) or [*s.default_what, *benchmark.DEFAULT_EXTRA]
    plan_for(s, names)  # unknown names fail here, before anything starts
    path = output_file("--out", Path(out)) if out else s.cache_dir / "reports" / "bench.json"
    arches = ",".join(a.name for a in s.arches)
    doc = benchmark.run(s, names, arches, chosen, touch=touch or benchmark.DEFAULT_TOUCH, keep=keep)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    log.print_block(benchmark.table(doc) + f"\nresults: {path}")
