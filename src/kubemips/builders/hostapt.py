"""A Dockerfile's package install step done by the host: QEMU only for maintainer scripts.

The project's Dockerfiles install Debian packages in one form (:data:`INSTALL`)::

    RUN apt-get update -q && apt-get install -y -q --no-install-recommends PKG... && \\
        REST && \\
        apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

For a foreign arch, all of that runs under QEMU: ``apt-get update`` decompresses and
parses the archive's whole index, the resolver runs, dpkg decompresses every package,
and only then do the maintainer scripts run.  Measured for apache2 on the mips64el
debian-base: 97 s under QEMU, of which configuring was 38 s.  Here the host does what
gives the same result natively:

- the host's apt (``APT_CONFIG`` pointing at the image's root, its sources, keyring and
  apt settings, ``APT::Architecture`` the target's) updates, resolves and downloads;
- the host's dpkg unpacks (``--root``: the image's dpkg database and its path filters;
  bookworm's dpkg on both sides); a preinst script still runs inside the image's root
  (chrooted: under QEMU);
- the image's own dpkg, chrooted, configures in apt's order (maintainer scripts and
  triggers are the target's programs, under QEMU).  The host's dpkg cannot do that part:
  it takes its own arch as the native one and would count ``perl-base`` (needed by
  ``perl-modules``) as missing.

Most of what is left under QEMU is programs starting up: ``a2enmod``,
``deb-systemd-helper``, ``adduser`` and debconf's frontend are perl programs, about a
second each under QEMU (apache2's postinst runs 38 of them: 40 of its 44 s), and shell
scripts such as ``update-ca-certificates`` start a few tools per certificate.  Where the
host has the same version of such a program, the configure steps run the host's
(:class:`NativeTools`); dpkg, ldconfig and the rest stay the image's own.

The result, the files the step added, changed or removed, becomes one layer on the base,
loaded into the engine; the Dockerfile's REST (the step without apt) and its other
instructions then build on it as before.  The host's filesystems are read-only to all of
it (:data:`kubemips.builders.rootfs.READ_ONLY_HOST`).  A Dockerfile whose install step is
not in this form builds the classic way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import tarfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cmd, log, timing
from ..arch import Arch
from ..errors import BuildError, CommandError
from ..oci import iso_time, sha256_digest
from .base import BaseImage, BuildContext
from .rootfs import sandboxed

INSTALL = re.compile(
    r"(?:set -eu && )?apt-get update -q && apt-get install -y -q --no-install-recommends"
    r" (?P<packages>[A-Za-z0-9.+:=~/-]+(?: [A-Za-z0-9.+:=~/-]+)*)"
    r" && (?P<rest>.+) && apt-get clean && rm -rf /var/lib/apt/lists/\* /var/cache/apt/\*\.bin"
)
"""The install step, its continuation lines joined."""

VERSION = "3"  # 2: the host's perl runs the perl scripts; 3: and the shell and text tools
"""Part of a build's inputs: a change here rebuilds what used it."""

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PLAN = re.compile(r"^(Inst|Conf) (\S+) (?:\[\S+\] )?\((\S+) [^()]*\[(\S+)\]\)(?: \[[^\]]*\])?$")
"""``apt-get -s install`` lines: what to unpack and configure, in apt's order (an upgrade
of a base package names the installed version in brackets first; a package whose
dependencies are still being unpacked ends in a bracketed list of them)."""


@dataclass(frozen=True)
class Split:
    """A Dockerfile whose install step the host can do."""

    packages: tuple[str, ...]
    dockerfile: str
    """The Dockerfile without the step's apt parts (REST stays a RUN)."""


