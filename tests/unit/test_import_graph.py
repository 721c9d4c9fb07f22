"""The package's import graph has no circle, so its modules stack in layers.

Every import between the package's modules counts, those inside function bodies too (a
lazy import is how a circle hides); imports only for the type checker do not, since they
never run.  An acyclic graph means each module can sit on a floor above everything it
imports: no arrow runs back up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kubemips

PACKAGE = Path(kubemips.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports when it runs."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    skipped: set[int] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kubemips"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("kubemips"):
                continue
            for alias in node.names:  # `from . import x` imports the module x
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    found.discard(me)
    return {m for m in found if m in MODULES}


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}


def test_no_import_cycle() -> None:
    graph = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}
    assert "kubemips.builders.base" in graph["kubemips.builders.rootfs"]  # the parser sees imports
    floors: dict[str, int] = {}
    visiting: list[str] = []

    def floor(mod: str) -> int:
        if mod in floors:
            return floors[mod]
        assert mod not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(mod) :], mod])
        visiting.append(mod)
        floors[mod] = 1 + max((floor(dep) for dep in graph[mod]), default=0)
        visiting.pop()
        return floors[mod]

    for mod in sorted(graph):
        floor(mod)
    assert graph["kubemips.errors"] <= {"kubemips.sizes"}  # the errors stand on (almost) nothing
    assert floors["kubemips.cli"] == max(floors.values())  # the front end sits on top
