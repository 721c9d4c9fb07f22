"""Fixtures with real pieces: a registry on a free loopback port, the Docker daemon, QEMU.

Builds run through the `invoke` entry point in a subprocess, exactly as a user runs them,
with REGISTRY pointing at the test registry and a private cache directory (so nothing a
developer built earlier can make a test pass).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubemips.arch import parse_arch
from kubemips.errors import KubemipsError
from kubemips.host import check_emulation
from kubemips.localregistry import RegistryServer
from kubemips.registry import Registry

from ..conftest import missing

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def prerequisites() -> None:
    for tool in (
        "docker-registry",
        "mmdebstrap",
        "mips64el-linux-gnuabi64-gcc",
        "x86_64-linux-gnu-gcc",
        "skopeo",
        "docker",
    ):
        if shutil.which(tool) is None:
            missing(f"{tool} not on PATH (run scripts/setup-host.sh)")
    try:
        check_emulation(parse_arch("mips64el"))
    except KubemipsError as exc:
        missing(str(exc))
    import docker

    try:
        docker.from_env().ping()
    except Exception as exc:
        missing(f"no Docker daemon: {exc}")


@dataclass
class Cli:
    """Runs the project's entry points as a user would, against one registry and cache."""

    registry: str
    cache: Path
    env: dict[str, str] = field(default_factory=dict)
    last_elapsed: float = 0.0

    def environ(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("KUBEMIPS_CONFIG", None)
        env.update({"REGISTRY": self.registry, "KUBEMIPS_CACHE": str(self.cache), **self.env, **(extra or {})})
        return {k: v for k, v in env.items() if v != ""}

    def invoke(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "invoke"), "-r", str(REPO), *args]
        began = time.monotonic()
        proc = subprocess.run(argv, cwd=cwd, env=self.environ(env), capture_output=True, text=True, timeout=3000)
        self.last_elapsed = time.monotonic() - began
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(argv)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def build(self, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO, check: bool = True) -> Built:
        """`invoke build ARGS --report FILE`, returning the parsed report."""
        return self.invoke_build_task("build", *args, env=env, cwd=cwd, check=check)

    def invoke_build_task(
        self, task: str, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO, check: bool = True
    ) -> Built:
        """`invoke TASK ARGS --report FILE` for a build task, returning the parsed report."""
        fd, name = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        report = Path(name)
        report.unlink()
        proc = self.invoke(task, *args, "--report", str(report), env=env, cwd=cwd, check=check)
        data = json.loads(report.read_text()) if report.exists() else {}
        report.unlink(missing_ok=True)
        return Built(proc, data, self.last_elapsed)


@dataclass
class Built:
    """One `invoke build` run: the process and its JSON report."""

    proc: subprocess.CompletedProcess[str]
    report: dict[str, Any]
    elapsed: float

    def image(self, name: str, arch: str) -> dict[str, Any]:
        found = [i for i in self.report["images"] if i["name"] == name and i["arch"] == arch]
        assert found, f"{name}/{arch} not in report:\n{self.proc.stdout}"
        return found[0]

    def list(self, name: str) -> dict[str, Any]:
        found = [i for i in self.report["lists"] if i["name"] == name]
        assert found, f"list {name} not in report:\n{self.proc.stdout}"
        return found[0]


@contextmanager
def own_registry(state: Path) -> Iterator[RegistryServer]:
    """A registry of the test's own on a free loopback port, its data under ``state``."""
    server = RegistryServer(f"127.0.0.1:{free_port()}", state)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry_server(prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with own_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def registry(registry_server: RegistryServer) -> Registry:
    return registry_server.client()


@pytest.fixture(scope="session")
def cli(registry_server: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(registry_server.listen, tmp_path_factory.mktemp("cache"))


def docker_cli() -> str:
    """Debian's CLI when present (the other on PATH may be newer than the daemon)."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([docker_cli(), *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def remove_engine_leftovers(registry: str) -> None:
    """Containers and image references of ``registry`` (a test's own) in the Docker engine.

    Images go by reference, never by ID: digests are reproducible, so the same image may
    also be known under other names (another registry's, a running cluster's) that stay."""
    for line in docker("ps", "-a", "--format", "{{.ID}} {{.Image}}").stdout.splitlines():
        cid, _, image = line.partition(" ")
        if image.startswith(registry + "/"):
            docker("rm", "-f", cid, check=False)
    listing = docker("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").stdout
    for repo, tag, digest in (line.split() for line in listing.splitlines()):
        if repo.startswith(registry + "/"):
            for ref in ([f"{repo}:{tag}"] if tag != "<none>" else []) + (
                [f"{repo}@{digest}"] if digest != "<none>" else []
            ):
                docker("rmi", ref, check=False)


def skopeo_raw(ref: str, *, config: bool = False) -> str:
    argv = ["skopeo", "inspect", "--tls-verify=false", "--raw"]
    if config:
        argv = ["skopeo", "inspect", "--tls-verify=false", "--config"]
    proc = subprocess.run([*argv, f"docker://{ref}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="session")
def built_pause(cli: Cli) -> Built:
    return cli.build("--what", "pause", "--arch", "amd64,mips64el")


@pytest.fixture(scope="session")
def built_base(cli: Cli) -> Built:
    return cli.build("--what", "debian-base", "--arch", "amd64,mips64el")
