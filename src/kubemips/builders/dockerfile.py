"""Images whose recipe has RUN steps: the Docker engine's classic builder, per arch.

RUN steps for a foreign arch run under QEMU (binfmt F flag); a package install step in
the project's form is done by the host first (:mod:`.hostapt`).  The parent is passed as
``BASEIMAGE`` by digest, so the build is pinned to exactly the base this run produced.
The result is exported (``docker save``), its new layers are compressed into the blob
store, and it is published through the same path as every other image: pushed by
digest, verified, smoke-checked, then tagged.  RUN output is not bit-reproducible (file
times, package state), but the skip key still covers every input: the context files,
the base digest, the engine version and, because ``apt-get`` resolves against the
archive, the archive's package-index digests for that arch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import tarfile
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import placeholders, timing
from ..arch import Arch
from ..components import Component, ImageDef
from ..errors import BuildError, ConfigError
from ..oci import Layer
from . import hostapt
from .base import BaseImage, BuildContext, Builder, BuildOutput, Options, OptionsT

PACKAGES_FILE = "usr/share/kubemips/packages.txt"
"""Where package-based images record ``name=version`` of what they installed."""


def tree_digest(root: Path, *, exclude: tuple[str, ...] = (".git",)) -> dict[str, str]:
    """Path -> sha256 (and mode) of every file below ``root``: a context's identity."""
    result: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                result[rel] = "link:" + os.readlink(path)
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            result[rel] = f"{oct(path.stat().st_mode & 0o777)}:{digest}"
    return result


def fill(text: str, comp: Component, arch: Arch, key: str) -> str:
    """``text`` from ``[build] key`` with the component's and the arch's placeholders filled."""
    return placeholders.fill(text, placeholders.values(comp.version, arch), where=f"{comp.file}: [build] {key}")


def archive_inputs(arch: Arch, ctx: BuildContext) -> list[str]:
    """Package-index digests a RUN apt-get would resolve against (pins what it installs)."""
    return [f"{src.suite}@{src.index}" for src in ctx.debian_sources(arch)]


def host_apt_inputs(ctx: BuildContext, arch: Arch, dockerfile: Path) -> dict[str, str]:
    """The host's install step's version, for a Dockerfile :func:`build_and_export` would
    give to it: a change there rebuilds exactly those images."""
    if ctx.engines.emulates(arch) and hostapt.split(dockerfile.read_text()) is not None:
        return {"host-apt": hostapt.VERSION}
    return {}


def export_layers(
    ctx: BuildContext, arch: Arch, image_id: str, base: BaseImage | None, work: Path, what: str
) -> tuple[dict[str, Any], list[Any], str]:
    """Save ``image_id``; return its config, the layers above ``base``, and packages.txt."""
    saved = work / "image.tar"
    ctx.engines.for_arch(arch).save(image_id, saved)
    base_ids = list(((base.config if base else {}).get("rootfs") or {}).get("diff_ids") or [])
    layers: list[Layer] = []
    packages = ""
    try:
        with tarfile.open(saved) as tar:
            manifest = json.load(_member(tar, "manifest.json", what))
            (entry,) = manifest
            config = json.load(_member(tar, entry["Config"], what))
            diff_ids = config["rootfs"]["diff_ids"]
            if diff_ids[: len(base_ids)] != base_ids:
                raise BuildError(
                    f"[{what}] built image does not start with the layers of its base {base.ref if base else ''}"
                )
            for layer_path, diff_id in list(zip(entry["Layers"], diff_ids, strict=True))[len(base_ids) :]:
                layer = ctx.store.gzip_stream(_member(tar, layer_path, what))
                if layer.diff_id != diff_id:
                    raise BuildError(f"[{what}] exported layer {layer_path} does not match diff_id {diff_id}")
                layers.append(layer)
                packages = _read_packages(tar, layer_path) or packages
    finally:
        saved.unlink(missing_ok=True)
    return config, layers, packages


def _member(tar: tarfile.TarFile, name: str, what: str) -> Any:
    fileobj = tar.extractfile(name)
    if fileobj is None:
        raise BuildError(f"[{what}] docker save output lacks {name}")
    return fileobj


