"""What a conformance run of a Kubernetes version pulls, and how much of it we provide.

``e2e-images/catalogs/<version>.toml`` is the list from that version's
``test/utils/image/manifest.go`` (plus the conformance and hyperkube images): each
entry's registry key, name and tag, and the project image that provides it, or why
none does (GPU, Windows, deliberately invalid references).  From it come the
``e2e-list`` (what ``sonobuoy images`` prints), the KUBE_TEST_REPO_LIST YAML that points
every registry key at our registry, and the coverage report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import log
from .arch import Arch
from .catalog import Catalog
from .errors import ConfigError, KubemipsError
from .registry import Registry
from .schema import check_table, read_toml
from .verify import verify_image

CATALOG_DIR = Path("e2e-images") / "catalogs"
_TOP = {"kubernetes": str, "registries": dict, "images": list}
_ENTRY = {"var": str, "registry": str, "name": str, "tag": str, "build": str, "note": str}


@dataclass(frozen=True)
class Entry:
    var: str
    registry_key: str
    name: str
    tag: str
    build: str  # project image id, or "" when not provided
    note: str

    def upstream(self, registries: dict[str, str]) -> str:
        return f"{registries[self.registry_key]}/{self.name}:{self.tag}"


@dataclass(frozen=True)
class ConformanceCatalog:
    kubernetes: str
    registries: dict[str, str]
    entries: tuple[Entry, ...]
    path: Path

    @property
    def provided(self) -> list[Entry]:
        return [e for e in self.entries if e.build]


def available(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / CATALOG_DIR).glob("*.toml"))


def load(root: Path, version: str, catalog: Catalog) -> ConformanceCatalog:
    path = root / CATALOG_DIR / f"{version}.toml"
    if not path.is_file():
        known = ", ".join(available(root)) or "none"
        raise ConfigError(f"no conformance catalog for Kubernetes {version} ({path} missing); known: {known}")
    data = check_table(str(path), read_toml(path), _TOP, required=("kubernetes", "registries", "images"))
    registries = {k: str(v) for k, v in data["registries"].items()}
    entries = []
    for i, raw in enumerate(data["images"]):
        where = f"{path}: images[{i}]"
        item = check_table(where, raw, _ENTRY, required=("registry", "name", "tag"))
        if item["registry"] not in registries:
            raise ConfigError(f"{where}: registry key '{item['registry']}' is not in [registries]")
        build = item.get("build", "")
        if build in catalog.images:
            comp, image = catalog.image(build)
            if (image.repo, comp.tag) != (item["name"], item["tag"]):
                raise ConfigError(
                    f"{where}: {item['name']}:{item['tag']} is built by '{build}' as {image.repo}:{comp.tag}; "
                    "names and tags must match what the e2e suite pulls"
                )
        elif not build and not item.get("note"):
            raise ConfigError(f"{where}: an entry without build needs a note saying why")
        entries.append(
            Entry(item.get("var", ""), item["registry"], item["name"], item["tag"], build, item.get("note", ""))
        )
    return ConformanceCatalog(data["kubernetes"], registries, tuple(entries), path)


def _why(entry: Entry, catalog: Catalog) -> str:
    if not entry.build:
        return entry.note
    if entry.build not in catalog.images:
        return f"not buildable yet: no project image '{entry.build}'"
    return entry.build


def image_list(cc: ConformanceCatalog, catalog: Catalog, registry: str) -> str:
    rows = [
        [e.upstream(cc.registries), f"{registry}/{e.name}:{e.tag}" if e.build else "-", _why(e, catalog)]
        for e in cc.entries
    ]
    return log.table(["image (upstream)", "local", "built by / why not"], rows)


def repo_list_yaml(cc: ConformanceCatalog, registry: str) -> str:
    """KUBE_TEST_REPO_LIST: every registry key of that version pointed at ``registry``."""
    lines = [f"# KUBE_TEST_REPO_LIST for Kubernetes {cc.kubernetes}: every registry key -> {registry}"]
    lines += [f"{key}: {json.dumps(registry)}" for key in sorted(cc.registries)]
    return "\n".join(lines) + "\n"


def write_repo_list(cc: ConformanceCatalog, registry: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(repo_list_yaml(cc, registry))
    return path


def buildable(cc: ConformanceCatalog, catalog: Catalog, names: Sequence[str]) -> list[str]:
    """The project images of the catalog's entries (all, or the ``names`` given, resolved
    like WHAT): what `e2e-images` and `nox -s e2e_images` build."""
    if names:
        return catalog.resolve(list(names), ())
    return list(dict.fromkeys(e.build for e in cc.provided if e.build in catalog.images))


@dataclass
class CoverageRow:
    entry: Entry
    arch: Arch
    present: bool
    digest: str = ""
    size: int = 0
    smoke: str = "-"
    content: str = ""


def coverage(
    cc: ConformanceCatalog, catalog: Catalog, reg: Registry, arches: tuple[Arch, ...], smoke_dir: Path
) -> list[CoverageRow]:
    """Per provided entry and arch: in the registry?  digest, size, smoke, real content."""
    rows: list[CoverageRow] = []
    for entry in cc.entries:
        for arch in arches:
            row = CoverageRow(entry, arch, False)
            rows.append(row)
            if entry.build not in catalog.images:
                row.content = _why(entry, catalog)
                continue
            comp, image = catalog.image(entry.build)
            try:
                manifest = reg.get_manifest(image.repo, arch.tag_for(comp.tag))
                if manifest is None or manifest.is_list:
                    continue
                row.size = verify_image(reg, image.repo, manifest.digest, arch)
                config = json.loads(reg.get_blob(image.repo, manifest.doc["config"]["digest"]))
            except KubemipsError:
                continue
            labels = (config.get("config") or {}).get("Labels") or {}
            row.present, row.digest = True, manifest.digest
            hexd = manifest.digest.removeprefix("sha256:")
            row.smoke = "pass" if any(smoke_dir.glob(f"{hexd}-*")) else "not run here"
            row.content = (
                labels.get("org.kubemips.debian.packages")
                or labels.get("org.kubemips.content")
                or " ".join(labels.get(f"org.opencontainers.image.{k}", "") for k in ("title", "version")).strip()
            )
    return rows
