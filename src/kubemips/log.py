"""Progress and results: the one output module.

Progress (steps, what each node does, warnings) goes to stderr; results (plans, tables,
digests, report paths) go to stdout, so `kubemips build 2>/dev/null` prints only results
and `--json` output pipes on untouched.

How progress looks is the progress mode (`--progress`):

- ``plain``: timestamped lines, one per event, ``[done/total]`` when a step finishes and
  a heartbeat line, with the child's last line, for steps still running after a minute
  (CI logs);
- ``tty``: the same lines above a status line redrawn in place that counts finished
  steps and shows each running one with its elapsed time and the last line its child
  printed (a terminal);
- ``quiet``: no progress, only warnings and results;
- ``auto`` (default): ``tty`` when stderr is a terminal (and TERM is not ``dumb``),
  ``plain`` otherwise.  ``KUBEMIPS_PROGRESS`` sets the default; NO_COLOR is honoured.

Builds run nodes in parallel threads, so every write takes a lock; lines carry the node
they belong to so interleaved output stays readable.

A child's output reaches its step through :func:`child_output`, which finds the step in
a context variable :meth:`Tracker.start` sets on the thread doing the step's work: what
runs a command there (:func:`kubemips.cmd.run`, a Dockerfile build) needs no step passed
down, and a long child (mmdebstrap, apt-get under QEMU, a Go compile) shows more than
its elapsed time.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

from .errors import ConfigError

MODES = ("auto", "tty", "plain", "quiet")
HEARTBEAT_SECONDS = 60.0
"""In plain mode, a step still running says so this often (long compiles print nothing)."""
LAST_LINE_CHARS = 120
"""A child's last line is cut to this: it shares the status line with other steps."""

_lock = threading.RLock()
_start = time.monotonic()
verbose = os.environ.get("KUBEMIPS_VERBOSE", "") not in ("", "0")
_mode = "plain"
_status_shown = False  # tty mode: a status line is on screen below the last progress line