def _read_packages(tar: tarfile.TarFile, layer_path: str) -> str:
    layer = tar.extractfile(layer_path)
    if layer is None:
        return ""
    with tarfile.open(fileobj=layer, mode="r|") as inner:
        for member in inner:
            if member.name.removeprefix("./") == PACKAGES_FILE and member.isreg():
                data = inner.extractfile(member)
                return data.read().decode() if data else ""
    return ""


def build_and_export(
    ctx: BuildContext,
    arch: Arch,
    base: BaseImage | None,
    context: Path,
    dockerfile: str,
    buildargs: Mapping[str, str],
    work: Path,
    what: str,
) -> BuildOutput:
    """Build with the arch's engine, export the new layers, record installed packages.

    For an arch the local engine emulates, an install step in the project's form is done
    by the host first (:mod:`.hostapt`) and the rest of the Dockerfile builds on its
    layer.  For the host's own arch nothing is emulated and the classic build is the
    faster one (measured: redis amd64 12 s classic, 17 s through the host's layer); an
    arch with a native engine of its own builds there."""
    engine = ctx.engines.for_arch(arch)
    parts = hostapt.split((context / dockerfile).read_text()) if ctx.engines.emulates(arch) else None
    local = ""
    if base is not None and parts is not None:
        local = hostapt.install(ctx, arch, base, parts.packages, work / "host-apt", what)
        rewritten = work / "Dockerfile.host-apt"
        rewritten.write_text(parts.dockerfile)
        dockerfile, buildargs = str(rewritten), {**buildargs, "BASEIMAGE": local}
    try:
        image_id = engine.build(
            context, dockerfile=dockerfile, buildargs=buildargs, arch=arch, log_path=work / "build.log", what=what
        )
    finally:
        if local:
            engine.untag(local)
    with timing.phase("layers"):
        config, layers, packages = export_layers(ctx, arch, image_id, base, work, what)
    labels = {}
    if packages.strip():
        labels["org.kubemips.debian.packages"] = ", ".join(packages.split())
    return BuildOutput(layers, [], labels=labels, config=config)


