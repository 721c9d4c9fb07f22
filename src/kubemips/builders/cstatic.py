"""Static C programs cross-compiled with the target's gcc (upstream's build/pause recipe).

``{triple}-gcc -static`` from the arch table, then ``{triple}-strip``: no emulation, and
the binary lands in a FROM-scratch (or based) image as a single deterministic layer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import cmd, placeholders
from ..arch import Arch
from ..components import Component, ImageDef
from ..errors import ConfigError
from ..oci import FileEntry, FilesLayer
from .base import BaseImage, BuildContext, Builder, BuildOutput, Options


@dataclass(frozen=True, kw_only=True)
class CStaticOptions(Options):
    sources: tuple[str, ...]
    """C files in the component directory."""
    cflags: tuple[str, ...] = ()
    defines: Mapping[str, str] = field(default_factory=dict)
    """``-DNAME="value"``, placeholders filled per arch."""
    output: str
    """Where the binary lands in the image."""


class CStaticBuilder(Builder[CStaticOptions]):
    kind: ClassVar[str] = "c-static"
    options = CStaticOptions

    def _sources(self, comp: Component) -> list[tuple[str, bytes]]:
        out = []
        for rel in self.opts(comp).sources:
            path = comp.directory / rel
            if not path.is_file():
                raise ConfigError(f"{comp.file}: [build] source '{rel}' not found at {path}")
            out.append((rel, path.read_bytes()))
        return out

    def _defines(self, comp: Component, arch: Arch) -> dict[str, str]:
        values = placeholders.values(comp.version, arch)
        return {
            k: placeholders.fill(v, values, where=f"{comp.file}: [build] defines.{k}")
            for k, v in sorted(self.opts(comp).defines.items())
        }

    def _compiler(self, arch: Arch) -> str:
        return f"{arch.triple}-gcc"

    def inputs(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> dict[str, Any]:
        gcc = self._compiler(arch)
        cmd.which(gcc, hint=f"apt-get install gcc-{arch.triple.replace('_', '-')}")
        return {
            "sources": {rel: hashlib.sha256(data).hexdigest() for rel, data in self._sources(comp)},
            "cflags": list(self.opts(comp).cflags),
            "defines": self._defines(comp, arch),
            "output": self.opts(comp).output,
            "compiler": cmd.output([gcc, "--version"]).splitlines()[0],
        }

    def build(
        self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext, base: BaseImage | None
    ) -> BuildOutput:
        work = ctx.workdir(comp, arch)
        binary = work / "out.bin"
        srcs = [str(comp.directory / rel) for rel, _ in self._sources(comp)]
        defines = [f'-D{k}="{v}"' for k, v in self._defines(comp, arch).items()]
        opts = self.opts(comp)
        cflags = list(opts.cflags)
        what = f"{comp.name} {comp.version} {arch}"
        # -ffile-prefix-map keeps the checkout path out of the binary: same digest anywhere.
        prefix_map = f"-ffile-prefix-map={comp.directory}=."
        cmd.run(
            [self._compiler(arch), *cflags, "-static", prefix_map, *defines, "-o", str(binary), *srcs],
            what=f"compile {what}",
        )
        cmd.run([f"{arch.triple}-strip", str(binary)], what=f"strip {what}")
        target = opts.output
        layer = ctx.store.write_layer(
            FilesLayer([FileEntry(target, binary.read_bytes(), 0o755)], ctx.settings.source_date_epoch)
        )
        return BuildOutput([layer], [f"{arch.triple}-gcc -static {' '.join(cflags)} -> {target}"])
