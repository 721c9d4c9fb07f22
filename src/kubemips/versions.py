"""Version rules.  Most components follow semver; some of upstream's do not (pause 3.1)."""

from __future__ import annotations

import re
from collections.abc import Callable

import semver

from .errors import ConfigError


def _semver(text: str) -> None:
    semver.Version.parse(text.removeprefix("v"))


def _major_minor(text: str) -> None:
    if not re.fullmatch(r"\d+\.\d+", text):
        raise ValueError("expected MAJOR.MINOR, e.g. 3.1")


def _debian(text: str) -> None:
    if not re.fullmatch(r"(\d+:)?[0-9][A-Za-z0-9.+~-]*", text):
        raise ValueError("expected a Debian version, e.g. 3.4.23-1")


SCHEMES: dict[str, Callable[[str], None]] = {
    "semver": _semver,
    "major-minor": _major_minor,
    "debian": _debian,
}


def validate(version: str, scheme: str, *, where: str) -> str:
    check = SCHEMES.get(scheme)
    if check is None:
        raise ConfigError(f"{where}: unknown version-scheme '{scheme}'; known: {', '.join(SCHEMES)}")
    try:
        check(version)
    except ValueError as exc:
        raise ConfigError(f"{where}: version '{version}' is not valid {scheme}: {exc}") from None
    return version


_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<)\s*v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)$")


def check_range(text: str, *, where: str) -> None:
    """A version range: comma-separated clauses such as ``>=1.16.0,<1.18.0``."""
    for clause in text.split(","):
        m = _CLAUSE.match(clause.strip())
        if not m:
            raise ConfigError(f"{where}: version range clause '{clause.strip()}' must look like '>=1.16.0'")
        try:
            semver.Version.parse(m.group(2))
        except ValueError as exc:
            raise ConfigError(f"{where}: '{clause.strip()}': {exc}") from None


def in_range(version: str, text: str) -> bool:
    """Whether ``version`` (semver, optional leading v; MAJOR.MINOR taken as .0) is in range."""
    v = version.removeprefix("v")
    if re.fullmatch(r"\d+\.\d+", v):
        v += ".0"
    parsed = semver.Version.parse(v)
    for clause in text.split(","):
        m = _CLAUSE.match(clause.strip())
        if m is None or not parsed.match(m.group(1) + m.group(2)):
            return False
    return True
