"""The catalog: every cluster component and every e2e image, by name.

It sits above :mod:`kubemips.components` (``components/*/component.toml``) and
:mod:`kubemips.e2e` (``e2e-images/**``) and joins them: an e2e image's parent or alias is
resolved against the whole catalog, so neither loader needs to know the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import e2e, log, versions
from .components import Component, ImageDef, load_each, load_problem
from .errors import ConfigError
from .schema import suggest

IMAGE_COLUMNS = ("image", "tag", "component", "kind", "base")


@dataclass(frozen=True)
class Catalog:
    """Every component, and every image by name (an image belongs to one component)."""

    components: Mapping[str, Component]
    images: Mapping[str, tuple[Component, ImageDef]]
    broken: Mapping[str, str] = field(default_factory=dict)
    """Component or e2e folder name -> why its file did not load.  The rest still work;
    asking for a broken one gives its error."""

    def image(self, name: str) -> tuple[Component, ImageDef]:
        return self.images[name]

    def image_rows(self) -> list[list[str]]:
        """One row per image (:data:`IMAGE_COLUMNS`): what `images` lists."""
        return [[name, c.tag, c.name, c.kind, image.base] for name, (c, image) in sorted(self.images.items())]

    def with_version(self, name: str, version: str) -> Catalog:
        """The catalog with component ``name`` at another version (``--version``)."""
        comp = self.components[name]
        scheme = "major-minor" if re.fullmatch(r"\d+\.\d+", comp.version) else "semver"
        versions.validate(version, scheme, where=f"--version for {name}")
        tag = version if comp.tag == comp.version else comp.tag.replace(comp.version, version)
        pinned = {v: srcs for v, srcs in (*comp.pinned.items(), (comp.version, comp.sources)) if srcs}
        sources = pinned.pop(version, comp.sources)  # not pinned: request.plan then wants --source
        new = replace(comp, version=version, tag=tag, sources=sources, pinned=pinned)
        comps = {**self.components, name: new}
        images = {k: ((new, img) if c.name == name else (c, img)) for k, (c, img) in self.images.items()}
        return Catalog(comps, images, self.broken)

    def resolve(self, what: str | Sequence[str], default: Sequence[str]) -> list[str]:
        """WHAT (image or component names, comma lists, 'all'; empty = default) -> image names."""
        items = (
            what.replace(",", " ").split()
            if isinstance(what, str)
            else [w for part in what for w in part.replace(",", " ").split()]
        )
        given = what if isinstance(what, str) else " ".join(what)
        if not items and given.strip():
            raise ConfigError(f"WHAT {given!r} names no image; give image names, or 'all'")
        if not items:
            items = list(default)
        if "all" in items:
            if items != ["all"]:
                raise ConfigError("WHAT 'all' cannot be combined with other names")
            return sorted(self.images)
        names: list[str] = []
        for item in items:
            by_repo = [name for name, (_, img) in sorted(self.images.items()) if img.repo == item]
            if item in self.images:
                found = [item]
            elif by_repo:
                found = by_repo
            elif item in self.components:
                found = [img.name for img in self.components[item].images]
            elif item in self.broken:
                raise ConfigError(self.broken[item])
            else:
                known = sorted(
                    set(self.images)
                    | {img.repo for _, img in self.images.values()}
                    | {name for name, comp in self.components.items() if not comp.e2e}
                )
                listed = f"known: {', '.join(known)}, all." if len(known) <= 20 else "`invoke images` lists them."
                raise ConfigError(f"unknown image '{item}' in WHAT; {listed}" + suggest(item, known))
            names += [n for n in found if n not in names]
        return names


def load_catalog(root: Path, *, warn: bool = False) -> Catalog:
    """Components (components/*/component.toml) and e2e images (e2e-images/**/VERSION).

    With ``warn`` (a command's catalog), each e2e folder that did not load is named on
    stderr: the front ends name the broken component files when they load them, and the
    folders would otherwise go unmentioned until an image of one is asked for."""
    comps: dict[str, Component] = {}
    images: dict[str, tuple[Component, ImageDef]] = {}

    def add(comp: Component) -> None:
        if comp.name in comps:
            raise ConfigError(f"{comp.file}: component '{comp.name}' is also defined by {comps[comp.name].file}")
        comps[comp.name] = comp
        for img in comp.images:
            if img.name in images:
                raise ConfigError(f"{comp.file}: image '{img.name}' is also defined by {images[img.name][0].file}")
            images[img.name] = (comp, img)

    loaded, broken = load_each(root)
    for comp in loaded:
        add(comp)
    for folder in e2e.folders(root):
        try:
            add(e2e.load_folder(root, folder))
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            broken[folder.relative_to(root / e2e.E2E_DIR).as_posix()] = load_problem(folder, exc)
    try:
        resolved = e2e.resolve_bases(comps, images)
    except ConfigError as exc:
        if broken:
            raise ConfigError(f"{exc} (files that did not load: {'; '.join(broken.values())})") from None
        raise
    for comp in resolved.values():
        comps[comp.name] = comp
        for img in comp.images:
            images[img.name] = (comp, img)
    _check_patch_scopes(comps, broken)
    if warn:
        for name, problem in sorted(broken.items()):
            if name not in comps and not (root / "components" / name).is_dir():
                log.warn(problem)
    return Catalog(comps, images, broken)


def _check_patch_scopes(comps: Mapping[str, Component], broken: Mapping[str, str]) -> None:
    """A patch scoped to components must name real ones: a misspelt name would silently
    leave the patch unapplied everywhere."""
    for comp in comps.values():
        for sources in (comp.sources, *comp.pinned.values()):
            for source in sources.values():
                for patch in source.patches:
                    for name in patch.components:
                        if name not in comps and name not in broken:
                            raise ConfigError(
                                f"{comp.file}: patch {patch.file.name} is scoped to unknown component '{name}'."
                                + suggest(name, sorted(comps))
                            )