def resolve_mode(requested: str, *, stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> str:
    """``requested`` (or $KUBEMIPS_PROGRESS when empty) with ``auto`` resolved for ``stream``."""
    env = os.environ if env is None else env
    mode = (requested or env.get("KUBEMIPS_PROGRESS", "") or "auto").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"--progress {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "auto":
        out = stream or sys.stderr
        terminal = hasattr(out, "isatty") and out.isatty() and env.get("TERM", "") != "dumb"
        mode = "tty" if terminal else "plain"
    return mode


def configure(progress: str = "") -> str:
    """Set the progress mode for this process (see the module docstring); returns it."""
    global _mode
    _mode = resolve_mode(progress)
    return _mode


def mode() -> str:
    return _mode


def _color() -> bool:
    return _mode == "tty" and os.environ.get("NO_COLOR", "") == ""


def _clear_status(out: TextIO) -> None:
    global _status_shown
    if _status_shown:
        out.write("\r\x1b[2K")
        _status_shown = False


def _emit(text: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    elapsed = time.monotonic() - _start
    with _lock:
        if out is sys.stderr:
            _clear_status(out)
        for line in text.splitlines() or [""]:
            out.write(f"[{elapsed:7.1f}s] {line}\n")
        if out is sys.stderr:
            _draw_status(out)
        out.flush()


def info(text: str) -> None:
    """A progress line (stderr; none in quiet mode)."""
    if _mode != "quiet":
        _emit(text)


def warn(text: str) -> None:
    """Warnings go to stderr in every mode."""
    sys.stdout.flush()
    _emit(f"warning: {text}", sys.stderr)


def command(text: str) -> None:
    """Echo a command about to run (only with KUBEMIPS_VERBOSE=1: builds run many)."""
    if verbose:
        info(f"+ {text}")


def _in_github() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


@contextmanager
def step(title: str) -> Iterator[None]:
    """A timed step; a fold group on GitHub Actions."""
    folded = _in_github() and _mode != "quiet"
    if folded:
        with _lock:
            sys.stderr.write(f"::group::{title}\n")
    info(f"==> {title}")
    began = time.monotonic()
    try:
        yield
    finally:
        took = time.monotonic() - began
        if folded:
            with _lock:
                sys.stderr.write("::endgroup::\n")
        info(f"<== {title} ({took:.1f}s)")


class Tracker:
    """Counts a run's steps: ``[done/total]`` as each finishes, what is running meanwhile.

    In tty mode the running steps are the status line; in plain mode a step running
    longer than :data:`HEARTBEAT_SECONDS` gets a line saying so, once per period.  Both
    show the last line the step's child printed (:func:`child_output`), if it printed one."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.running: dict[str, float] = {}
        self.queued: set[str] = set()
        """Steps in flight that wait for a build slot (:func:`queued`)."""
        self.last_line: dict[str, str] = {}
        """Per running step: the last line its child printed, sanitized."""
        self._beats: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, name: str) -> None:
        """Count ``name`` as running; call it on the thread that does the step's work, which
        then reports its children's output for ``name`` (until :meth:`finish`)."""
        with _lock:
            self.running[name] = time.monotonic()
            self._beats[name] = 0
        _current_step.set((self, name))
        self._redraw()

    def finish(self, name: str, status: str, seconds: float, *, ok: bool = True) -> str:
        """Record a finished step; returns (and, unless quiet, emits) its count line."""
        if _current_step.get() == (self, name):
            _current_step.set(None)  # a pool thread goes on to other steps
        with _lock:
            self.running.pop(name, None)
            self.queued.discard(name)
            self.last_line.pop(name, None)
            self._beats.pop(name, None)
            self.done += 1
            self.failed += 0 if ok else 1
            line = f"[{self.done}/{self.total}] {name}: {status} ({seconds:.1f}s)"
        info(line)
        return line

    def status_line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        with _lock:
            running = ", ".join(
                f"{n} {now - t:.0f}s" + (f" ({self.last_line[n]})" if n in self.last_line else "")
                for n, t in sorted(self.running.items(), key=lambda kv: kv[1])
            )
            failed = f", {self.failed} failed" if self.failed else ""
            queued = f"; {len(self.queued)} waiting for a build slot" if self.queued else ""
        return f"[{self.done}/{self.total}{failed}] " + (f"running: {running}" if running else "waiting") + queued

    def heartbeats(self, now: float | None = None) -> list[str]:
        """Plain mode: one line per step that crossed another heartbeat period since the last call."""
        now = time.monotonic() if now is None else now
        lines = []
        with _lock:
            for name, began in sorted(self.running.items()):
                periods = int((now - began) // HEARTBEAT_SECONDS)
                if periods > self._beats.get(name, 0):
                    self._beats[name] = periods
                    said = f": {self.last_line[name]}" if name in self.last_line else ""
                    lines.append(f"[{self.done}/{self.total}] {name}: still running ({now - began:.0f}s){said}")
        return lines

    def pause(self, name: str) -> None:
        with _lock:
            if self.running.pop(name, None) is not None:
                self.queued.add(name)
        self._redraw()

    def resume(self, name: str) -> None:
        with _lock:
            if name in self.queued:
                self.queued.discard(name)
                self.running[name] = time.monotonic()
                self._beats[name] = 0
        self._redraw()

    def said(self, name: str, line: str) -> None:
        """``line`` (already sanitized) is the latest output of running step ``name``'s child."""
        with _lock:
            if name in self.running:  # not a late line of a step already finished
                self.last_line[name] = line

    def _redraw(self) -> None:
        if _mode == "tty":
            with _lock:
                _clear_status(sys.stderr)
                _draw_status(sys.stderr)
                sys.stderr.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if _mode == "tty":
                self._redraw()
            elif _mode == "plain":
                for line in self.heartbeats():
                    info(line)

    def __enter__(self) -> Tracker:
        global _tracker
        _tracker = self
        if _mode in ("tty", "plain"):
            self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        global _tracker
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with _lock:
            _clear_status(sys.stderr)
            _tracker = None
            sys.stderr.flush()


_tracker: Tracker | None = None
_current_step: ContextVar[tuple[Tracker, str] | None] = ContextVar("kubemips_step", default=None)
"""The step the work on this thread belongs to (a context variable: each thread has its own;
a thread started inside a step inherits it only when run in ``contextvars.copy_context()``)."""

_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])")
"""Terminal escape sequences (colours, cursor moves, titles): removed whole, not left as ``[31m``."""


@contextmanager
def queued() -> Iterator[None]:
    """The current step waits for a build slot: shown as waiting, not running, meanwhile
    (its running time starts when it gets the slot)."""
    current = _current_step.get()
    if current is None:
        yield
        return
    tracker, name = current
    tracker.pause(name)
    try:
        yield
    finally:
        tracker.resume(name)


def sanitize(line: str) -> str:
    """``line`` fit for the status line: escape sequences and control characters removed
    (they would move the cursor or garble the terminal), tabs as spaces, trimmed, and cut
    to :data:`LAST_LINE_CHARS`."""
    text = _ESCAPES.sub("", line).replace("\t", " ")
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    return text if len(text) <= LAST_LINE_CHARS else text[: LAST_LINE_CHARS - 3] + "..."


def child_output(text: str) -> None:
    """Output a child of the current step printed (one or more lines): its last non-blank
    line becomes the step's heartbeat.  Outside a step, or once it finished, it is dropped."""
    current = _current_step.get()
    if current is None:
        return
    for raw in reversed(re.split(r"[\r\n]", text)):
        line = sanitize(raw)
        if line:
            tracker, name = current
            tracker.said(name, line)
            return


def _draw_status(out: TextIO) -> None:
    global _status_shown
    if _mode != "tty" or _tracker is None:
        return
    text = _tracker.status_line()
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    text = text[: (columns or 100) - 1]  # a new pseudo-terminal says 0 columns
    out.write(f"\x1b[1m{text}\x1b[0m" if _color() else text)
    _status_shown = True


def width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide characters (✅, ❌) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width text table."""
    widths = [width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], width(cell))

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c + " " * (widths[i] - width(c)) for i, c in enumerate(cells)).rstrip()

    lines = [fmt(headers), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def print_block(text: str) -> None:
    """A result: stdout, in every progress mode."""
    with _lock:
        _clear_status(sys.stderr)
        sys.stderr.flush()
        sys.stdout.write(text.rstrip() + "\n")
        sys.stdout.flush()
        _draw_status(sys.stderr)
        sys.stderr.flush()


def print_json(data: Any) -> None:
    """A command's whole stdout with `--json`."""
    print_block(json.dumps(data, indent=2, ensure_ascii=False))


def result(text: str) -> None:
    """A one-line result (a path written, a list published): stdout, in every mode."""
    print_block(text)
