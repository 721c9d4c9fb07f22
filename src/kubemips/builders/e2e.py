"""Builders for e2e-images folders: upstream-format Dockerfiles, and aliases.

An e2e folder's Dockerfile is built like any other (RUN under QEMU for a foreign arch),
after image-util.sh's ``bin`` step: Go binaries the folder names are cross-compiled from
the Kubernetes tree (the hyperkube component's pinned source, or ``--source``) and put in
the build context.  Older upstream Dockerfiles write ``FROM BASEIMAGE`` literally and
carry ``CROSS_BUILD_COPY`` lines for QEMU; the first is filled in, the second dropped
(binfmt's F flag makes the copy unnecessary).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import timing
from ..arch import Arch
from ..components import Component, ImageDef
from ..e2e import META, OLD_META, descriptor, input_name
from ..errors import BuildError, ConfigError
from ..schema import check_table
from .base import BaseImage, BuildContext, Builder, BuildOutput, Options
from .dockerfile import archive_inputs, build_and_export, host_apt_inputs, tree_digest
from .golang import BINARY_KEYS, GoBuilder, GoOptions, source_names

_GO = GoBuilder()


def check_arch(comp: Component, arch: Arch) -> None:
    """Fail this (image, arch) when BASEIMAGE has no usable line for it."""
    if not comp.e2e_bases:
        return
    ref = comp.e2e_bases.get(arch)
    where = comp.directory / "BASEIMAGE"
    if ref is None:
        raise BuildError(f"{where}: no line for {arch.platform}, so {comp.images[0].name} cannot be built for {arch}")
    if ref.project_ref() is None:
        raise BuildError(
            f"{where}: {arch.platform}={ref.value} is not an image this project builds, and nothing can be "
            "pulled from outside here; rebase it on REGISTRY/debian-base:1.0.0 (Alpine has no mips64el)"
        )


def context_digest(folder: Path) -> dict[str, str]:
    """The folder's files as an input of its images, the descriptor under the name it has
    in every image's inputs (:data:`kubemips.e2e.META_INPUT_NAME`)."""
    return {input_name(name): digest for name, digest in tree_digest(folder).items()}


@dataclass(frozen=True, kw_only=True)
class E2EOptions(Options):
    """An e2e folder's ``[go]`` (:mod:`kubemips.e2e` makes it the ``[build]`` table)."""

    binaries: tuple[Mapping[str, Any], ...] = ()
    ldflags: tuple[str, ...] = ()
    """After the source component's own."""
    go_source: str = ""
    """The component whose source tree the Go comes from (see ``Component.provider``)."""
    tree_files: tuple[Mapping[str, Any], ...] = ()


class E2EDockerfileBuilder(Builder[E2EOptions]):
    kind: ClassVar[str] = "e2e-dockerfile"
    emulates: ClassVar[bool] = True
    version: ClassVar[str] = "2"  # 2: an install step in the project's form is the host's (hostapt)
    options = E2EOptions

    def check(self, comp: Component) -> E2EOptions:
        opts = super().check(comp)
        for i, entry in enumerate(opts.binaries):
            where = f"{descriptor(comp.directory)}: [go] binaries[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: must be a table {{ name = ..., package = ... }}")
            check_table(where, entry, BINARY_KEYS, required=("name", "package"))
        if comp.provider is not None and comp.provider.kind != _GO.kind:
            raise ConfigError(
                f"{descriptor(comp.directory)}: [go] source '{opts.go_source}' is a {comp.provider.kind} component, "
                f"not a {_GO.kind} one"
            )
        return opts

    def go_options(self, comp: Component) -> GoOptions | None:
        """``[go]`` as the Go builder's options, the source component's ldflags first; None
        when the image compiles nothing and copies no file from a Go source."""
        opts = self.opts(comp)
        if comp.provider is None:
            return None
        go = GoOptions(
            binaries=opts.binaries,
            ldflags=(*_GO.opts(comp.provider).ldflags, *opts.ldflags),
            tree_files=opts.tree_files,
        )
        return go if source_names(comp, go) else None

    def fetch(self, comp: Component, ctx: BuildContext) -> None:
        go = self.go_options(comp)
        if go is not None:
            _GO.fetch_sources(comp, go, ctx)

    def inputs(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> dict[str, Any]:
        check_arch(comp, arch)
        doc: dict[str, Any] = {
            "context": context_digest(comp.directory),
            "engine": ctx.engines.for_arch(arch).server_version(),
            "archive": archive_inputs(arch, ctx),
            **host_apt_inputs(ctx, arch, comp.directory / "Dockerfile"),
        }
        go = self.go_options(comp)
        if go is not None:
            inputs = _GO.go_inputs(comp, go, image, arch, ctx)
            doc["go"] = {k: inputs[k] for k in ("go", "sources", "binaries", "tree-files") if k in inputs}
        return doc

    def build(
        self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext, base: BaseImage | None
    ) -> BuildOutput:
        check_arch(comp, arch)
        what = f"{image.name}/{arch.name}"
        work = ctx.workdir(comp, arch, image)
        context = work / "context"
        if context.exists():
            shutil.rmtree(context)
        shutil.copytree(comp.directory, context, ignore=shutil.ignore_patterns(META, OLD_META))
        go = self.go_options(comp)
        if go is not None:
            with timing.phase("native"):  # cross-compiled, even where the RUN steps are emulated
                artifacts = _GO.compile(comp, go, arch, ctx)
            for binary in artifacts.iterdir():
                shutil.copy2(binary, context / binary.name)
        dockerfile = context / "Dockerfile"
        text = dockerfile.read_text()
        parent = base.ref if base else "scratch"
        if "ARG BASEIMAGE" not in text:
            text = re.sub(r"^(FROM\s+)BASEIMAGE\b", lambda m: m.group(1) + parent, text, flags=re.MULTILINE)
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("CROSS_BUILD_")) + "\n"
        dockerfile.write_text(text)
        args = {"BASEIMAGE": parent, "ARCH": arch.oci}
        return build_and_export(ctx, arch, base, context, "Dockerfile", args, work, what)


@dataclass(frozen=True, kw_only=True)
class AliasOptions(Options):
    alias: str
    """The project image republished (an e2e folder's ``ALIAS``)."""


class AliasBuilder(Builder[AliasOptions]):
    """An e2e entry that republishes another project image under its own name and tag.

    No new layers: the config is the source's, relabelled (``org.kubemips.alias-of``), so
    the e2e suite's ``etcd:3.3.15`` runs the project's etcd and says which one it is.
    """

    kind: ClassVar[str] = "alias"
    options = AliasOptions

    def inputs(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> dict[str, Any]:
        return {"alias": self.opts(comp).alias, "text": hashlib.sha256(comp.raw.encode()).hexdigest()}

    def build(
        self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext, base: BaseImage | None
    ) -> BuildOutput:
        if base is None:
            raise BuildError(f"{comp.file}: alias of nothing")
        return BuildOutput([], [f"alias of {base.name}"])
