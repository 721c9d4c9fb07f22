"""Progress output: timestamped lines, timed steps, CI fold groups and closing tables.

Builds run nodes in parallel threads, so every write takes a lock; lines carry the node
they belong to so interleaved output stays readable.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

_lock = threading.Lock()
_start = time.monotonic()
verbose = os.environ.get("KUBEMIPS_VERBOSE", "") not in ("", "0")


def _emit(text: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    elapsed = time.monotonic() - _start
    with _lock:
        for line in text.splitlines() or [""]:
            out.write(f"[{elapsed:7.1f}s] {line}\n")
        out.flush()


def info(text: str) -> None:
    _emit(text)


def warn(text: str) -> None:
    """Warnings go to stderr, so output piped on stays results and progress."""
    sys.stdout.flush()
    _emit(f"warning: {text}", sys.stderr)


def command(text: str) -> None:
    """Echo a command about to run (only with KUBEMIPS_VERBOSE=1: builds run many)."""
    if verbose:
        _emit(f"+ {text}")


def _in_github() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


@contextmanager
def step(title: str) -> Iterator[None]:
    """A timed step; a fold group on GitHub Actions."""
    if _in_github():
        with _lock:
            print(f"::group::{title}", flush=True)
    _emit(f"==> {title}")
    began = time.monotonic()
    try:
        yield
    finally:
        took = time.monotonic() - began
        if _in_github():
            with _lock:
                print("::endgroup::", flush=True)
        _emit(f"<== {title} ({took:.1f}s)")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width text table."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    lines = [fmt(headers), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def print_block(text: str) -> None:
    with _lock:
        sys.stdout.write(text.rstrip() + "\n")
        sys.stdout.flush()


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
