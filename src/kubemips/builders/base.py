"""What every builder shares: the build context, the base image, the output, and the
:class:`Builder` interface.

Kept apart from the package's registry of builders (``kubemips.builders``), which imports
each builder module, so a builder module imports these without importing that registry.
"""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .. import debian
from ..arch import Arch
from ..components import Component, ImageDef
from ..config import Settings
from ..engine import Engines
from ..oci import BlobStore, Layer
from ..schema import check_table, str_list, str_map

if TYPE_CHECKING:
    from .golang import GoOptions


@dataclass(frozen=True)
class BuildContext:
    settings: Settings
    store: BlobStore
    engines: Engines
    sources: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)
    """Local source trees given with --source: component -> source name -> directory."""

    @property
    def work_root(self) -> Path:
        return self.settings.cache_dir / "work"

    def workdir(self, comp: Component, arch: Arch, image: ImageDef | None = None) -> Path:
        suffix = f"-{image.name.replace('/', '_')}" if image is not None and image.name != comp.name else ""
        path = self.work_root / f"{comp.name}{suffix}-{arch.name}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def debian_sources(self, arch: Arch) -> list[debian.SuiteSource]:
        """The configured Debian archive for ``arch``, each suite with its package-index
        digest: what mmdebstrap and a RUN apt-get resolve packages against."""
        s = self.settings
        mirror = debian.mirror_for(s.debian_suite, s.debian_mirror)
        security = debian.security_mirror_for(s.debian_suite, s.security_mirror)
        return debian.sources_for(s.debian_suite, arch.debian, mirror, security)


@dataclass(frozen=True)
class BaseImage:
    """The parent image of a build, resolved to a digest in the registry."""

    name: str
    digest: str
    ref: str
    manifest: dict[str, Any]
    config: dict[str, Any]


@dataclass(frozen=True)
class BuildOutput:
    layers: list[Layer]
    """New layers only, on top of the base image's."""
    history: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    """A complete image config, when the builder made one (Dockerfile builds)."""


OptionsT = TypeVar("OptionsT", bound="Options")


@dataclass(frozen=True, kw_only=True)
class Options:
    """A builder's ``[build]`` keys, checked and typed: each builder declares a frozen
    dataclass of this, one field a key.

    A field's key is its name with dashes (``import_path`` is ``import-path``); a field
    with no default is a required key.  Its type says what the key holds: ``str``,
    ``bool``, ``tuple[str, ...]`` (a list of strings), ``Mapping[str, str]`` (a table of
    strings) or ``tuple[Mapping[str, Any], ...]`` (a list of tables, which the builder
    checks entry by entry).
    """

    @classmethod
    def load(cls: type[OptionsT], where: str, table: Mapping[str, Any]) -> OptionsT:
        """``table`` as options: an unknown key, a missing required one or a value of the
        wrong type is a ConfigError naming ``where`` and the key."""
        hints = typing.get_type_hints(cls)
        keys = {f.name.replace("_", "-"): f for f in fields(cls)}
        spec = {key: _toml_type(hints[f.name]) for key, f in keys.items()}
        required = tuple(k for k, f in keys.items() if f.default is MISSING and f.default_factory is MISSING)
        data = check_table(where, table, spec, required=required)
        values = {f.name: _typed(where, key, hints[f.name], data[key]) for key, f in keys.items() if key in data}
        return cls(**values)


def _toml_type(hint: Any) -> type:
    """What :func:`check_table` checks a field of type ``hint`` against."""
    origin = typing.get_origin(hint) or hint
    if origin is tuple:
        return list
    if origin is Mapping:
        return dict
    assert isinstance(origin, type), hint
    return origin


def _typed(where: str, key: str, hint: Any, value: Any) -> Any:
    """A checked TOML value as the field's type: lists as tuples, their items checked."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item, _) = typing.get_args(hint)
        return str_list(where, key, value) if item is str else tuple(value)
    if origin is Mapping:
        return str_map(where, key, value)
    return value


class Builder(ABC, Generic[OptionsT]):
    kind: ClassVar[str]
    emulates: ClassVar[bool] = False
    """Runs programs of the target arch while building (RUN steps, maintainer scripts):
    under QEMU for a foreign arch, which the benchmark counts as emulated time."""
    options: type[OptionsT]
    """Its ``[build]`` keys (a closed schema), as a dataclass of :class:`Options`."""
    version: ClassVar[str] = "1"
    """Bumped when the builder's output for the same inputs changes."""

    def __init__(self) -> None:
        self._checked: dict[int, tuple[Component, OptionsT]] = {}

    def check(self, comp: Component) -> OptionsT:
        """``comp``'s ``[build]`` table as this builder's options, or a ConfigError naming
        the file and the key.  A builder with more to check than the keys extends it."""
        return self.options.load(f"{comp.file}: [build]", comp.build)

    def opts(self, comp: Component) -> OptionsT:
        """``comp``'s options, checked once (:meth:`check`) and kept for later reads."""
        found = self._checked.get(id(comp))
        if found is None:  # the component is kept with them, so its id is not reused
            found = self._checked[id(comp)] = (comp, self.check(comp))
        return found[1]

    def emulated(self, comp: Component) -> bool:
        """Whether building ``comp`` runs target programs for long (:attr:`emulates`, unless
        the builder knows better from the component's options)."""
        return self.emulates

    def go_options(self, comp: Component) -> GoOptions | None:
        """The Go binaries and files the build compiles from the component's sources (the
        up-front source check reads them); None when it compiles no Go."""
        return None

    def bundle(self, comp: Component) -> str:
        """The directory the image keeps a bundle in (files with their SHA256SUMS), or ''."""
        return ""

    def fetch(self, comp: Component, ctx: BuildContext) -> None:
        """Fetch what the build will need from outside, before any image is built.

        A source that cannot be had then fails the run up front, with nothing pushed,
        instead of after other images spent minutes building.  Most builders fetch nothing.
        """
        return None

    @abstractmethod
    def inputs(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> dict[str, Any]:
        """Everything (besides the component file and base image) the output depends on."""

    @abstractmethod
    def build(
        self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext, base: BaseImage | None
    ) -> BuildOutput:
        """Produce the new layers of ``image`` for ``arch`` into ``ctx.store``."""
