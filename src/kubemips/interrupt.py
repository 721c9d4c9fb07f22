"""SIGINT and SIGTERM as a request to stop at the next safe point.

A build that is told to stop must not leave a list and its per-arch tags disagreeing, so
a signal does not unwind the worker threads from wherever they are: it sets a flag that
the build checks before every step that publishes (moving a tag, pushing a list) and
before starting a node.  What was pushed by digest stays untagged, the run ends with
"interrupted" and exit code 130, and a rerun finds the pushed blobs and finishes.  Child
processes in the same process group get the terminal's SIGINT themselves; a second
signal stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import Interrupted

_requested = threading.Event()


def requested() -> bool:
    return _requested.is_set()


def check(what: str) -> None:
    """Raise :class:`Interrupted` when a stop was requested (call before publishing)."""
    if _requested.is_set():
        raise Interrupted(f"interrupted: {what}")


def _handler(signum: int, frame: FrameType | None) -> None:
    if _requested.is_set():
        raise Interrupted(f"interrupted again ({signal.Signals(signum).name}): stopping now")
    _requested.set()


@contextmanager
def handled() -> Iterator[None]:
    """Install the handlers for the duration of a command (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _requested.clear()
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
