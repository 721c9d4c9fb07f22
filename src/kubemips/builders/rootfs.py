"""A Debian root filesystem from mmdebstrap, as one deterministic layer (debian-base).

mmdebstrap resolves packages from the configured (or host's) mirror and honours
SOURCE_DATE_EPOCH; the tar it writes is re-emitted with pinned metadata, so two builds
from the same package set give the same digest.  The package index digests of every
suite used are the build's inputs.

By default it runs chrootless: the host's dpkg unpacks the target's packages and runs
their maintainer scripts with the host's shell and tools (bookworm's essential set
honours DPKG_ROOT), so a mips64el root filesystem costs what an amd64 one does instead
of minutes of dpkg and maintainer scripts under QEMU.  Two things keep that safe and
right:

- the host is read-only to it: mmdebstrap runs in a private mount namespace where every
  host filesystem is remounted read-only, /tmp is a private tmpfs and only the build's
  work directory is writable, so a maintainer script that ignored DPKG_ROOT fails the
  build instead of changing the host;
- the host's ldconfig cannot read a foreign arch's libraries (it writes an empty cache
  for mips64el), so the target's own ldconfig rebuilds /etc/ld.so.cache at the end: the
  one target program that must run, under QEMU for a foreign arch (about a second).

The merged-/usr layout comes from mmdebstrap's merged-usr hook (the usr-is-merged
package), as in chroot mode, which otherwise pulls in usrmerge and perl.
``mode = "chroot"`` builds the classic way (everything under QEMU), for a package set
whose maintainer scripts do not support DPKG_ROOT.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import cmd
from ..arch import Arch
from ..components import Component, ImageDef
from ..errors import ConfigError
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
MODES = ("chrootless", "chroot")
SAFE_PATH = re.compile(r"/[A-Za-z0-9._+/-]+")
"""A ``files`` path: absolute, and plain enough to stand in a hook's shell line."""
HOOKS = "/usr/share/mmdebstrap/hooks"

READ_ONLY_HOST = r"""
set -eu
work=$1; shift
cd "$work"
findmnt -rn -o TARGET | while read -r m; do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue;; esac
  err=$(mount -o remount,bind,ro "$m" 2>&1) || [ ! -e "$m" ] ||
    { echo "cannot make $m read-only for the build: $err" >&2; exit 1; }
done
if [ -d "$work/dpkg.cfg.d" ]; then mount --bind "$work/dpkg.cfg.d" /etc/dpkg/dpkg.cfg.d; fi
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p "$work"
mount --no-canonicalize --bind "/proc/$$/cwd" "$work"
mount -o remount,bind,rw "$work"
cd "$work"
exec "$@"
"""
"""Run by ``unshare --mount`` (a private mount namespace): ``sh -c READ_ONLY_HOST sh
WORKDIR COMMAND...`` runs COMMAND with the host read-only but for WORKDIR and a private
/tmp.  The remounts are per mount point and belong to the namespace: the host keeps its
own mounts as they were; one whose mount point vanished meanwhile (a container the
engine just removed) is skipped, as nothing can reach it by its path.  WORKDIR is bound
by the directory the script stands in (its cwd), so it stays reachable when it lies
under /tmp, below the private tmpfs.  WORKDIR/dpkg.cfg.d, when there, takes the place
of the host's /etc/dpkg/dpkg.cfg.d: chrootless, the host's dpkg reads its configuration
from the host, so the build brings its own."""


def sandboxed(work: Path, argv: Sequence[str]) -> list[str]:
    """``argv`` run with the host read-only but for ``work`` (:data:`READ_ONLY_HOST`)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_HOST, "sh", str(work), *argv]


@dataclass(frozen=True, kw_only=True)
class RootfsOptions(Options):
    variant: str = "minbase"
    mode: str = "chrootless"
    """``chrootless`` (host tools, QEMU only for ldconfig) or ``chroot`` (all under QEMU)."""
    include: tuple[str, ...] = ()
    """Packages beyond the variant's."""
    path_exclude: tuple[str, ...] = DEFAULT_PATH_EXCLUDES
    path_include: tuple[str, ...] = DEFAULT_PATH_INCLUDES
    files: Mapping[str, str] = field(default_factory=dict)
    """Files written into the root filesystem at the end: absolute path -> content."""


class RootfsBuilder(Builder[RootfsOptions]):
    kind: ClassVar[str] = "debian-rootfs"
    version: ClassVar[str] = "2"  # 2: chrootless applies the path filters
    options = RootfsOptions

    def check(self, comp: Component) -> RootfsOptions:
        opts = super().check(comp)
        if opts.mode not in MODES:
            raise ConfigError(f"{comp.file}: [build] mode {opts.mode!r}: expected one of {', '.join(MODES)}")
        for path in opts.files:
            if not SAFE_PATH.fullmatch(path) or ".." in path.split("/"):
                raise ConfigError(
                    f"{comp.file}: [build] files: {path!r} is not an absolute path inside the image"
                    " (letters, digits and . _ + - / only)"
                )
        return opts

    def emulated(self, comp: Component) -> bool:
        return self.opts(comp).mode == "chroot"

    def _options(self, comp: Component) -> dict[str, Any]:
        """The options as an input of the key."""
        opts = self.opts(comp)
        return {
            "variant": opts.variant,
            "mode": opts.mode,
            "include": sorted(opts.include),
            "path-exclude": list(opts.path_exclude),
            "path-include": list(opts.path_include),
            "files": dict(sorted(opts.files.items())),
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
        suite = ctx.settings.debian_suite
        work = ctx.workdir(comp, arch)
        out = work / "rootfs.tar"
        out.unlink(missing_ok=True)
        filters = [f"path-exclude={p}" for p in opts.path_exclude] + [f"path-include={p}" for p in opts.path_include]
        argv: list[str] = ["mmdebstrap", f"--variant={opts.variant}", f"--arch={arch.debian}", "--quiet"]
        argv += [f"--mode={'root' if opts.mode == 'chroot' else opts.mode}", f"--hook-dir={HOOKS}/maybe-merged-usr"]
        for n, (path, content) in enumerate(sorted(opts.files.items())):
            source = work / f"file-{n}"
            source.write_text(content)
            copy = f'mkdir -p "$1{posixpath.dirname(path)}" && cp {shlex.quote(str(source))} "$1{path}"'
            argv.append(f"--customize-hook={copy}")
        if opts.mode == "chrootless":
            # The host's dpkg unpacks: it must apply the image's path filters (which the
            # image keeps for later installs through --dpkgopt) and none of the host's own.
            config = work / "dpkg.cfg.d"
            config.mkdir(exist_ok=True)
            (config / "kubemips").write_text("".join(f"{line}\n" for line in filters))
            argv.append("""--customize-hook=chroot "$1" /sbin/ldconfig""")
            argv = sandboxed(work, argv)
        if opts.include:
            argv.append("--include=" + ",".join(sorted(opts.include)))
        argv += [f"--dpkgopt={line}" for line in filters]
        argv += [suite, str(out)]
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
            [f"mmdebstrap --mode={opts.mode} --variant={opts.variant} --arch={arch.debian} {suite}"],
            labels={
                "org.kubemips.debian.suite": suite,
                "org.kubemips.debian.sources": "; ".join(f"{s.suite}@{s.index[:12]}" for s in sources),
            },
        )
