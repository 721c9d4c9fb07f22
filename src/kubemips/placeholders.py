"""``{placeholder}``s in component and e2e files: one vocabulary, filled by one function.

A value in a component file that depends on the version or the architecture names it
as a placeholder: ``{version}`` in a C define or a smoke check's ``expect``, ``{oci}`` in
an environment variable or a Dockerfile argument, ``{commit}`` in Go ldflags.  Every key
is in :data:`KEYS`; a name that is not is an error naming the file and the key, never
text left in place.  ``${NAME}`` (a shell or Dockerfile variable) is not a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from .arch import Arch
from .errors import ConfigError
from .schema import suggest

KEYS: Mapping[str, str] = {
    "version": "the component's version (an e2e image built from the Kubernetes tree: that tree's)",
    "major": "the major number of {version}",
    "minor": "the minor number of {version}",
    "commit": "the source's commit (a local tree: an id of its content); Go ldflags only",
    "date": "SOURCE_DATE_EPOCH as an ISO 8601 time; Go ldflags only",
    "arch": "the project's name of the architecture (amd64, mips64el)",
    "oci": "the OCI platform architecture and GOARCH (amd64, mips64le)",
    "debian": "dpkg's architecture (amd64, mips64el)",
    "uname": "what `uname -m` prints (x86_64, mips64)",
    "triple": "the cross toolchain's GNU triple (x86_64-linux-gnu, mips64el-linux-gnuabi64)",
}
"""Every placeholder, with what it is replaced by."""

_PLACEHOLDER = re.compile(r"(?<!\$)\{([a-z][a-z0-9_-]*)\}")


def names(text: str) -> list[str]:
    """The placeholders ``text`` names, in order."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(text)]


def check(texts: str | Iterable[str], *, where: str, available: Iterable[str] | None = None) -> None:
    """Fail on a placeholder that is not in :data:`KEYS`, or (given ``available``) that has
    no value where the text is used: at load time, before any build."""
    usable = set(KEYS if available is None else available)
    for text in [texts] if isinstance(texts, str) else texts:
        for key in names(text):
            if key not in KEYS:
                raise ConfigError(
                    f"{where}: unknown placeholder {{{key}}}; known: "
                    + ", ".join(f"{{{k}}}" for k in KEYS)
                    + suggest(key, list(KEYS))
                )
            if key not in usable:
                raise ConfigError(f"{where}: {{{key}}} has no value here (it is {KEYS[key]})")


ARCH_KEYS = ("arch", "oci", "debian", "uname", "triple")
"""The keys :meth:`Arch.placeholders` gives."""
VERSION_KEYS = ("version", "major", "minor")
"""The keys :func:`version_values` gives."""


def fill(
    text: str,
    values: Mapping[str, str],
    *,
    where: str,
    escape: Callable[[str], str] | None = None,
    partial: bool = False,
) -> str:
    """``text`` with every placeholder replaced by its value (passed through ``escape``,
    e.g. ``re.escape`` for a regular expression).  A key not in :data:`KEYS`, or one with
    no value here, is a ConfigError naming ``where`` (with ``partial``, a known key with no
    value is left for a later fill)."""

    def value(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in values:
            return escape(values[key]) if escape else values[key]
        check(m.group(0), where=where)
        if partial:
            return m.group(0)
        raise ConfigError(f"{where}: {{{key}}} has no value here (it is {KEYS[key]})")

    return _PLACEHOLDER.sub(value, text)


def version_values(version: str) -> dict[str, str]:
    """``version``, ``major`` and ``minor`` of a version string (``v1.16.2`` -> 1, 16)."""
    m = re.match(r"v?(\d+)\.(\d+)", version)
    return {"version": version, "major": m.group(1) if m else "", "minor": m.group(2) if m else ""}


def values(version: str, arch: Arch | None = None) -> dict[str, str]:
    """The values of a component at ``version``, and of ``arch`` when given."""
    return {**version_values(version), **(arch.placeholders() if arch is not None else {})}
