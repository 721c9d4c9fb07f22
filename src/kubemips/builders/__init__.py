"""Builders turn a component's ``[build]`` table into image layers for one architecture.

Each builder declares the keys it accepts (a closed schema: a frozen dataclass of its
options, checked once per component) and two operations: the JSON description of every
input that determines its output (hashed into the skip key), and the build itself.
``kind`` in component.toml picks the builder from :data:`BUILDERS`.
"""

from __future__ import annotations

from typing import Any

from ..components import Component
from ..errors import ConfigError
from ..schema import suggest
from .base import BaseImage, BuildContext, Builder, BuildOutput, Options
from .cstatic import CStaticBuilder
from .dockerfile import DebianPackagesBuilder, DockerfileBuilder
from .e2e import AliasBuilder, E2EDockerfileBuilder
from .golang import GoBuilder, source_names
from .rootfs import RootfsBuilder

__all__ = ["BUILDERS", "BaseImage", "BuildContext", "BuildOutput", "Builder", "Options", "builder_for", "go_sources"]


def _registry() -> dict[str, Builder[Any]]:
    builders: list[Builder[Any]] = [
        CStaticBuilder(),
        RootfsBuilder(),
        DockerfileBuilder(),
        DebianPackagesBuilder(),
        GoBuilder(),
        E2EDockerfileBuilder(),
        AliasBuilder(),
    ]
    return {b.kind: b for b in builders}


BUILDERS: dict[str, Builder[Any]] = {}


def builder_for(comp: Component) -> Builder[Any]:
    """The builder of ``comp``'s kind, its ``[build]`` table checked (once per component)."""
    if not BUILDERS:
        BUILDERS.update(_registry())
    builder = BUILDERS.get(comp.kind)
    if builder is None:
        raise ConfigError(
            f"{comp.file}: [build] kind '{comp.kind}' is unknown; known: {', '.join(sorted(BUILDERS))}."
            + suggest(comp.kind, list(BUILDERS))
        )
    builder.opts(comp)
    return builder


def go_sources(comp: Component) -> list[str]:
    """The sources ``comp`` compiles Go from (or takes files of a Go tree from), sorted."""
    go = builder_for(comp).go_options(comp)
    return source_names(comp, go) if go is not None else []
