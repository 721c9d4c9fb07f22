"""Files upstream's ``make generated_files`` writes and a Go module does not carry.

Kubernetes v1.16 commits its deepcopy, conversion and defaulter code, but not two files
the programs this project builds need: the OpenAPI definitions the API server serves
(``pkg/generated/openapi/zz_generated.openapi.go``, for hyperkube) and the test manifests
compiled into e2e.test (``test/e2e/generated/bindata.go``).  Each generator here repeats
one rule of upstream's ``build/root/Makefile.generated_files`` / ``hack/generate-bindata.sh``
with the generator version the tree itself vendors, run once per source version on the
host (the output does not depend on the target arch), in a GOPATH layout as upstream ran
it.  Output is deterministic: the same tree gives the same files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from . import cmd, gotool, log
from .components import Source
from .errors import BuildError, CommandError

OPENAPI_TAG = "+k8s:openapi-gen="
_OPENAPI_SKIP = ("vendor/k8s.io/code-generator/", "vendor/k8s.io/sample-apiserver/")
"""Upstream generates those two into their own packages (the published modules carry them)."""


def gopath_env(source: Source, tree: Path, go_cache: Path) -> tuple[dict[str, str], Path]:
    """A GOPATH whose ``src/<module path>`` is ``tree``: the environment and that directory."""
    return gotool.gopath_layout(go_cache, tree.parent / f"{tree.name}.gopath", source.module, tree)


def _tool(source_pin: str, package: str, name: str, env: dict[str, str], cwd: Path, go_cache: Path, what: str) -> Path:
    """Build a generator from the tree's vendor/ for the host."""
    out = go_cache / "tools" / source_pin / name
    out.parent.mkdir(parents=True, exist_ok=True)
    host_env = {**env, "GOOS": "", "GOARCH": ""}
    cmd.run(
        [gotool.toolchain().go, "build", "-o", str(out), package],
        cwd=cwd,
        env=host_env,
        what=f"{what}: build {name} from {package}",
    )
    return out


def _openapi(source: Source, tree: Path, go_cache: Path, what: str) -> None:
    env, root = gopath_env(source, tree, go_cache)
    tool = _tool(source.pin, "./vendor/k8s.io/kube-openapi/cmd/openapi-gen", "openapi-gen", env, root, go_cache, what)
    dirs: set[str] = set()
    for base in ("pkg", "cmd", "plugin", "test", "vendor", "staging"):
        for path in sorted((tree / base).rglob("*.go")) if (tree / base).is_dir() else ():
            rel = path.relative_to(tree).as_posix()
            if rel.endswith("_test.go") or rel.startswith(_OPENAPI_SKIP):
                continue
            # As the Makefile: a file with a column-0 `// +k8s:` tag that mentions the tag.
            text = path.read_text(errors="replace")
            if OPENAPI_TAG in text and re.search(r"^// *\+k8s:", text, re.MULTILINE):
                dirs.add(Path(rel).parent.as_posix())
    if not dirs:
        raise BuildError(f"{what}: no package in {source.label} asks for OpenAPI generation ({OPENAPI_TAG})")
    boilerplate = tree / "hack" / "boilerplate" / "boilerplate.generatego.txt"
    report = tree.parent / f"{tree.name}.openapi-violations.report"
    inputs = ",".join(f"{source.module}/{d}" for d in sorted(dirs))
    cmd.run(
        [
            tool,
            "--logtostderr",
            "-i",
            inputs,
            "-p",
            f"{source.module}/pkg/generated/openapi",
            "-O",
            "zz_generated.openapi",
            "-h",
            str(boilerplate),
            "-r",
            str(report),
        ],
        cwd=root,
        env=env,
        what=f"{what}: openapi-gen ({len(dirs)} packages)",
        echo=False,
    )
    out = tree / "pkg" / "generated" / "openapi" / "zz_generated.openapi.go"
    if not out.is_file():
        raise BuildError(f"{what}: openapi-gen wrote no {out}")
    log.info(f"[{what}] generated {out.relative_to(tree)} from {len(dirs)} packages")


def _e2e_bindata(source: Source, tree: Path, go_cache: Path, what: str) -> None:
    env, root = gopath_env(source, tree, go_cache)
    tool = _tool(
        source.pin, "./vendor/github.com/go-bindata/go-bindata/go-bindata", "go-bindata", env, root, go_cache, what
    )
    out = "test/e2e/generated/bindata.go"
    # As hack/generate-bindata.sh: run from the root, for stable paths in the output.
    cmd.run(
        [
            tool,
            "-nometadata",
            "-o",
            out,
            "-pkg",
            "generated",
            "-ignore",
            ".jpg",
            "-ignore",
            ".png",
            "-ignore",
            ".md",
            "-ignore",
            "BUILD(\\.bazel)?",
            "test/e2e/testing-manifests/...",
            "test/images/...",
            "test/fixtures/...",
        ],
        cwd=root,
        env=env,
        what=f"{what}: go-bindata (e2e test manifests)",
        echo=False,
    )
    cmd.run([str(Path(gotool.toolchain().go).parent / "gofmt"), "-s", "-w", out], cwd=root, what=f"{what}: gofmt")
    log.info(f"[{what}] generated {out}")


GENERATORS: dict[str, Callable[[Source, Path, Path, str], None]] = {
    "openapi": _openapi,
    "e2e-bindata": _e2e_bindata,
}


def run(source: Source, tree: Path, go_cache: Path, *, what: str) -> None:
    """Run the source's generators in ``tree`` (a GOPATH-layout Kubernetes tree)."""
    for name in source.generate:
        try:
            GENERATORS[name](source, tree, go_cache, what)
        except CommandError as exc:
            raise BuildError(f"{what}: generator '{name}' failed for {source.label}:\n{exc}") from None
