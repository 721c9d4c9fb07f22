"""Paths a command will write, checked before it does any work.

A report, record directory or rendered file that cannot be written must fail the command
before anything is built or pushed, not after: a directory where a file is wanted (or a
file where a directory is), a path under ``/proc`` or ``/sys``, a parent that is a file,
a read-only or otherwise unwritable place.  Nothing is created by the check: the nearest
existing directory is probed with an anonymous temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigError

KERNEL_FILESYSTEMS = (Path("/proc"), Path("/sys"))
"""Where no command's output belongs: writes there reach the kernel, not a file."""


def output_file(flag: str, path: Path) -> Path:
    """``path``, a file the command given ``flag`` will write (create, replace or append to)."""
    full = _checked(flag, path)
    if full.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory; give a file path")
    if full.exists():
        try:
            with full.open("ab"):
                pass
        except OSError as exc:
            raise ConfigError(f"{flag} {path}: cannot write it: {exc.strerror or exc}") from None
        return path
    _probe(flag, path, full.parent)
    return path


def output_file_or(flag: str, given: str | Path | None, default: Path) -> Path:
    """The file given with ``flag``, checked as :func:`output_file` checks it, else
    ``default``: a place in the project's cache, which the command creates."""
    return output_file(flag, Path(given)) if given else default


def output_dir(flag: str, path: Path) -> Path:
    """``path``, a directory the command given ``flag`` will create if needed and write files in."""
    full = _checked(flag, path)
    if full.exists() and not full.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a directory")
    _probe(flag, path, full)
    return path


def _checked(flag: str, path: Path) -> Path:
    full = Path(os.path.abspath(path))
    for real in (full, full.resolve()):
        for root in KERNEL_FILESYSTEMS:
            if real == root or root in real.parents:
                raise ConfigError(f"{flag} {path}: is under {root}, which is not a place for files")
    return full


def _probe(flag: str, path: Path, directory: Path) -> None:
    """Fail unless a file can be created in ``directory`` or, when it does not exist yet,
    in its nearest existing ancestor (which must be a directory)."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot write in {existing}: {exc.strerror or exc}") from None
