"""Declarative components: ``components/<name>/component.toml`` loaded into frozen data.

A component names its version, how its per-arch content is built (``[build] kind`` picks
a builder; the builder checks its own keys), the image that comes out, and a smoke check
that proves the image works on its architecture.  Adding a component needs no Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import versions
from .arch import ARCHES, Arch
from .errors import ConfigError
from .schema import check_table, read_toml, str_list, str_map, suggest

COMPONENT_FILE = "component.toml"

_TOP = {
    "name": str,
    "description": str,
    "version": str,
    "version-scheme": str,
    "tag": str,
    "build": dict,
    "image": dict,
    "smoke": dict,
}
_IMAGE = {
    "name": str,
    "base": str,
    "entrypoint": list,
    "cmd": list,
    "env": list,
    "labels": dict,
    "workdir": str,
    "user": str,
    "expose": list,
}
_SMOKE = {"command": list, "expect": str, "timeout": int, "env": list}


@dataclass(frozen=True, kw_only=True)
class ImageDef:
    name: str
    base: str  # "scratch" or the name of another project image
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    env: tuple[str, ...]
    labels: Mapping[str, str]
    workdir: str
    user: str
    expose: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class SmokeDef:
    """Run ``command`` in the image on its arch; the output must match ``expect``.

    ``expect`` is a regular expression searched in the output, after substituting
    ``{version}``, ``{uname}``, ``{oci}``, ``{debian}``.
    """

    command: tuple[str, ...]
    expect: str
    timeout: int
    env: tuple[str, ...]

    def pattern(self, version: str, arch: Arch) -> re.Pattern[str]:
        values = {"version": re.escape(version), "uname": re.escape(arch.uname), "oci": arch.oci, "debian": arch.debian}
        return re.compile(re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), self.expect), re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class Component:
    name: str
    description: str
    version: str
    tag: str
    directory: Path
    file: Path
    kind: str
    build: Mapping[str, Any]
    image: ImageDef
    smoke: SmokeDef
    raw: str = field(repr=False)
    """The file's text: an input of every build of this component."""

    def where(self, key: str = "") -> str:
        return f"{self.file}" + (f": [{key}]" if key else "")


def load_component(path: Path) -> Component:
    where = str(path)
    data = check_table(where, read_toml(path), _TOP, required=("name", "version", "build", "smoke"))
    name = data["name"]
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ConfigError(f"{where}: name '{name}' must be lowercase letters, digits and dashes")
    if name != path.parent.name:
        raise ConfigError(f"{where}: name '{name}' does not match its directory '{path.parent.name}'")
    scheme = data.get("version-scheme", "semver")
    version = versions.validate(data["version"], scheme, where=where)
    build = dict(data["build"])
    kind = build.pop("kind", None)
    if not isinstance(kind, str):
        raise ConfigError(f'{where}: [build] needs kind = "..."')
    img = check_table(f"{where}: [image]", data.get("image", {}), _IMAGE)
    smoke = check_table(f"{where}: [smoke]", data["smoke"], _SMOKE, required=("command", "expect"))
    try:
        SmokeDef(command=(), expect=smoke["expect"], timeout=1, env=()).pattern(version, ARCHES[0])
    except re.error as exc:
        raise ConfigError(f"{where}: [smoke] expect is not a valid regular expression: {exc}") from None
    tag = data.get("tag", version)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", tag):
        raise ConfigError(f"{where}: tag '{tag}' is not a valid image tag")
    return Component(
        name=name,
        description=data.get("description", ""),
        version=version,
        tag=tag,
        directory=path.parent,
        file=path,
        kind=kind,
        build=build,
        image=ImageDef(
            name=img.get("name", name),
            base=img.get("base", "scratch"),
            entrypoint=str_list(where, "entrypoint", img["entrypoint"]) if "entrypoint" in img else None,
            cmd=str_list(where, "cmd", img["cmd"]) if "cmd" in img else None,
            env=str_list(where, "env", img.get("env", [])),
            labels=str_map(where, "labels", img.get("labels", {})),
            workdir=img.get("workdir", ""),
            user=img.get("user", ""),
            expose=str_list(where, "expose", img.get("expose", [])),
        ),
        smoke=SmokeDef(
            command=str_list(where, "command", smoke["command"]),
            expect=smoke["expect"],
            timeout=smoke.get("timeout", 120),
            env=str_list(where, "env", smoke.get("env", [])),
        ),
        raw=path.read_text(),
    )


def load_all(root: Path) -> dict[str, Component]:
    """Every component under ``root/components``, keyed by image name."""
    found: dict[str, Component] = {}
    base = root / "components"
    if not base.is_dir():
        return found
    for path in sorted(base.glob(f"*/{COMPONENT_FILE}")):
        comp = load_component(path)
        if comp.image.name in found:
            raise ConfigError(
                f"{path}: image name '{comp.image.name}' is also defined by {found[comp.image.name].file}"
            )
        found[comp.image.name] = comp
    return found


def resolve_what(
    what: str | list[str] | tuple[str, ...], catalog: Mapping[str, Component], default: tuple[str, ...]
) -> list[str]:
    """Turn a WHAT (comma list, 'all', or empty for the default set) into catalog names."""
    items = (
        what.replace(",", " ").split()
        if isinstance(what, str)
        else [w for part in what for w in part.replace(",", " ").split()]
    )
    if not items:
        items = list(default)
    if items == ["all"]:
        return sorted(catalog)
    names: list[str] = []
    for item in items:
        if item not in catalog:
            raise ConfigError(
                f"unknown image '{item}' in WHAT; known: {', '.join(sorted(catalog))}, all."
                + suggest(item, list(catalog))
            )
        if item not in names:
            names.append(item)
    return names