def split(text: str) -> Split | None:
    """The Dockerfile's first RUN, if it is the install step in the project's form (on a
    base given as ``BASEIMAGE``, which the host's layer then replaces)."""
    if not re.search(r"^ARG BASEIMAGE$", text, re.M) or not re.search(r"^FROM \$\{BASEIMAGE\}$", text, re.M):
        return None
    lines = text.splitlines(keepends=True)
    for start, line in enumerate(lines):
        if not line.startswith("RUN "):
            continue
        end = start
        while lines[end].rstrip("\n").endswith("\\") and end + 1 < len(lines):
            end += 1
        joined = re.sub(r"\\\n\s*", "", "".join(lines[start : end + 1]))[len("RUN ") :].strip()
        match = INSTALL.fullmatch(joined)
        if match is None or "/var/cache/apt/archives" in match["rest"]:
            return None  # a step that keeps the .deb files needs them in the image: classic
        rest = f"RUN {match['rest']}\n"
        return Split(tuple(match["packages"].split()), "".join([*lines[:start], rest, *lines[end + 1 :]]))
    return None


def _sandbox(work: Path, script: str, *, what: str, timeout: int = 3600) -> str:
    """Run ``script`` (sh) with the host read-only but for ``work``; a failure is apt's or
    dpkg's last words, not the sandbox's script."""
    try:
        return cmd.run(sandboxed(work, ["sh", "-c", script]), what=what, timeout=timeout, echo=False).stdout
    except CommandError as exc:
        raise BuildError(f"{what} failed (exit code {exc.returncode}):\n{exc.tail(15)}") from None


MOUNT = "mnt"
"""Where the host's programs and libraries appear in the image's root while it configures:
an empty directory of every Debian root, so nothing is created in the image for them."""

TOOLS: dict[str, tuple[str, ...]] = {
    "perl-base": ("perl",),
    "dash": ("dash",),
    "sed": ("sed",),
    "grep": ("grep",),
    "findutils": ("find", "xargs"),
    "coreutils": (
        "basename", "cat", "chmod", "cp", "cut", "dirname", "expr", "head", "ln", "ls", "mkdir", "mktemp", "mv",
        "readlink", "realpath", "rm", "rmdir", "sort", "tail", "test", "[", "touch", "tr", "wc",
    ),
}  # fmt: skip
"""Programs of the maintainer scripts whose work does not depend on the arch they run on,
by the package that ships them in ``/usr/bin``: interpreters and text and file tools.
Not here, and so always the image's own: dpkg and its tools, ldconfig, and whatever
reports the machine (``uname``, ``arch``, ``nproc``)."""


@dataclass(frozen=True)
class NativeTools:
    """Host programs made runnable inside the image's root, for its configure steps.

    Maintainer scripts spend their time under QEMU starting programs, not computing:
    perl (``a2enmod``, ``deb-systemd-helper``, ``adduser``, debconf's frontend: about a
    second each), and the shell and the text tools of scripts such as
    ``update-ca-certificates`` (a basename, sed, readlink and ln per certificate).  For
    each program of :data:`TOOLS` whose package has the same upstream version on the host
    and in the image, a copy of the host's binary, its ELF loader and library path set
    (``patchelf``) to the host's library directory bound at ``/mnt/lib``, is bound over
    the image's file for each configure step.  The image's files are untouched (bind
    mounts in the build's mount namespace).  Perl gets the host's arch-specific core
    module directories (perl-base's and libperl's, which hold the compiled parts) on
    ``PERL5LIB``; pure-perl modules come from the image as for its own perl, and the
    host's third-party modules are not offered."""

    directory: Path
    libdir: Path
    paths: tuple[str, ...]
    """The image's programs bound over, relative to its root (``usr/bin/sed``)."""
    perl5lib: str

    def mount(self, root: str) -> str:
        """Shell lines binding them in (``root`` a shell word)."""
        top = f"{root}/{MOUNT}"
        lines = [f'mount --bind {shlex.quote(str(self.directory))} "{top}"']
        lines.append(f'mount --bind {shlex.quote(str(self.libdir))} "{top}/lib"')
        for path in self.paths:
            name = shlex.quote(str(self.directory / "bin" / Path(path).name))
            lines.append(f'mount --bind {name} "{root}"/{shlex.quote(path)}')
        return "; ".join(lines)

    def unmount(self, root: str) -> str:
        images = " ".join(f'"{root}"/{shlex.quote(p)}' for p in self.paths)
        return f'umount {images} "{root}/{MOUNT}/lib" "{root}/{MOUNT}"'

    def env(self) -> str:
        return f"PERL5LIB={self.perl5lib}" if self.perl5lib else ""


