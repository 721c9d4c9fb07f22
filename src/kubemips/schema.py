"""Closed-schema checks for declarative files (component.toml and friends).

An unknown key is an error with a "perhaps you meant" hint; a wrong type names the file
and key.  Used by every loader so that a typo never silently changes a build.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list of strings", dict: "a table"}


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def suggest(word: str, choices: list[str]) -> str:
    hint = difflib.get_close_matches(word, choices, n=1)
    return f" Perhaps you meant '{hint[0]}'?" if hint else ""


def check_table(
    where: str,
    data: Mapping[str, Any],
    spec: Mapping[str, type],
    *,
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Validate ``data`` against ``spec`` (key -> type); returns a plain dict copy."""
    for key in data:
        if key not in spec:
            raise ConfigError(
                f"{where}: unknown key '{key}'." + suggest(key, list(spec)) + f" Known: {', '.join(spec)}"
            )
    for key in required:
        if key not in data:
            raise ConfigError(f"{where}: missing required key '{key}'")
    for key, value in data.items():
        kind = spec[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if ok and kind is list:
            ok = all(isinstance(v, (str, dict)) for v in value)
        if ok and kind is dict:
            ok = all(isinstance(k, str) for k in value)
        if not ok:
            raise ConfigError(f"{where}: '{key}' must be {_TYPE_NAMES.get(kind, kind.__name__)}, got {value!r}")
    return dict(data)


def str_list(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings, got {value!r}")
    return tuple(value)


def str_map(where: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where}: '{key}' must be a table of strings, got {value!r}")
    return dict(value)
