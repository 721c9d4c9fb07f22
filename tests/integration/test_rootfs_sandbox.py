"""The read-only host a chrootless mmdebstrap runs in (kubemips.builders.rootfs).

Maintainer scripts run there with the host's tools; one that ignored DPKG_ROOT must fail
the build, not change the host.  Checked with the very script and unshare call the
builder uses, on this machine's real mounts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubemips.builders import rootfs

pytestmark = pytest.mark.integration


def sandboxed(work: Path, script: str) -> subprocess.CompletedProcess[str]:
    argv = rootfs.sandboxed(work, ["sh", "-c", script])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_only_the_work_directory_is_writable(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    beside = tmp_path / "beside"  # under /tmp, like the work directory: the private tmpfs
    host = Path("/var/tmp") / f"kubemips-sandbox-{tmp_path.name}"  # the host's disk
    proc = sandboxed(
        work,
        f"echo in > {work}/made; "
        f"touch {host} 2>/dev/null && echo wrote-host; "
        f"touch /etc/kubemips-sandbox 2>/dev/null && echo wrote-etc; "
        f"echo tmp > {beside} && cat {beside}",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["tmp"]
    assert (work / "made").read_text() == "in\n"
    assert not beside.exists()
    assert not host.exists()
    assert not Path("/etc/kubemips-sandbox").exists()


def test_the_host_keeps_its_mounts(tmp_path: Path) -> None:
    before = Path("/proc/self/mountinfo").read_text()
    assert sandboxed(tmp_path, "true").returncode == 0
    assert Path("/proc/self/mountinfo").read_text() == before
