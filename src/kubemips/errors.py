"""Error types.  Raised anywhere, caught once at the edge (tasks.py / noxfile.py / cli).

Each message names what failed and where, so the edge only has to print it and pick an
exit code.
"""

from __future__ import annotations


class KubemipsError(Exception):
    """Base of every error the project reports to the user without a traceback."""

    exit_code = 1


class ConfigError(KubemipsError):
    """Bad configuration or bad user input: unknown arch, image, key, malformed value."""

    exit_code = 2


class CommandError(KubemipsError):
    """An external command failed; carries the command and its output for the report."""

    def __init__(self, argv: list[str], returncode: int, output: str, *, what: str = "") -> None:
        import shlex

        self.argv = argv
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.rstrip().splitlines()[-25:])
        prefix = f"{what}: " if what else ""
        super().__init__(
            f"{prefix}command failed with exit code {returncode}: {shlex.join(argv)}"
            + (f"\n--- last lines of output ---\n{tail}" if tail else "")
        )


class RegistryError(KubemipsError):
    """The registry is unreachable, refused a request, or returned something inconsistent."""


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
