"""Host prerequisites checked before work starts, so a missing piece fails fast and clearly."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .arch import Arch, host_arch
from .errors import PrerequisiteError

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


def check_emulation(arch: Arch, *, binfmt_dir: Path = BINFMT_DIR) -> None:
    """A foreign-arch container runs only with a QEMU binfmt entry flagged F (fix-binary):
    the interpreter is opened at registration, so it works inside any container rootfs."""
    if arch == host_arch():
        return
    entry = binfmt_dir / f"qemu-{arch.qemu}"
    fix = "run scripts/setup-host.sh (installs qemu-user-static and enables its binfmt entries)"
    try:
        text = entry.read_text()
    except OSError:
        raise PrerequisiteError(f"no QEMU binfmt entry for {arch} ({entry} missing): {fix}") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "enabled":
        raise PrerequisiteError(f"QEMU binfmt entry {entry} is disabled: {fix}")
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        raise PrerequisiteError(
            f"QEMU binfmt entry {entry} lacks the F (fix-binary) flag, so containers cannot use it: {fix}"
        )


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie child is reaped and counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True
