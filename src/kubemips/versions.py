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
