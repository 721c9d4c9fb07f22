"""The one way the project runs external commands.

Commands are argv lists (never shell strings), echoed shell-quoted before they run,
resolved on PATH up front so a missing tool is a :class:`PrerequisiteError` naming it,
and a non-zero exit becomes a :class:`CommandError` carrying the command and its output.
Output is read as it comes, so the running step's progress shows the child's latest line.
"""

from __future__ import annotations

import os
import select
import selectors
import shlex
import shutil
import subprocess
import time
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
    stdin = subprocess.PIPE if input_bytes is not None else None
    with subprocess.Popen(
        [exe, *args[1:]], cwd=cwd, env=full_env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        try:
            raw, returncode = _communicate(proc, input_bytes or b"", timeout)
        except BaseException:  # KeyboardInterrupt, an interrupt raised by a signal handler
            proc.kill()  # leaving the block waits for it
            raise
        if returncode is None:
            proc.kill()
    output = raw.decode(errors="replace")
    if returncode is None:
        raise CommandError(args, -1, output + f"\n(timed out after {timeout}s)", what=what)
    if check and returncode != 0:
        raise CommandError(args, returncode, output, what=what)
    return subprocess.CompletedProcess(args, returncode, output, None)


_CHUNK = 65536


def _communicate(proc: subprocess.Popen[bytes], input_bytes: bytes, timeout: float | None) -> tuple[bytes, int | None]:
    """All ``proc`` prints and its exit code, or None for the code when ``timeout`` ran out
    first (the output is then what came until then), ``input_bytes`` fed to it meanwhile.

    :meth:`subprocess.Popen.communicate` with the output read as it comes: each read
    ending a line passes the new lines to :func:`log.child_output`."""
    assert proc.stdout is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    out = bytearray()
    reported = 0  # out[:reported] went to the log
    todo = memoryview(input_bytes)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if proc.stdin is not None:
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return bytes(out), None
            for key, _ in sel.select(left):
                if key.fileobj is proc.stdout:
                    data = os.read(key.fd, _CHUNK)
                    if not data:
                        sel.unregister(proc.stdout)
                        continue
                    out += data
                    end = max(out.rfind(b"\n", len(out) - len(data)), out.rfind(b"\r", len(out) - len(data)))
                    if end >= 0:
                        log.child_output(out[max(reported, end - _CHUNK) : end].decode(errors="replace"))
                        reported = end + 1
                elif proc.stdin is not None:
                    try:
                        todo = todo[os.write(key.fd, todo[: select.PIPE_BUF]) :]
                    except BrokenPipeError:  # the child stopped reading: as communicate() does
                        todo = todo[:0]
                    if not todo:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
    try:
        return bytes(out), proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return bytes(out), None


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
