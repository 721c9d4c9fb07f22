"""Upstream sources, pinned: fetched once into the cache, checked, patched per arch.

A git source is fetched by its tag and must resolve to the pinned commit (a moved tag is
an error); a tarball must match its sha256; a Go module comes through the go command
(checked against go.sum and the checksum database) and must match its pinned go.sum hash.
A Go module's tree is then made buildable once per version, for every arch: the go.mod
edits the component pins (requirements dropped and added, replacements, each with its
go.sum lines, and further go.sum lines from its ``go-sum`` file), ``go mod vendor`` for a
GOPATH-layout build, and the files upstream's ``make generated_files`` wrote
(:mod:`kubemips.generate`).

A local tree (``--source DIR``) stands in for the upstream one and goes through the same
copy-and-patch path.  Patches apply only to their arches and version range, and a patch
that no longer applies fails the build naming the patch file.  A prepared tree is shared
by every component and image that builds from it (hyperkube and a dozen e2e images use
one Kubernetes tree): per arch only when a patch applies to that arch alone.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import threading
from pathlib import Path

import requests

from . import cmd, generate, gotool, log
from .arch import Arch
from .components import Component, Source
from .errors import BuildError, CommandError
from .oci import canonical_json

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def fetch(source: Source, cache: Path, go_cache: Path, *, what: str) -> Path:
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
            elif source.kind == "go-module":
                _fetch_go_module(source, dest, go_cache, what=what)
            else:
                _fetch_tarball(source, dest, cache, what=what)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        if source.generate:
            generate.run(source, dest, go_cache, what=what)
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


def _fetch_go_module(source: Source, dest: Path, go_cache: Path, *, what: str) -> None:
    got = gotool.download(source.module, source.version, go_cache, what=what)
    if got.sum != source.sum:
        raise BuildError(
            f"{what}: Go module {source.module}@{source.version} has go.sum hash {got.sum}, "
            f"but the component pins {source.sum}"
        )
    log.info(f"[{what}] {source.module}@{source.version} {got.sum} from the module cache")
    shutil.copytree(got.dir, dest, dirs_exist_ok=True)
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    if not (source.replaces or source.requires or source.drops or source.go_sum) and not source.gopath:
        return
    if not (dest / "go.mod").is_file():
        raise BuildError(f"{what}: {source.label} has no go.mod to add replacements to (add one with a patch)")
    env = gotool.environment(go_cache)
    go = gotool.toolchain().go
    if source.drops:
        named = gotool.mod_paths(dest, go_cache, what=what)
        for d in source.drops:
            if d.module not in named:
                raise BuildError(
                    f"{what}: {source.label}'s go.mod neither requires nor replaces {d.module}, "
                    "which the component drops (stale drop entry?)"
                )
    edits = [
        *(f"-droprequire={d.module}" for d in source.drops),
        *(f"-dropreplace={d.module}" for d in source.drops),
        *(f"-require={r.module}@{r.version}" for r in source.requires),
    ]
    if edits:
        cmd.run([go, "mod", "edit", *edits], cwd=dest, env=env, what=f"{what}: go mod edit (requirements)")
    for r in source.replaces:
        cmd.run(
            [go, "mod", "edit", f"-replace={r.module}={r.with_}@{r.version}"],
            cwd=dest,
            env=env,
            what=f"{what}: go mod edit (replace {r.module})",
        )
    with (dest / "go.sum").open("a") as sums:
        for r in source.replaces:
            sums.write(f"{r.with_} {r.version} {r.sum}\n{r.with_} {r.version}/go.mod {r.go_mod_sum}\n")
        for q in source.requires:
            sums.write(f"{q.module} {q.version} {q.sum}\n{q.module} {q.version}/go.mod {q.go_mod_sum}\n")
        sums.writelines(f"{line}\n" for line in source.go_sum)
    if source.gopath:
        log.info(f"[{what}] go mod vendor ({len(source.replaces)} replacements pinned)")
        try:
            cmd.run([go, "mod", "vendor"], cwd=dest, env=env, what=f"{what}: go mod vendor", echo=False)
        except CommandError as exc:
            raise BuildError(f"{what}: go mod vendor of {source.label} failed:\n{_tail(exc.output)}") from None


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def prepare(
    comp: Component, source: Source | None, local: Path | None, arch: Arch, cache: Path, go_cache: Path, version: str
) -> Path:
    """The tree to build ``comp`` for ``arch`` from: patched and generated, shared.

    Without a patch for this arch alone, every arch shares one tree.  A tree is made once
    and reused while its inputs (pristine source, patches, generators) are unchanged.
    """
    what = f"{comp.name} {comp.version} {arch}"
    pristine = local if local is not None else fetch(_required(source, comp), cache, go_cache, what=what)
    patches = [p for p in (source.patches if source else ()) if p.applies(arch, version, comp.name)]
    generators = source.generate if source else ()
    if local is None and not patches:
        return pristine  # generated once, in the pristine tree, at fetch
    origin = f"local:{local}" if local is not None else (source.pin if source else "")
    key = hashlib.sha256(
        canonical_json(
            {
                "origin": origin,
                "arch": arch.name if local is not None else "",
                "patches": {p.file.name: hashlib.sha256(p.file.read_bytes()).hexdigest() for p in patches},
                "generate": list(generators) if local is not None else [],
            }
        )
    ).hexdigest()[:20]
    tree = cache / "trees" / f"{comp.name}-{key}"
    with _lock(str(tree)):
        if (tree / ".kubemips-ok").exists() and local is None:
            return tree
        if tree.exists():
            shutil.rmtree(tree)
        shutil.copytree(pristine, tree, symlinks=True, ignore=shutil.ignore_patterns(".git", ".kubemips-ok"))
        for patch in patches:
            try:
                cmd.run(
                    ["patch", "-p1", "--forward", "--batch", "-i", str(patch.file)], cwd=tree, what=f"{what}: patch"
                )
            except CommandError as exc:
                raise BuildError(
                    f"{what}: patch {patch.file} does not apply (arches {patch.arches or 'all'}, "
                    f"versions {patch.versions or 'all'}):\n{exc.output.strip()[-1500:]}"
                ) from None
        if local is not None and source is not None:
            generate.run(source, tree, go_cache, what=what)
        (tree / ".kubemips-ok").write_text(origin + "\n")
    return tree


def _required(source: Source | None, comp: Component) -> Source:
    if source is None:
        raise BuildError(f"{comp.file}: no [source] pinned for {comp.name} and no --source directory given")
    return source
