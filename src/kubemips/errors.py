"""Error types.  Raised anywhere, caught once at the edge (tasks.py / noxfile.py / cli).

Each message names what failed and where, so the edge only has to print it and pick an
exit code.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
from os import PathLike

from .sizes import human_size


class KubemipsError(Exception):
    """Base of every error the project reports to the user without a traceback."""

    exit_code = 1


class ConfigError(KubemipsError):
    """Bad configuration or bad user input: unknown arch, image, key, malformed value."""

    exit_code = 2


class CommandError(KubemipsError):
    """An external command failed; carries the command and its output for the report."""

    def __init__(self, argv: list[str], returncode: int, output: str, *, what: str = "") -> None:
        self.argv = argv
        self.returncode = returncode
        self.output = output
        self.what = what or shlex.join(argv)
        tail = self.tail()
        prefix = f"{what}: " if what else ""
        super().__init__(
            f"{prefix}command failed with exit code {returncode}: {shlex.join(argv)}"
            + (f"\n--- last lines of output ---\n{tail}" if tail else "")
        )

    def tail(self, lines: int = 25) -> str:
        """The output's last lines: what a report shows of it."""
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


class RegistryError(KubemipsError):
    """The registry is unreachable, refused a request, or returned something inconsistent."""


class RunFault(KubemipsError):
    """A fault every later step would meet as well (the registry gone, the cache's disk
    full): a build starts no more steps and ends with this one message."""


class RegistryUnavailable(RegistryError, RunFault):
    """The registry does not answer: nothing listens, it timed out, or the connection
    kept dropping.  Names the registry and what was being done."""


class FileSystemError(KubemipsError):
    """A file or directory could not be written or read; names the path and the reason."""


class DiskFull(FileSystemError, RunFault):
    """No space (or quota) left where the run writes; names the path and its free space."""


def file_error(exc: OSError, path: str | PathLike[str] | None = None, *, doing: str = "") -> FileSystemError:
    """The error to report for ``exc``, met while working on ``path`` (named when the
    OSError names no file itself, as a failed ``write()`` does not)."""
    where = exc.filename if exc.filename is not None else path
    reason = exc.strerror or str(exc)
    action = f" ({doing})" if doing else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{where}: {reason}{action}; {free_space(where)}")
    return FileSystemError(f"{where}: {reason}{action}")


def free_space(path: object) -> str:
    """How much room the file system holding ``path`` has left, for a disk-full message."""
    probe = os.fspath(path) if isinstance(path, (str, PathLike)) else ""
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        usage = shutil.disk_usage(probe or ".")
    except OSError:
        return "free space there and run again"
    return (
        f"{human_size(usage.free)} free of {human_size(usage.total)} on the file system holding {probe}; "
        "free space there and run again"
    )


class BuildError(KubemipsError):
    """A build step for one image and architecture failed."""


class VerifyError(KubemipsError):
    """What the registry holds does not match what was pushed."""


class SmokeError(KubemipsError):
    """An image did not behave as expected when run on its architecture."""


class PrerequisiteError(KubemipsError):
    """A tool or service the work needs is missing (docker daemon, QEMU binfmt, a compiler)."""

    exit_code = 3


class Interrupted(KubemipsError):
    """SIGINT or SIGTERM: the run stopped at a safe point, publishing nothing more."""

    exit_code = 130


class ClusterError(KubemipsError):
    """The local cluster could not be brought up, used or torn down; names the component
    and the log file to read."""
