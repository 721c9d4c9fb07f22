"""A Debian root filesystem from mmdebstrap, as one deterministic layer (debian-base).

mmdebstrap resolves packages from the configured (or host's) mirror, runs maintainer
scripts under QEMU for a foreign arch, and honours SOURCE_DATE_EPOCH; the tar it writes
is re-emitted with pinned metadata, so two builds from the same package set give the
same digest.  The package index digests of every suite used are the build's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .. import cmd
from ..arch import Arch
from ..components import Component, ImageDef
from ..oci import NormalizedTar
from .base import BaseImage, BuildContext, Builder, BuildOutput, Options

# Kept out of the image, as upstream's debian-base does: documentation, manuals and
# translations are dead weight in a container.  Copyright files stay.
DEFAULT_PATH_EXCLUDES = (
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/doc/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
)
DEFAULT_PATH_INCLUDES = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")


@dataclass(frozen=True, kw_only=True)
class RootfsOptions(Options):
    variant: str = "minbase"
    include: tuple[str, ...] = ()
    """Packages beyond the variant's."""
    path_exclude: tuple[str, ...] = DEFAULT_PATH_EXCLUDES
    path_include: tuple[str, ...] = DEFAULT_PATH_INCLUDES


class RootfsBuilder(Builder[RootfsOptions]):
    kind: ClassVar[str] = "debian-rootfs"
    emulates: ClassVar[bool] = True
    options = RootfsOptions

    def _options(self, comp: Component) -> dict[str, Any]:
        """The options as an input of the key."""
        opts = self.opts(comp)
        return {
            "variant": opts.variant,
            "include": sorted(opts.include),
            "path-exclude": list(opts.path_exclude),
            "path-include": list(opts.path_include),
        }

    def inputs(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> dict[str, Any]:
        cmd.which("mmdebstrap", hint="apt-get install mmdebstrap")
        return {
            "sources": [{"line": src.line(), "index": src.index} for src in ctx.debian_sources(arch)],
            "options": self._options(comp),
            "mmdebstrap": cmd.output(["mmdebstrap", "--version"]),
        }

    def build(
        self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext, base: BaseImage | None
    ) -> BuildOutput:
        opts = self.opts(comp)
        sources = ctx.debian_sources(arch)
        work = ctx.workdir(comp, arch)
        out = work / "rootfs.tar"
        out.unlink(missing_ok=True)
        argv: list[str] = ["mmdebstrap", f"--variant={opts.variant}", f"--arch={arch.debian}", "--quiet"]
        if opts.include:
            argv.append("--include=" + ",".join(sorted(opts.include)))
        argv += [f"--dpkgopt=path-exclude={p}" for p in opts.path_exclude]
        argv += [f"--dpkgopt=path-include={p}" for p in opts.path_include]
        argv += [ctx.settings.debian_suite, str(out)]
        argv += [src.line() for src in sources]
        cmd.run(
            argv,
            what=f"mmdebstrap {comp.name} for {arch}",
            env={"SOURCE_DATE_EPOCH": str(ctx.settings.source_date_epoch)},
            timeout=3600,
        )
        layer = ctx.store.write_layer(NormalizedTar(out, ctx.settings.source_date_epoch))
        out.unlink(missing_ok=True)
        return BuildOutput(
            [layer],
            [f"mmdebstrap --variant={opts.variant} --arch={arch.debian} {ctx.settings.debian_suite}"],
            labels={
                "org.kubemips.debian.suite": ctx.settings.debian_suite,
                "org.kubemips.debian.sources": "; ".join(f"{s.suite}@{s.index[:12]}" for s in sources),
            },
        )