class ContextBuilder(Builder[OptionsT]):
    """A Dockerfile and its context built by the arch's engine: what a ``dockerfile`` and
    a ``debian-packages`` component share (their keys differ)."""

    emulates: ClassVar[bool] = True
    version: ClassVar[str] = "2"  # 2: an install step in the project's form is the host's (hostapt)

    @abstractmethod
    def _context(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> tuple[Path, str]:
        """The context directory and the Dockerfile's name in it."""

    def _args(self, comp: Component, arch: Arch) -> dict[str, str]:
        """Build arguments besides ``BASEIMAGE``."""
        return {}

    def _archive(self, comp: Component) -> bool:
        """Whether RUN steps resolve packages against the Debian archive (its index digests
        are then inputs)."""
        return True

    def inputs(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> dict[str, Any]:
        context, dockerfile = self._context(comp, image, arch, ctx)
        doc: dict[str, Any] = {
            "context": tree_digest(context),
            "dockerfile": dockerfile,
            "args": self._args(comp, arch),
            "engine": ctx.engines.for_arch(arch).server_version(),
        }
        if self._archive(comp):
            doc["archive"] = archive_inputs(arch, ctx)
        return {**doc, **host_apt_inputs(ctx, arch, context / dockerfile)}

    def build(
        self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext, base: BaseImage | None
    ) -> BuildOutput:
        what = f"{image.name}/{arch.name}"
        context, dockerfile = self._context(comp, image, arch, ctx)
        work = ctx.workdir(comp, arch, image)
        args = {"BASEIMAGE": base.ref if base else "scratch", **self._args(comp, arch)}
        return build_and_export(ctx, arch, base, context, dockerfile, args, work, what)


@dataclass(frozen=True, kw_only=True)
class DockerfileOptions(Options):
    dockerfile: str = "Dockerfile"
    """Its name in the component directory (the context)."""
    args: Mapping[str, str] = field(default_factory=dict)
    """Build arguments, placeholders filled per arch."""
    debian_archive: bool = True
    """RUN steps install from the Debian archive (false: its index is no input)."""


class DockerfileBuilder(ContextBuilder[DockerfileOptions]):
    """``kind = "dockerfile"``: a Dockerfile in the component directory."""

    kind: ClassVar[str] = "dockerfile"
    options = DockerfileOptions

    def _args(self, comp: Component, arch: Arch) -> dict[str, str]:
        return {k: fill(v, comp, arch, f"args.{k}") for k, v in sorted(self.opts(comp).args.items())}

    def _archive(self, comp: Component) -> bool:
        return self.opts(comp).debian_archive

    def _context(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> tuple[Path, str]:
        dockerfile = self.opts(comp).dockerfile
        if not (comp.directory / dockerfile).is_file():
            raise ConfigError(f"{comp.file}: [build] dockerfile '{dockerfile}' not found in {comp.directory}")
        return comp.directory, dockerfile


@dataclass(frozen=True, kw_only=True)
class DebianPackagesOptions(Options):
    packages: tuple[str, ...]
    """``apt-get install`` arguments (``name``, ``name=version``, ``name/suite``)."""
    run: tuple[str, ...] = ()
    """Further RUN steps, after the install."""
    bundle: str = ""
    """Where the image keeps the .deb files and their SHA256SUMS; '' keeps none."""


class DebianPackagesBuilder(ContextBuilder[DebianPackagesOptions]):
    """``kind = "debian-packages"``: Debian packages for the target arch on a Debian base.

    The Dockerfile is generated, its install step in the form the host does
    (:mod:`.hostapt`: maintainer scripts still run for real, under QEMU for a foreign
    arch; with ``bundle`` the classic way, inside the build).  The installed versions are
    recorded in ``/usr/share/kubemips/packages.txt`` and in the image label
    ``org.kubemips.debian.packages``.  With ``bundle = "/path"`` the .deb
    files are kept there with a SHA256SUMS file, for provisioning nodes without a registry.
    """

    kind: ClassVar[str] = "debian-packages"
    options = DebianPackagesOptions

    def bundle(self, comp: Component) -> str:
        return self.opts(comp).bundle

    def _dockerfile(self, comp: Component, arch: Arch) -> str:
        opts = self.opts(comp)
        packages = [fill(p, comp, arch, "packages") for p in opts.packages]
        quoted = " ".join(shlex.quote(p) for p in packages)
        names = " ".join(shlex.quote(p.split("=")[0].split("/")[0]) for p in packages)
        steps = ["set -eu", "apt-get update -q"]
        steps.append(f"apt-get install -y -q --no-install-recommends {quoted}")
        steps.append("mkdir -p /usr/share/kubemips")
        steps.append(f"dpkg-query -W -f='${{Package}}=${{Version}}\\n' {names} > /{PACKAGES_FILE}")
        if opts.bundle:
            b = shlex.quote(opts.bundle)
            steps.append(f"mkdir -p {b} && cp /var/cache/apt/archives/*.deb {b}/")
            steps.append(f"cd {b} && sha256sum *.deb > SHA256SUMS && cd /")
        steps.append("apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin")
        lines = ["ARG BASEIMAGE", "FROM ${BASEIMAGE}", "RUN " + " && \\\n    ".join(steps)]
        for extra in opts.run:
            lines.append("RUN " + fill(extra, comp, arch, "run"))
        return "\n".join(lines) + "\n"

    def _context(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> tuple[Path, str]:
        if image.base == "scratch":
            raise ConfigError(f'{comp.file}: debian-packages needs a Debian base image (e.g. base = "debian-base")')
        work = ctx.workdir(comp, arch, image) / "context"
        if work.exists():
            shutil.rmtree(work)
        files = comp.directory / "files"
        if files.is_dir():
            shutil.copytree(files, work / "files")
        work.mkdir(parents=True, exist_ok=True)
        (work / "Dockerfile").write_text(self._dockerfile(comp, arch))
        return work, "Dockerfile"
