"""The Go toolchain and module downloads: one toolchain for every Go build, chosen once.

Why not simply the newest ``go`` on PATH: the Go programs this project builds are of the
Kubernetes v1.16 era, and newer toolchains break them at run time, not at compile time.
modern-go/reflect2 v1.0.1 (pinned by Kubernetes v1.16, used by json-iterator for every
API object) crashes with Go >= 1.18 (the components bump it to v1.0.2), and reflect2's
map access breaks with the Swiss-table maps of Go >= 1.24.  So the toolchain is the
newest Go in :data:`SUPPORTED` among Debian's packaged ones (``golang-1.19`` is Debian
12's ``golang-go``; bookworm-backports has 1.21 to 1.23) and the ``go`` on PATH, or the
one named by ``KUBEMIPS_GO``.  Every arch uses the same toolchain, so the module cache
and the build cache are shared by all of them.

Module downloads go through the go command, which checks every module against go.sum
and the checksum database; GOPROXY, GOSUMDB, GOFLAGS, GOPRIVATE, GONOSUMDB and GOINSECURE
come from the user's environment, with the go command's defaults (an offline build from a
warm cache is ``GOPROXY=off``, when the user asks for it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cmd, versions
from .errors import BuildError, CommandError, PrerequisiteError

SUPPORTED = ">=1.19.0,<1.24.0"
"""Go versions that build and run Kubernetes v1.16-era code correctly (see module doc)."""

_DEBIAN_GLOB = "/usr/lib/go-1.*"
"""Where Debian installs its versioned Go packages (golang-1.19, golang-1.21, ...)."""
_USER_VARS = ("GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOINSECURE", "GOFLAGS")


@dataclass(frozen=True)
class Toolchain:
    go: str
    """Absolute path of the go binary."""
    version: str
    """``go1.19.8``"""

    @property
    def description(self) -> str:
        return f"{self.version} ({self.go})"


def _version_of(go: str) -> str:
    try:
        out = cmd.output([go, "env", "GOVERSION"], env={"GOTOOLCHAIN": "local"})
    except (CommandError, PrerequisiteError):
        return ""
    return out.strip()


def _semver(goversion: str) -> str:
    m = re.fullmatch(r"go(\d+)\.(\d+)(?:\.(\d+))?", goversion)
    return f"{m.group(1)}.{m.group(2)}.{m.group(3) or 0}" if m else ""


@functools.cache
def toolchain() -> Toolchain:
    """The Go toolchain for every build (see the module docstring for why this one)."""
    forced = os.environ.get("KUBEMIPS_GO", "")
    if forced:
        version = _version_of(forced)
        if not version:
            raise PrerequisiteError(f"KUBEMIPS_GO={forced} is not a working go binary")
        return Toolchain(cmd.which(forced), version)
    pattern = Path(_DEBIAN_GLOB)
    candidates = sorted(pattern.parent.glob(f"{pattern.name}/bin/go"))
    on_path = shutil.which("go")
    found: list[tuple[tuple[int, ...], Toolchain]] = []
    for go in [*map(str, candidates), *([on_path] if on_path else [])]:
        version = _version_of(go)
        sv = _semver(version)
        if sv and versions.in_range(sv, SUPPORTED):
            found.append((tuple(int(x) for x in sv.split(".")), Toolchain(go, version)))
    if not found:
        raise PrerequisiteError(
            f"no Go toolchain in {SUPPORTED} found (looked at /usr/lib/go-1.*/bin/go and go on PATH"
            f"{', which is ' + (_version_of(on_path) or 'not working') if on_path else ''}); "
            "install Debian's golang-go (scripts/setup-host.sh) or set KUBEMIPS_GO"
        )
    return max(found, key=lambda item: item[0])[1]


def environment(go_cache: Path, **extra: str) -> dict[str, str]:
    """Environment for a go command: project caches, the user's proxy settings kept."""
    tc = toolchain()
    flags = os.environ.get("GOFLAGS", "")
    env = {
        "GOCACHE": str(go_cache / "build"),
        "GOMODCACHE": str(go_cache / "mod"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": " ".join(f for f in [flags, "-modcacherw"] if f),
        "PATH": f"{Path(tc.go).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GO111MODULE": "on",
    }
    env.update({k: os.environ[k] for k in _USER_VARS if k in os.environ and k != "GOFLAGS"})
    env.update(extra)
    return env


def gopath_layout(go_cache: Path, gopath: Path, import_path: str, tree: Path) -> tuple[dict[str, str], Path]:
    """GOPATH mode for ``tree`` as ``import_path``: the environment and the directory to
    build in (``gopath/src/<import path>``, a link to the tree).

    PWD names the link: the go command takes the working directory from it, and only a
    directory inside GOPATH sees its vendor/.  Idempotent, so builds sharing a tree share
    its link."""
    link = gopath / "src" / import_path
    link.parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and Path(os.readlink(link)) == tree):
        if link.is_symlink() or link.exists():
            link.unlink()
        with contextlib.suppress(FileExistsError):  # another build of the same tree made it first
            link.symlink_to(tree)
    env = environment(go_cache, GOPATH=str(gopath), GO111MODULE="off", GOFLAGS="", CGO_ENABLED="0", PWD=str(link))
    return env, link


@dataclass(frozen=True)
class Download:
    dir: Path
    sum: str


def download(module: str, version: str, go_cache: Path, *, what: str) -> Download:
    """``go mod download`` one module version into the project's module cache."""
    tc = toolchain()
    with tempfile.TemporaryDirectory(prefix="kubemips-gomod-") as scratch:
        proc = cmd.run(
            [tc.go, "mod", "download", "-json", f"{module}@{version}"],
            cwd=Path(scratch),
            env=environment(go_cache),
            what=f"{what}: fetch Go module {module}@{version}",
            check=False,
        )
    info = _first_json(proc.stdout)
    error = str(info.get("Error", "")) if info else ""
    if proc.returncode != 0 or not info or error:
        detail = error or proc.stdout.strip()[-1500:]
        raise BuildError(f"{what}: fetching Go module {module}@{version} failed: {detail}")
    return Download(dir=Path(str(info["Dir"])), sum=str(info.get("Sum", "")))


def mod_paths(module_dir: Path, go_cache: Path, *, what: str) -> set[str]:
    """The module paths ``module_dir``'s go.mod requires or replaces."""
    out = cmd.output(
        [toolchain().go, "mod", "edit", "-json", str(module_dir / "go.mod")],
        env=environment(go_cache),
        what=f"{what}: read {module_dir / 'go.mod'}",
    )
    return paths_in_go_mod(out)


def paths_in_go_mod(json_text: str) -> set[str]:
    """Module paths in ``go mod edit -json`` output: each requirement and replaced path."""
    doc = _first_json(json_text) or {}
    paths = {str(r["Path"]) for r in doc.get("Require") or [] if isinstance(r, dict) and "Path" in r}
    for r in doc.get("Replace") or []:
        old = r.get("Old") if isinstance(r, dict) else None
        if isinstance(old, dict) and "Path" in old:
            paths.add(str(old["Path"]))
    return paths


def _first_json(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
