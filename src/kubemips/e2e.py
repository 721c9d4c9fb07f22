"""The conformance-test image catalog, in upstream's own folder format.

``e2e-images/<name>/`` holds what Kubernetes' ``test/images/<name>/`` holds: ``VERSION``
(one line), ``BASEIMAGE`` (``linux/ARCH=REGISTRY/parent:tag`` lines), a ``Dockerfile``
(``ARG BASEIMAGE`` or the older literal ``FROM BASEIMAGE``), optionally ``ALIAS`` (this
entry republishes another project image under its own name and tag, e.g. the e2e
suite's ``etcd:3.3.15`` is the project's etcd).  So an upstream folder can be dropped in.

An optional ``image.toml`` adds what upstream keeps elsewhere: the repository name
when it differs from the folder (``nginx-1.14`` -> ``nginx``), Go binaries built from the
Kubernetes tree into the build context (image-util.sh's ``bin`` step, cross-compiled
here), the smoke check, and a note of what the image really contains.  The file was
called ``kubemips.toml`` before, the name of the project's settings file: a folder that
still has one is read, with a deprecation warning.

The descriptor is not part of the image (the build context leaves it out), and it enters
an image's inputs under its old name, so renaming it changed no image's key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import log, placeholders
from .arch import Arch, parse_arch
from .components import BaseRef, Component, ImageDef, SmokeDef, load_smoke
from .errors import ConfigError
from .schema import check_table, read_toml, str_list, str_map

E2E_DIR = "e2e-images"
META = "image.toml"
"""The folder's descriptor."""
OLD_META = "kubemips.toml"
"""The descriptor's former name: still read, with a deprecation warning."""
META_INPUT_NAME = OLD_META
"""The name the descriptor has in an image's inputs (the component text and the context
digest), whichever it is called on disk: the name it had when those keys were made."""
_warned: set[Path] = set()
_META = {"repo": str, "content": str, "smoke": dict, "go": dict, "labels": dict, "env": list}
_GO = {"source": str, "binaries": list, "ldflags": list, "tree-files": list}
GO_SOURCE = "go-source"
"""The ``[build]`` key an e2e folder's ``[go] source`` becomes: the component whose source
tree its Go comes from (:attr:`kubemips.components.Component.provider` once resolved)."""
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DEFAULT_SMOKE = SmokeDef(command=("/bin/sh", "-c", "uname -m"), expect="^{uname}$", timeout=120, env=())


def _read_one_line(path: Path, what: str) -> str:
    text = path.read_text().strip()
    if not text or "\n" in text:
        raise ConfigError(f"{path}: {what} must be exactly one non-empty line")
    return text


def parse_baseimage(path: Path) -> dict[Arch, BaseRef]:
    refs: dict[Arch, BaseRef] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not value.strip():
            raise ConfigError(f"{path}:{n}: expected 'linux/ARCH=IMAGE', got {line!r}")
        try:
            arch = parse_arch(key.strip())
        except ConfigError as exc:
            raise ConfigError(f"{path}:{n}: {exc}") from None
        refs[arch] = BaseRef(arch, value.strip())
    return refs


def descriptor(folder: Path) -> Path | None:
    """The folder's ``image.toml``, or its old ``kubemips.toml`` (warned about once)."""
    new, old = folder / META, folder / OLD_META
    if new.exists() and old.exists():
        raise ConfigError(f"{folder}: has both {META} and {OLD_META}; keep {META} (the new name) only")
    if old.exists():
        if old not in _warned:
            _warned.add(old)
            log.warn(
                f"{old}: deprecated name, rename it to {META} (`git mv {old} {new}`); "
                f"{OLD_META} in an e2e folder is read until the next release"
            )
        return old
    return new if new.exists() else None


def input_name(name: str) -> str:
    """A folder file's name as the image's inputs know it (see :data:`META_INPUT_NAME`)."""
    return META_INPUT_NAME if name in (META, OLD_META) else name


