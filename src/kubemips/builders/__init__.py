"""Builders turn a component's ``[build]`` table into image layers for one architecture.

Each builder declares the keys it accepts (a closed schema) and two operations: the JSON
description of every input that determines its output (hashed into the skip key), and the
build itself.  ``kind`` in component.toml picks the builder from :data:`BUILDERS`.
"""

from __future__ import annotations

from ..components import Component
from ..errors import ConfigError
from ..schema import suggest
from .base import BaseImage, BuildContext, Builder, BuildOutput
from .cstatic import CStaticBuilder
from .dockerfile import DebianPackagesBuilder, DockerfileBuilder
from .e2e import AliasBuilder, E2EDockerfileBuilder
from .golang import GoBuilder
from .rootfs import RootfsBuilder

__all__ = ["BUILDERS", "BaseImage", "BuildContext", "BuildOutput", "Builder", "builder_for"]


def _registry() -> dict[str, Builder]:
    builders: list[Builder] = [
        CStaticBuilder(),
        RootfsBuilder(),
        DockerfileBuilder(),
        DebianPackagesBuilder(),
        GoBuilder(),
        E2EDockerfileBuilder(),
        AliasBuilder(),
    ]
    return {b.kind: b for b in builders}


BUILDERS: dict[str, Builder] = {}


def builder_for(comp: Component) -> Builder:
    if not BUILDERS:
        BUILDERS.update(_registry())
    builder = BUILDERS.get(comp.kind)
    if builder is None:
        raise ConfigError(
            f"{comp.file}: [build] kind '{comp.kind}' is unknown; known: {', '.join(sorted(BUILDERS))}."
            + suggest(comp.kind, list(BUILDERS))
        )
    builder.check(comp)
    return builder