def _upstream(version: str) -> str:
    """``1:2.3-4+deb12u1`` -> ``2.3``: the program's own version, not Debian's revision."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def _image_versions(root: Path) -> dict[str, str]:
    """Installed packages of the image (its dpkg status): name -> version."""
    versions = {}
    for stanza in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.M))
        if fields.get("Package") and fields.get("Version"):
            versions[fields["Package"]] = fields["Version"]
    return versions


def native_tools(root: Path, work: Path, versions: dict[str, str], what: str) -> NativeTools | None:
    """The host's programs for ``root``'s configure steps (those of :data:`TOOLS` the host
    and the image, whose packages once unpacked are ``versions`` (name -> version), have
    at the same version), or None with the reason logged."""
    patchelf = shutil.which("patchelf")
    mount_point = root / MOUNT
    if patchelf is None:
        log.info(f"[{what}] maintainer scripts' programs all run under QEMU: no patchelf on the host")
        return None
    if not mount_point.is_dir() or any(mount_point.iterdir()):
        log.info(f"[{what}] maintainer scripts' programs all run under QEMU: the image has no empty /{MOUNT}")
        return None
    image = versions
    host_query = cmd.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *TOOLS], what="dpkg-query", echo=False, check=False
    )
    host = dict(line.split(" ", 1) for line in host_query.stdout.splitlines() if " " in line)
    chosen: list[tuple[Path, str]] = []
    for package, names in TOOLS.items():
        if package not in image or package not in host or _upstream(image[package]) != _upstream(host[package]):
            continue
        for name in names:
            inside, outside = root / "usr/bin" / name, Path("/usr/bin") / name
            if inside.is_file() and not inside.is_symlink() and outside.is_file():
                chosen.append((outside, f"usr/bin/{name}"))
    if not chosen:
        log.info(f"[{what}] maintainer scripts' programs all run under QEMU: no host program at the image's version")
        return None
    interpreter = Path(
        cmd.run([patchelf, "--print-interpreter", str(chosen[0][0])], what="patchelf", echo=False).stdout.strip()
    ).resolve()
    libdir = interpreter.parent
    directory = work / "native"
    (directory / "lib").mkdir(parents=True)
    (directory / "bin").mkdir()
    inside_lib = f"/{MOUNT}/lib"
    for outside, _ in chosen:
        copy = directory / "bin" / outside.name
        shutil.copy2(outside, copy)
        cmd.run(
            [patchelf, "--set-interpreter", f"{inside_lib}/{interpreter.name}", "--force-rpath", "--set-rpath",
             inside_lib, copy], what="patchelf", echo=False,
        )  # fmt: skip
    perl5lib = ""
    if "usr/bin/perl" in (p for _, p in chosen):
        inc = cmd.run(["/usr/bin/perl", "-e", 'print join("\\n", @INC), "\\n"'], what="host perl", echo=False)
        core = [d for d in inc.stdout.split() if d.startswith(f"{libdir}/perl") and "/perl5" not in d]
        perl5lib = ":".join(d.replace(str(libdir), inside_lib, 1) for d in core)
    listed = " ".join(Path(p).name for _, p in chosen)
    log.info(f"[{what}] maintainer scripts run the host's {listed} (the image's versions)")
    return NativeTools(directory, libdir, tuple(p for _, p in chosen), perl5lib)


def _apply_layer(tar_path: Path, root: Path) -> None:
    """Extract one image layer over ``root``, whiteouts applied (GNU tar keeps xattrs)."""
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
    for name in names:
        parent, _, base = name.removeprefix("./").rpartition("/")
        target = root / parent
        if base == ".wh..wh..opq":
            for child in target.iterdir() if target.is_dir() else ():
                _remove(child)
        elif base.startswith(".wh."):
            _remove(target / base.removeprefix(".wh."))
    cmd.run(
        ["tar", "-xpf", tar_path, "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*", "--exclude=.wh.*"],
        what=f"extract {tar_path.name}",
        echo=False,
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


Snapshot = dict[str, tuple[int, int]]


def _snapshot(root: Path) -> Snapshot:
    """Every path's inode and change time: a new content, mode or owner moves the change
    time, and dpkg replaces a file by renaming a new inode over it."""
    result: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            result[os.path.relpath(path, root)] = (st.st_ino, st.st_ctime_ns)
    return result


def _diff_layer(root: Path, before: Snapshot, out: Path, epoch: int) -> int:
    """Write the layer of what changed since ``before``; return its entry count."""
    after = _snapshot(root)
    changed = sorted(p for p, meta in after.items() if before.get(p) != meta)
    removed = sorted(p for p in before if p not in after and os.path.dirname(p) in after)
    listing = out.with_suffix(".list")
    for path in removed:
        parent, _, name = path.rpartition("/")
        whiteout = root / parent / f".wh.{name}"
        whiteout.touch()
        os.utime(whiteout, (epoch, epoch))
        changed.append(os.path.relpath(whiteout, root))
    listing.write_text("".join(f"{p}\n" for p in sorted(changed)))
    cmd.run(
        ["tar", "-cf", out, "-C", root, "--no-recursion", "--numeric-owner", "--xattrs", "--xattrs-include=*",
         f"--mtime=@{epoch}", "--clamp-mtime", "--format=posix", "--pax-option=delete=atime,delete=ctime",
         "--verbatim-files-from", "-T", listing],
        what="package layer", echo=False,
    )  # fmt: skip
    return len(changed)


def _plan(simulated: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """apt's order as runs of unpacks and configures: [(Inst|Conf, [(name, version, arch)])]."""
    steps: list[tuple[str, list[tuple[str, str, str]]]] = []
    for line in simulated.splitlines():
        if line.startswith(("Remv ", "Purg ")):
            raise BuildError(
                f"apt would remove a package of the base ({line}); the host's install removes none"
                " (a RUN step in another form installs inside the engine)"
            )
        match = PLAN.match(line)
        if match is None:
            if line.startswith(("Inst ", "Conf ")):
                raise BuildError(f"cannot read apt's plan line {line!r}")
            continue
        op, entry = match[1], (match[2], match[3], match[4])
        if steps and steps[-1][0] == op:
            steps[-1][1].append(entry)
        else:
            steps.append((op, [entry]))
    return steps