def load_folder(root: Path, folder: Path) -> Component:
    rel = folder.relative_to(root / E2E_DIR).as_posix()
    where = str(folder)
    version = _read_one_line(folder / "VERSION", "VERSION")
    if not _TAG.match(version):
        raise ConfigError(f"{folder / 'VERSION'}: {version!r} is not a valid image tag")
    desc = descriptor(folder)
    meta = check_table(str(desc), read_toml(desc), _META) if desc is not None else {}
    desc = desc or folder / META
    alias = (folder / "ALIAS").read_text().strip() if (folder / "ALIAS").exists() else ""
    dockerfile = folder / "Dockerfile"
    if not alias and not dockerfile.is_file():
        raise ConfigError(f"{where}: needs a Dockerfile (or an ALIAS naming the image it republishes)")
    bases = parse_baseimage(folder / "BASEIMAGE") if (folder / "BASEIMAGE").exists() else {}
    build: dict[str, Any] = {}
    if "go" in meta:
        go = check_table(f"{desc}: [go]", meta["go"], _GO)
        if not go.get("binaries") and not go.get("tree-files"):
            raise ConfigError(f"{desc}: [go] needs binaries or tree-files (files taken from the Go source)")
        build = {**{k: v for k, v in go.items() if k != "source"}, GO_SOURCE: go.get("source", "hyperkube")}
    smoke = load_smoke(f"{desc}: [smoke]", meta["smoke"], version) if "smoke" in meta else DEFAULT_SMOKE
    files = sorted((input_name(p.name), p) for p in folder.iterdir() if p.is_file() and p.suffix != ".go")
    raw = "\n".join(f"--- {name}\n{p.read_text()}" for name, p in files)
    env = str_list(where, "env", meta.get("env", []))
    placeholders.check(env, where=f"{desc}: env", available=placeholders.ARCH_KEYS)
    labels = str_map(where, "labels", meta.get("labels", {}))
    if meta.get("content"):
        labels = {**labels, "org.kubemips.content": meta["content"]}
    image = ImageDef(
        name=rel,
        repo=meta.get("repo", rel),
        base="scratch",
        entrypoint=None,
        cmd=None,
        env=env,
        labels=labels,
        workdir="",
        user="",
        expose=(),
        files={},
        smoke=smoke,
    )
    return Component(
        name="e2e-" + rel.replace("/", "-"),
        description=meta.get("content", "") or f"conformance test image {rel}",
        version=version,
        tag=version,
        directory=folder,
        file=folder / ("ALIAS" if alias else "Dockerfile"),
        kind="alias" if alias else "e2e-dockerfile",
        build={**build, "alias": alias} if alias else build,
        sources={},
        images=(image,),
        raw=raw,
        e2e_bases=bases,
        e2e=True,
    )


def folders(root: Path) -> list[Path]:
    base = root / E2E_DIR
    if not base.is_dir():
        return []
    return sorted(p.parent for p in base.rglob("VERSION"))


def resolve_bases(
    comps: Mapping[str, Component], images: Mapping[str, tuple[Component, ImageDef]]
) -> dict[str, Component]:
    """Turn each e2e entry's BASEIMAGE / ALIAS into a project image id (a FROM edge)."""
    by_ref = {(img.repo, comp.tag): name for name, (comp, img) in images.items()}
    resolved: dict[str, Component] = {}
    for comp in comps.values():
        if not comp.e2e:
            continue
        (image,) = comp.images
        if comp.kind == "alias":
            target = comp.build["alias"]
            if target not in images:
                raise ConfigError(f"{comp.file}: names '{target}', which is not an image of this project")
            source_comp, source_image = images[target]
            # The alias runs the source's check, whose {version} is the source's own.
            expect = placeholders.fill(
                source_image.smoke.expect,
                placeholders.version_values(source_comp.version),
                where=f"{comp.file}: the smoke check of {target}",
                escape=re.escape,
                partial=True,
            )
            image = replace(image, base=target, smoke=replace(source_image.smoke, expect=expect), env=())
            labels = {**image.labels, "org.kubemips.alias-of": f"{source_image.repo}:{source_comp.tag}"}
            image = replace(image, labels=labels)
        else:
            parents = set()
            for ref in comp.e2e_bases.values():
                project = ref.project_ref()
                if project is not None:
                    if project not in by_ref:
                        raise ConfigError(
                            f"{comp.directory / 'BASEIMAGE'}: {ref.value} for {ref.arch.platform} is not an image "
                            "this project builds"
                        )
                    parents.add(by_ref[project])
            if len(parents) > 1:
                raise ConfigError(
                    f"{comp.directory / 'BASEIMAGE'}: every arch must use the same parent image, got {sorted(parents)}"
                )
            if parents:
                image = replace(image, base=parents.pop())
            if GO_SOURCE in comp.build:
                # Go sources live in the Kubernetes tree: the named component's pinned source.
                provider = comps.get(comp.build[GO_SOURCE])
                if provider is None:
                    raise ConfigError(
                        f"{descriptor(comp.directory)}: [go] source '{comp.build[GO_SOURCE]}' is not a component"
                    )
                comp = replace(comp, sources=provider.sources, provider=provider)
        resolved[comp.name] = replace(comp, images=(image,))
    return resolved
