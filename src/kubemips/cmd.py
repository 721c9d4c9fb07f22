"""The one way the project runs external commands.

Commands are argv lists (never shell strings), echoed shell-quoted before they run,
resolved on PATH up front so a missing tool is a :class:`PrerequisiteError` naming it,
and a non-zero exit becomes a :class:`CommandError` carrying the command and its output.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import log
from .errors import CommandError, PrerequisiteError


def which(program: str, *, hint: str = "") -> str:
    """Absolute path of ``program`` or a PrerequisiteError that says how to get it."""
    path = shutil.which(program)
    if path is None:
        extra = f" ({hint})" if hint else " (scripts/setup-host.sh installs it)"
        raise PrerequisiteError(f"required program '{program}' is not on PATH{extra}")
    return path


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str = "",
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input_bytes: bytes | None = None,
    timeout: float | None = None,
    echo: bool = True,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; return the completed process with stdout+stderr merged as text.

    ``env`` adds to (does not replace) the current environment.
    """
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ValueError("empty command")
    exe = which(args[0])
    if echo:
        log.command(shlex.join(args))
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(
            [exe, *args[1:]],
            cwd=cwd,
            env=full_env,
            input=input_bytes,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.output or b"").decode(errors="replace")
        raise CommandError(args, -1, out + f"\n(timed out after {timeout}s)", what=what) from None
    output = proc.stdout.decode(errors="replace")
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, output, what=what)
    return subprocess.CompletedProcess(args, proc.returncode, output, None)


def output(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """Run quietly and return the stripped output; raises like :func:`run`."""
    return run(argv, what=what, env=env, timeout=timeout, echo=False).stdout.strip()


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    detach: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in the background with stdout+stderr appended to ``log_path``.

    ``detach`` puts it in its own session so it outlives this process (a daemon the
    project supervises by its recorded PID); otherwise it is a child to wait for.
    """
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ValueError("empty command")
    exe = which(args[0])
    log.command(shlex.join(args) + f"  (log: {log_path})")
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as logf:
        return subprocess.Popen(
            [exe, *args[1:]],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=detach,
        )