def _deb(debs: Path, name: str, version: str, arch: str) -> Path:
    """The file apt downloaded for a package (apt escapes the epoch's colon)."""
    path = debs / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
    if not path.is_file():
        raise BuildError(f"apt downloaded no {path.name} into {debs}")
    return path


class _Shared:
    """What the host's apt fetched, kept for the next image of the same arch: the package
    indexes (``apt-get update`` then only asks whether they changed) and the .deb files
    (apt checks a file it finds against the index's size and checksum before using it)."""

    def __init__(self, cache_dir: Path, arch: Arch) -> None:
        self.lists = cache_dir / "apt" / arch.debian / "lists"
        self.debs = cache_dir / "apt" / arch.debian / "debs"

    def seed(self, lists: Path, debs: Path) -> None:
        lists.mkdir(parents=True, exist_ok=True)
        for src, dest in ((self.lists, lists), (self.debs, debs)):
            for item in src.iterdir() if src.is_dir() else ():
                if item.is_file() and not item.name.startswith("."):
                    _link(item, dest / item.name)

    def keep(self, lists: Path, debs: Path) -> None:
        for src, dest in ((lists, self.lists), (debs, self.debs)):
            dest.mkdir(parents=True, exist_ok=True)
            for item in src.iterdir():
                if item.is_file() and item.name != "lock":
                    staged = dest / f".{item.name}.{os.getpid()}.{threading.get_ident()}"
                    _link(item, staged)
                    os.replace(staged, dest / item.name)  # whole files only, for a parallel build


