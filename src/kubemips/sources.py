"""Upstream sources, pinned: fetched once into the cache, checked, patched per arch.

A git source is fetched by its tag and must resolve to the pinned commit (a moved tag is
an error); a tarball must match its sha256.  A local tree (``--source DIR``) stands in
for the upstream one and goes through the same copy-and-patch path, so tests exercise
the code a user with network runs.  Patches apply only to their arches and version
range, and a patch that no longer applies fails the build naming the patch file.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import threading
from pathlib import Path

import requests

from . import cmd, log
from .arch import Arch
from .components import Component, Source
from .errors import BuildError, CommandError

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def fetch(source: Source, cache: Path, *, what: str) -> Path:
    """The pristine upstream tree for ``source`` (downloaded at most once)."""
    dest = cache / "sources" / f"{source.kind}-{source.pin}"
    with _lock(str(dest)):
        if (dest / ".kubemips-ok").exists():
            return dest
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        try:
            if source.kind == "git":
                _fetch_git(source, dest, what=what)
            else:
                _fetch_tarball(source, dest, cache, what=what)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        (dest / ".kubemips-ok").write_text(source.pin + "\n")
    return dest


def _fetch_git(source: Source, dest: Path, *, what: str) -> None:
    ref = source.ref or source.commit
    log.info(f"[{what}] fetching {source.url} {ref}")
    cmd.run(["git", "init", "-q", str(dest)], what=f"{what}: git init")
    cmd.run(
        ["git", "-C", str(dest), "fetch", "-q", "--depth", "1", source.url, ref],
        what=f"{what}: git fetch {source.url} {ref}",
    )
    got = cmd.output(["git", "-C", str(dest), "rev-parse", "FETCH_HEAD^{commit}"])
    if got != source.commit:
        raise BuildError(f"{what}: {source.url} {ref} is commit {got}, but the component pins {source.commit}")
    cmd.run(["git", "-C", str(dest), "checkout", "-q", got], what=f"{what}: git checkout")


def _fetch_tarball(source: Source, dest: Path, cache: Path, *, what: str) -> None:
    archive = cache / "sources" / f"{source.sha256}.tar"
    log.info(f"[{what}] downloading {source.url}")
    digest = hashlib.sha256()
    if source.url.startswith("file:"):
        local = Path(source.url.removeprefix("file:").removeprefix("//"))
        try:
            data = local.read_bytes()
        except OSError as exc:
            raise BuildError(f"{what}: cannot read {local}: {exc.strerror}") from None
        digest.update(data)
        archive.write_bytes(data)
    else:
        try:
            with requests.get(source.url, stream=True, timeout=(10, 300)) as resp:
                if resp.status_code != 200:
                    raise BuildError(f"{what}: download of {source.url} answered {resp.status_code}")
                with archive.open("wb") as out:
                    for chunk in resp.iter_content(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        except requests.RequestException as exc:
            raise BuildError(f"{what}: download of {source.url} failed: {exc}") from None
    if digest.hexdigest() != source.sha256:
        archive.unlink(missing_ok=True)
        raise BuildError(
            f"{what}: sha256 mismatch for {source.url}: got {digest.hexdigest()}, the component pins {source.sha256}"
        )
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")[source.strip :]
            if not parts or parts == [""]:
                continue
            member.name = "/".join(parts)
            tar.extract(member, dest, filter="data")
    archive.unlink(missing_ok=True)


def prepare(comp: Component, source: Source | None, local: Path | None, arch: Arch, work: Path, cache: Path) -> Path:
    """A private copy of the source for this arch, with its patches applied."""
    what = f"{comp.name} {comp.version} {arch}"
    pristine = local if local is not None else fetch(_required(source, comp), cache, what=what)
    tree = work / "src"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(pristine, tree, symlinks=True, ignore=shutil.ignore_patterns(".git", ".kubemips-ok"))
    for patch in source.patches if source else ():
        if not patch.applies(arch, comp.version):
            continue
        try:
            cmd.run(["patch", "-p1", "--forward", "--batch", "-i", str(patch.file)], cwd=tree, what=f"{what}: patch")
        except CommandError as exc:
            raise BuildError(
                f"{what}: patch {patch.file} does not apply (arches {patch.arches or 'all'}, "
                f"versions {patch.versions or 'all'}):\n{exc.output.strip()[-1500:]}"
            ) from None
    return tree


def _required(source: Source | None, comp: Component) -> Source:
    if source is None:
        raise BuildError(f"{comp.file}: no [source] pinned for {comp.name} and no --source directory given")
    return source
