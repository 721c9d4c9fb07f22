"""Builders of throwaway project trees for tests."""

from __future__ import annotations

from pathlib import Path


def write_component(root: Path, name: str, body: str) -> Path:
    path = root / "components" / name / "component.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def simple(name: str, base: str = "scratch", version: str = "1.0.0") -> str:
    return f"""
name = "{name}"
version = "{version}"
[build]
kind = "c-static"
sources = ["main.c"]
output = "/bin/{name}"
[image]
base = "{base}"
[smoke]
command = ["/bin/{name}"]
expect = "ok"
"""


def go_component(source: str) -> str:
    """A Go-module component x at v1.16.2; ``source`` goes into its [source] table."""
    return f"""
name = "x"
version = "v1.16.2"
[source]
kind = "go-module"
module = "k8s.io/kubernetes"
{source}
[build]
kind = "go"
binaries = [{{ name = "x", package = "./cmd/x" }}]
[image]
files = {{ "/x" = "x" }}
[smoke]
command = ["/x"]
expect = "ok"
"""