def _link(src: Path, dest: Path) -> None:
    """A hard link (apt replaces files, never writes into them), or a copy across filesystems."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def install(ctx: BuildContext, arch: Arch, base: BaseImage, packages: Sequence[str], work: Path, what: str) -> str:
    """Install ``packages`` on ``base`` with the host's apt and dpkg; return a local image
    (base + one layer) for the rest of the Dockerfile to build on."""
    engine = ctx.engines.for_arch(arch)
    shutil.rmtree(work, ignore_errors=True)
    root, debs = work / "root", work / "debs"
    (debs / "partial").mkdir(parents=True)
    root.mkdir()
    with timing.phase("fetch"):
        engine.pull(base.ref, arch)
        saved = work / "base.tar"
        engine.save(base.ref, saved)
    with timing.phase("native"):
        manifest, config = _unpack_base(saved, root, work / "base")
        for mount_point in ("proc", "dev"):
            (root / mount_point).mkdir(exist_ok=True)
        arches = root / "var/lib/dpkg/arch"
        if not arches.is_file() or arches.read_text().split()[:1] != [arch.debian]:
            # The host's dpkg installs another arch's packages only where the database says
            # that arch is configured (mmdebstrap writes this file).
            raise BuildError(f"[{what}] the base {base.ref} does not name {arch.debian} in /var/lib/dpkg/arch")
        installed = _image_versions(root)
        before = _snapshot(root)
        shared = _Shared(ctx.settings.cache_dir, arch)
        shared.seed(root / "var/lib/apt/lists", debs)  # after the snapshot: not in the layer
        dpkg_cfg = root / "etc/dpkg/dpkg.cfg.d"
        if dpkg_cfg.is_dir():
            shutil.copytree(dpkg_cfg, work / "dpkg.cfg.d")  # the image's path filters, for the host's dpkg
        apt_conf = work / "apt.conf"
        apt_conf.write_text(
            f'Dir "{root}";\nDir::Cache::Archives "{debs}";\nAPT::Architecture "{arch.debian}";\n'
            f'APT::Architectures {{ "{arch.debian}"; }};\nAPT::Sandbox::User "root";\n'
        )
        env = f"export APT_CONFIG={shlex.quote(str(apt_conf))} DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8"
        quoted = " ".join(shlex.quote(p) for p in packages)
        log.info(f"[{what}] host apt: update, resolve, download {' '.join(packages)}")
        simulated = _sandbox(
            work,
            f"set -eu; {env}; apt-get -q update >&2; "
            f"apt-get -q -y --no-install-recommends --download-only install {quoted} >&2; "
            f"apt-get -q -y -s --no-install-recommends install {quoted}",
            what=f"[{what}] host apt for {arch}",
        )
        steps = _plan(simulated)
        shared.keep(root / "var/lib/apt/lists", debs)
    if not steps:
        raise BuildError(f"[{what}] apt planned nothing to install for {' '.join(packages)}")
    script = [
        "set -eu",
        env,
        f'root={shlex.quote(str(root))}; mount -t proc proc "$root/proc"; mount --rbind /dev "$root/dev"',
    ]
    planned = {e[0]: e[1] for op, entries in steps if op == "Inst" for e in entries}
    tools = native_tools(root, work, {**installed, **planned}, what)
    chroot = f'chroot "$root" /usr/bin/env -i PATH={PATH} DEBIAN_FRONTEND=noninteractive HOME=/root'
    if tools is not None and tools.env():
        chroot += f" {tools.env()}"

    def configure(args: str) -> str:
        if tools is None:
            return f"{chroot} dpkg --configure {args}"
        # Bound per step: an unpack (of a newer perl-base, say) must be able to replace the files.
        return f"{tools.mount('$root')}; {chroot} dpkg --configure {args}; {tools.unmount('$root')}"

    for op, entries in steps:
        if op == "Inst":
            files = " ".join(shlex.quote(str(_deb(debs, *e))) for e in entries)
            script.append(f'dpkg --root="$root" --force-depends --no-triggers --unpack {files}')
        else:
            script.append(configure(" ".join(e[0] for e in entries)))
    script.append(configure("-a"))
    manual = {p.split("=")[0].split("/")[0] for p in packages}
    # As apt-get install marks: what it pulled in is automatic; an upgraded base package
    # keeps its mark.
    auto = sorted({e[0] for op, entries in steps if op == "Inst" for e in entries} - manual - set(installed))
    if auto:
        script.append(f"apt-mark auto {' '.join(auto)} >/dev/null")
    script.append('rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin')
    count = sum(len(entries) for op, entries in steps if op == "Inst")
    log.info(f"[{what}] host dpkg unpacks {count} packages; the image's dpkg configures them")
    with timing.phase("emulated"):
        _sandbox(work, "\n".join(script), what=f"[{what}] install {' '.join(packages)} for {arch}")
    with timing.phase("layers"):
        layer = work / "layer.tar"
        entries_written = _diff_layer(root, before, layer, ctx.settings.source_date_epoch)
        size = layer.stat().st_size
        how = "host apt and dpkg" + (", host tools" if tools is not None else "")
        tag = _load(ctx, arch, manifest, config, work / "base", layer, packages, how, what)
    log.info(f"[{what}] package layer: {entries_written} entries, {size / 2**20:.1f} MiB")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(debs, ignore_errors=True)
    saved.unlink(missing_ok=True)
    return tag


def _unpack_base(saved: Path, root: Path, layers: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Lay the base's layers (``docker save`` output, extracted into ``layers``, where
    :func:`_load` reuses them) out in ``root``."""
    shutil.rmtree(layers, ignore_errors=True)
    layers.mkdir()
    with tarfile.open(saved) as tar:
        tar.extractall(layers, filter="data")
    (manifest,) = json.loads((layers / "manifest.json").read_text())
    config = json.loads((layers / manifest["Config"]).read_text())
    for layer in manifest["Layers"]:
        _apply_layer(layers / layer, root)
    return manifest, config


