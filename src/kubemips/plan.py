"""The plan: what a request expands to, as data, before anything runs.

WHAT x arches becomes a graph of per-arch image nodes (edges for FROM) and one list node
per image (edges to its per-arch nodes).  ``--dry-run`` prints it; the executor walks it.
Pure: no I/O beyond the already-loaded catalog, so it is unit-tested directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .arch import Arch
from .catalog import Catalog
from .components import Component, ImageDef
from .errors import ConfigError


@dataclass(frozen=True)
class ImageNode:
    """Build, push by digest, verify, smoke-check, then tag one image for one arch."""

    comp: Component
    image: ImageDef
    arch: Arch

    @property
    def id(self) -> str:
        return f"{self.image.name}/{self.arch.name}"

    @property
    def tag(self) -> str:
        return self.arch.tag_for(self.comp.tag)


@dataclass(frozen=True)
class ListNode:
    """Publish and verify the manifest list of one image over its per-arch nodes."""

    comp: Component
    image: ImageDef
    arches: tuple[Arch, ...]

    @property
    def id(self) -> str:
        return f"{self.image.name}/list"

    @property
    def tag(self) -> str:
        return self.comp.tag


Node = ImageNode | ListNode


@dataclass
class Plan:
    nodes: list[Node] = field(default_factory=list)
    deps: dict[str, list[str]] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)

    def chain_lengths(self, weight: Callable[[Node], float]) -> dict[str, float]:
        """Per node, the heaviest chain of work from it to the end of the plan (its own
        weight plus the heaviest chain among the nodes waiting for it): what a scheduler
        starts first, so the longest chain is not left to run alone on one core at the end."""
        waiting: dict[str, list[str]] = {}
        for node_id, deps in self.deps.items():
            for dep in deps:
                waiting.setdefault(dep, []).append(node_id)
        own = {node.id: weight(node) for node in self.nodes}
        lengths: dict[str, float] = {}

        def length(node_id: str) -> float:
            if node_id not in lengths:
                after = [length(w) for w in waiting.get(node_id, []) if w in own]
                lengths[node_id] = own[node_id] + max(after, default=0.0)
            return lengths[node_id]

        return {node.id: length(node.id) for node in self.nodes}

    def describe(self, registry: str) -> str:
        lines = [f"plan: {len(self.nodes)} steps, registry {registry}"]
        for i, node in enumerate(self.nodes, 1):
            after = self.deps.get(node.id, [])
            needs = f"  (after {', '.join(after)})" if after else ""
            if isinstance(node, ImageNode):
                what = f"build {registry}/{node.image.repo}:{node.tag} [{node.comp.kind}, {node.arch.platform}]"
            else:
                what = f"list  {registry}/{node.image.repo}:{node.tag} [{', '.join(a.platform for a in node.arches)}]"
            lines.append(f"{i:3d}. {what}{needs}")
        return "\n".join(lines)

    def as_json(self, registry: str) -> dict[str, Any]:
        """The plan as data (`build --dry-run --json`): steps in dependency order."""
        steps: list[dict[str, Any]] = []
        for node in self.nodes:
            step: dict[str, Any] = {
                "id": node.id,
                "kind": "image" if isinstance(node, ImageNode) else "list",
                "image": node.image.name,
                "component": node.comp.name,
                "ref": f"{registry}/{node.image.repo}:{node.tag}",
                "after": list(self.deps.get(node.id, [])),
            }
            if isinstance(node, ImageNode):
                step.update(arch=node.arch.name, platform=node.arch.platform, build=node.comp.kind)
            else:
                step["platforms"] = [a.platform for a in node.arches]
            steps.append(step)
        return {"registry": registry, "requested": list(self.requested), "steps": steps}


def closure(names: Sequence[str], catalog: Catalog) -> list[str]:
    """Requested images plus every project image they are built FROM, parents first."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise ConfigError(f"FROM cycle between images: {cycle}")
        if name not in catalog.images:
            raise ConfigError(f"unknown image '{name}'")
        comp, image = catalog.image(name)
        visiting.append(name)
        if image.base != "scratch":
            if image.base not in catalog.images:
                raise ConfigError(
                    f"{comp.file}: image '{name}' has base '{image.base}', which is not an image of this project "
                    "(or 'scratch')"
                )
            visit(image.base)
        if image.smoke.client:
            if image.smoke.client not in catalog.images:
                raise ConfigError(f"{comp.file}: smoke client '{image.smoke.client}' is not an image of this project")
            visit(image.smoke.client)
        for copy in image.copies:
            if copy.image not in catalog.images:
                raise ConfigError(
                    f"{comp.file}: image '{name}' copies {copy.path} from '{copy.image}', "
                    "which is not an image of this project"
                )
            visit(copy.image)
        visiting.pop()
        order.append(name)

    for name in names:
        visit(name)
    return order


def make_plan(names: Sequence[str], arches: Sequence[Arch], catalog: Catalog) -> Plan:
    plan = Plan(requested=list(names))
    for name in closure(names, catalog):
        comp, image = catalog.image(name)
        image_ids = []
        for arch in arches:
            node = ImageNode(comp, image, arch)
            plan.nodes.append(node)
            deps = [f"{image.base}/{arch.name}"] if image.base != "scratch" else []
            if image.smoke.client:
                deps.append(f"{image.smoke.client}/{arch.name}")  # runs beside it in the smoke check
            deps += [f"{c.image}/{arch.name}" for c in image.copies if f"{c.image}/{arch.name}" not in deps]
            plan.deps[node.id] = deps
            image_ids.append(node.id)
        lst = ListNode(comp, image, tuple(arches))
        plan.nodes.append(lst)
        plan.deps[lst.id] = image_ids
    return plan
