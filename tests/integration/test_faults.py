"""Faults in the middle of a build: the registry killed, the build killed, the cache's disk full.

Each ends in one clear message and a non-zero exit, leaves no list pointing at a missing
child and no per-arch tag on an unverified image, and a rerun completes and verifies.
Every registry here is a throwaway one on 127.0.0.1 with its own storage.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubemips.arch import parse_arch
from kubemips.localregistry import RegistryServer
from kubemips.verify import verify_list

from ..conftest import missing
from .conftest import BIN, REPO, Cli, own_registry, remove_engine_leftovers

pytestmark = pytest.mark.integration

AMD64 = parse_arch("amd64")
MIPS64EL = parse_arch("mips64el")


@pytest.fixture
def server(prerequisites: None, tmp_path: Path) -> Iterator[RegistryServer]:
    with own_registry(tmp_path / "registry") as srv:
        yield srv
    remove_engine_leftovers(srv.listen)


def _containers_from(registry: str) -> list[str]:
    import docker as sdk

    found = sdk.from_env().api.containers(all=True)
    return [c["Id"] for c in found if str(c.get("Image", "")).startswith(registry + "/")]


def _argv(*args: str) -> list[str]:
    return [str(BIN / "invoke"), "-r", str(REPO), "build", "--what", "pause", "--jobs", "1", *args]


def _start(cli: Cli, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _argv(*args), cwd=REPO, env=cli.environ(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _rerun_verifies(cli: Cli, server: RegistryServer, env: dict[str, str], *args: str, arches: list[object]) -> None:
    rerun = subprocess.run(_argv(*args), cwd=REPO, env=cli.environ(env), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr
    assert verify_list(server.client(), "pause", "3.1", arches)  # type: ignore[arg-type]


def test_registry_killed_mid_build(cli: Cli, server: RegistryServer, tmp_path: Path) -> None:
    """Killed after the image's blobs and manifest went up, before its smoke check pulled it."""
    env = {"REGISTRY": server.listen, "KUBEMIPS_CACHE": str(tmp_path / "cache")}
    proc = _start(cli, env, "--arch", "amd64")
    assert proc.stderr is not None  # progress goes to stderr, results to stdout
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "[pause/amd64] pushed pause@" in line:
            pid = server.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
    out, err = proc.communicate(timeout=600)
    shown = "".join(seen) + out + err
    assert proc.returncode == 1, shown
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"error: registry {server.listen} is not reachable (checked after pause/amd64 failed: ")
    assert "The build stopped there: 2 step(s) did not complete (pause/amd64, pause/list)" in err
    assert "Traceback" not in shown

    # Restarted on the same storage: the pushed blobs are there, no tag moved, no list.
    server.start()
    reg = server.client()
    assert reg.tags("pause") == []
    _rerun_verifies(cli, server, env, "--arch", "amd64", arches=[AMD64])


def test_build_killed_mid_smoke_check(cli: Cli, server: RegistryServer, tmp_path: Path) -> None:
    """`kill -9` of the build while a smoke check runs: nothing unverified is published, and
    the rerun completes and leaves nothing of the killed run behind."""
    cache = tmp_path / "cache"
    env = {"REGISTRY": server.listen, "KUBEMIPS_CACHE": str(cache)}
    # A half-written blob an earlier killed run left an hour ago: never trusted, removed.
    stale = cache / "blobs" / "tmp" / "tmpkilled"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\x1f\x8b half a layer")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    proc = _start(cli, env, "--arch", "amd64,mips64el")
    assert proc.stderr is not None
    for line in proc.stderr:
        if "[pause/amd64] pushed pause@" in line:
            break
    else:
        raise AssertionError("the build ended before it pushed pause/amd64")
    deadline = time.monotonic() + 60
    while not _containers_from(server.listen):  # the smoke check's container exists: kill now
        assert proc.poll() is None and time.monotonic() < deadline, "the smoke check never started"
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    reg = server.client()
    assert reg.get_manifest("pause", "3.1") is None
    assert reg.get_manifest("pause", "3.1-linux-amd64") is None  # pushed by digest, never smoke-checked
    # The other arch may have had its build slot first and finished: then its tag names the
    # image its smoke check passed on, never another.
    other = reg.get_manifest("pause", "3.1-linux-mips64le")
    if other is not None:
        passed = [p.name for p in (cache / "smoke").iterdir()]
        assert any(name.startswith(other.digest.removeprefix("sha256:")) for name in passed), (other.digest, passed)

    _rerun_verifies(cli, server, env, "--arch", "amd64,mips64el", arches=[AMD64, MIPS64EL])
    assert _containers_from(server.listen) == [], "the killed run's smoke container is still there"
    assert not stale.exists()
    assert list((cache / "blobs" / "tmp").iterdir()) == []


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        missing("mounting a tmpfs needs root")
    path.mkdir(parents=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "kubemips-test", str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        missing(f"cannot mount a tmpfs on {path}: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_full_cache_disk(cli: Cli, server: RegistryServer, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "cache", "64k") as cache:
        proc = cli.invoke(
            "build", "--what", "pause", "--arch", "amd64", "--jobs", "1", check=False,
            env={"REGISTRY": server.listen, "KUBEMIPS_CACHE": str(cache)},
        )  # fmt: skip
        shown = proc.stdout + proc.stderr
        assert proc.returncode == 1, shown
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, proc.stderr
        assert "No space left on device" in errors[0] and str(cache) in errors[0], errors[0]
        assert f"free of 64.0 KiB on the file system holding {cache}" in errors[0]
        assert "Traceback" not in shown and "internal error" not in shown
    assert server.client().tags("pause") == []


def test_full_disk_while_writing_a_blob(tmp_path: Path) -> None:
    """A blob that does not fit: the error names the file, and no partial file stays."""
    from kubemips import oci
    from kubemips.errors import DiskFull

    with tmpfs(tmp_path / "cache", "64k") as cache:
        store = oci.BlobStore(cache / "blobs")
        with pytest.raises(DiskFull) as err:
            store.put_bytes(os.urandom(256 * 1024), oci.LAYER)
        assert f"{cache}/blobs/tmp/" in str(err.value) and "No space left on device" in str(err.value)
        with pytest.raises(DiskFull, match=f"{cache}/blobs/tmp/.*No space left on device"):
            store.write_layer(oci.FilesLayer([oci.FileEntry("/big", os.urandom(256 * 1024))], 0))
        assert list((cache / "blobs" / "tmp").iterdir()) == []
        assert list((cache / "blobs" / "sha256").iterdir()) == []