def _load(
    ctx: BuildContext,
    arch: Arch,
    manifest: dict[str, Any],
    config: dict[str, Any],
    layers: Path,
    layer: Path,
    packages: Sequence[str],
    how: str,
    what: str,
) -> str:
    """``docker load`` the base (its saved files in ``layers``) plus ``layer`` under a
    local tag; return the tag."""
    with layer.open("rb") as data:
        diff_id = "sha256:" + hashlib.file_digest(data, "sha256").hexdigest()
    shutil.move(layer, layers / "packages.tar")
    new = dict(config)
    new["rootfs"] = {"type": "layers", "diff_ids": [*config["rootfs"]["diff_ids"], diff_id]}
    step = f"apt-get install --no-install-recommends {' '.join(packages)} ({how}, {VERSION})"
    created = iso_time(ctx.settings.source_date_epoch)
    new["history"] = [*config.get("history", []), {"created": created, "created_by": step}]
    body = json.dumps(new, sort_keys=True).encode()
    name = sha256_digest(body).removeprefix("sha256:")
    (layers / f"{name}.json").write_bytes(body)
    tag = f"kubemips-packages/{what.replace('/', '-')}:{diff_id[7:19]}"
    entry = {"Config": f"{name}.json", "RepoTags": [tag], "Layers": [*manifest["Layers"], "packages.tar"]}
    (layers / "manifest.json").write_text(json.dumps([entry]))
    (layers / "repositories").unlink(missing_ok=True)
    archive = layers.parent / "load.tar"
    with tarfile.open(archive, "w") as tar:
        for child in sorted(layers.iterdir()):
            tar.add(child, arcname=child.name)
    shutil.rmtree(layers)
    ctx.engines.for_arch(arch).load(archive, what=what)
    archive.unlink()
    return tag
