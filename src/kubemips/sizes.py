"""Byte counts as people read them: the one formatter, at the bottom of the package so
the error messages (a full disk) and the progress output can both use it."""

from __future__ import annotations


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
