"""What a build request names, resolved against the catalog: the images of WHAT, another
version of the one component requested (``--version``), and the local source trees that
stand in for pinned ones (``--source``; the Kubernetes tree of the e2e images).

Everything is checked before anything is built: a version with no pin needs a tree, and
every Go source a planned image compiles from is pinned or given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .arch import Arch
from .builders import go_sources
from .catalog import Catalog
from .components import Component
from .errors import ConfigError
from .plan import Plan, make_plan

SourceMap = dict[str, dict[str, Path]]
"""Local source trees: component -> source name -> directory."""


def plan(
    cat: Catalog,
    what: str | Sequence[str],
    default_what: Sequence[str],
    arches: Sequence[Arch],
    *,
    version: str = "",
    source: str = "",
) -> tuple[Plan, SourceMap]:
    """The plan for WHAT; ``version``/``source`` override the one component requested."""
    names = cat.resolve(what, default_what)
    sources: SourceMap = {}
    if version or source:
        owners = sorted({cat.image(n)[0].name for n in names})
        if len(owners) != 1:
            given = " and ".join(
                name for name, value in (("--version (or $VERSION)", version), ("--source", source)) if value
            )
            raise ConfigError(f"{given} apply to exactly one component, but WHAT names: {', '.join(owners)}")
        (owner,) = owners
        pinned = cat.components[owner].pinned_versions
        if version:
            cat = cat.with_version(owner, version)
        if source:
            sources[owner] = parse_source_flag(source, cat.components[owner])
        comp = cat.components[owner]
        if comp.version not in pinned and not sources.get(owner) and comp.sources:
            raise ConfigError(
                f"{comp.file} pins its source for {owner} {' and '.join(pinned)}; to build {comp.version}, "
                f'give its tree with --source DIR or pin that version in the file ([versions."{comp.version}".source])'
            )
    return make_plan(names, arches, cat), sources


def parse_source_flag(text: str, comp: Component) -> dict[str, Path]:
    """``DIR`` (the component's only or 'main' source) or ``NAME=DIR,NAME=DIR``."""
    result: dict[str, Path] = {}
    for part in text.split(","):
        name, sep, directory = part.partition("=")
        if not sep:
            name, directory = ("main" if len(comp.sources) <= 1 else ""), name
            if not name:
                raise ConfigError(
                    f"{comp.name} has several sources ({', '.join(comp.sources)}): use --source NAME=DIR,NAME=DIR"
                )
            if comp.sources:
                name = next(iter(comp.sources))
        path = Path(directory).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--source {part}: {path} is not a directory")
        if comp.sources and name not in comp.sources:
            raise ConfigError(f"--source {part}: {comp.name} has no source '{name}'; known: {', '.join(comp.sources)}")
        result[name] = path
    return result


def checked_sources(plan: Plan, sources: SourceMap, k8s_source: str = "") -> SourceMap:
    """The trees a build of ``plan`` uses: ``sources``, with the Kubernetes tree of
    `e2e-images --source` when one is given, once every Go source is known to be pinned
    or given (the check runs before anything is fetched or built)."""
    if k8s_source:
        add_kubernetes_tree(plan, sources, k8s_source)
    check_sources(plan, sources)
    return sources


def add_kubernetes_tree(plan: Plan, sources: SourceMap, k8s_source: str) -> None:
    """``--source`` of `e2e-images`: the e2e images whose Go sources live in the Kubernetes
    tree build from this one, and so does the component that tree is the source of
    (hyperkube)."""
    tree = Path(k8s_source).expanduser().resolve()
    if not tree.is_dir():
        raise ConfigError(f"--source {k8s_source}: not a directory")
    providers = {n.comp.provider.name for n in plan.nodes if n.comp.provider is not None}
    for node in plan.nodes:
        if (node.comp.e2e and go_sources(node.comp)) or node.comp.name in providers:
            sources[node.comp.name] = {"main": tree}


def check_sources(plan: Plan, sources: SourceMap) -> None:
    """Every Go source a planned image compiles from is pinned or given with --source."""
    for comp in {node.comp.name: node.comp for node in plan.nodes}.values():
        needed = go_sources(comp)
        missing = [n for n in needed if n not in comp.sources and n not in sources.get(comp.name, {})]
        if missing:
            flag = "--source DIR" if missing == ["main"] else "--source " + ",".join(f"{m}=DIR" for m in missing)
            names = ", ".join(f"'{m}'" for m in missing)
            raise ConfigError(
                f"{comp.file}: no pinned source {names} for {comp.name} {comp.version}; "
                f"pin it there or give a local tree with {flag}"
            )
