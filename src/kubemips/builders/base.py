"""What every builder shares: the build context, the base image, the output, and the
:class:`Builder` interface.

Kept apart from the package's registry of builders (``kubemips.builders``), which imports
each builder module, so a builder module imports these without importing that registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import debian
from ..arch import Arch
from ..components import Component, ImageDef
from ..config import Settings
from ..engine import Engines
from ..oci import BlobStore, Layer
from ..schema import check_table


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


class Builder(ABC):
    kind: ClassVar[str]
    emulates: ClassVar[bool] = False
    """Runs programs of the target arch while building (RUN steps, maintainer scripts):
    under QEMU for a foreign arch, which the benchmark counts as emulated time."""
    options: ClassVar[Mapping[str, type]]
    required: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[str] = "1"
    """Bumped when the builder's output for the same inputs changes."""

    def check(self, comp: Component) -> dict[str, Any]:
        return check_table(f"{comp.file}: [build]", comp.build, self.options, required=self.required)

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
