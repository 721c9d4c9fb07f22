"""Sharded builds and the merge that turns their digests into manifest lists.

When one machine is not enough, each (image, arch) builds on its own runner and pushes
by digest only: no tag moves and no list is made.  It leaves a small JSON record per
image in a directory that CI passes between jobs as an artifact.  ``merge`` then checks
every record against the registry, refuses to publish a list that lacks a configured
arch (unless told it may), and only then tags the per-arch images and publishes the
lists, verifying each.  Merging twice is harmless: the second finds everything in place.

``matrix`` prints the GitHub Actions ``strategy.matrix`` for a request: one entry per
image and arch, each with the stage of its image in the FROM graph so that a workflow
builds bases before their children.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import log, oci
from .arch import Arch, parse_arch
from .build import ImageResult, Report
from .catalog import Catalog
from .config import Settings
from .errors import ConfigError, KubemipsError, VerifyError
from .plan import ImageNode, Node, Plan, closure
from .publish import publish_list
from .registry import Registry
from .verify import verify_image

RECORD_VERSION = 1


@dataclass(frozen=True)
class Record:
    """One per-arch image pushed by digest, waiting for its list."""

    image: str
    arch: str
    platform: str
    digest: str
    size: int
    tag: str
    registry: str
    version: int = RECORD_VERSION

    @property
    def filename(self) -> str:
        return f"{self.image.replace('/', '_')}@{self.arch}.json"


def write_record(directory: Path, record: Record) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / record.filename
    path.write_text(json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")
    return path


def read_records(directory: Path) -> list[Record]:
    if not directory.is_dir():
        raise ConfigError(f"digests directory {directory} does not exist")
    records = []
    for path in sorted(directory.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
            record = Record(**data)
            parse_arch(record.arch)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: not a digest record: {exc}") from None
        if record.version != RECORD_VERSION:
            raise ConfigError(f"{path}: record version {record.version}, expected {RECORD_VERSION}")
        if not record.digest.startswith("sha256:"):
            raise ConfigError(f"{path}: digest {record.digest!r} is not a sha256 digest")
        records.append(record)
    return records


def stages(catalog: Catalog, names: list[str]) -> dict[str, int]:
    """Depth of each image in the FROM graph: 0 for images on scratch."""
    depth: dict[str, int] = {}

    def visit(name: str) -> int:
        if name not in depth:
            _, image = catalog.image(name)
            depth[name] = 0 if image.base == "scratch" else visit(image.base) + 1
        return depth[name]

    for name in names:
        visit(name)
    return depth


DEFAULT_RUNNER = "ubuntu-24.04"
"""The GitHub Actions runner of an arch that ``[ci] runners`` does not name."""


def matrix(
    catalog: Catalog,
    names: list[str],
    arches: tuple[Arch, ...],
    *,
    stage: int | None = None,
    runners: Mapping[Arch, str] | None = None,
) -> dict[str, Any]:
    """``{"include": [...]}``: one entry per image and arch, bases in earlier stages, each
    with its runner (``runners``, else :data:`DEFAULT_RUNNER`) and a job id."""
    order = closure(names, catalog)
    depth = stages(catalog, order)
    include = [
        {
            "what": name,
            "arch": arch.name,
            "platform": arch.platform,
            "stage": depth[name],
            "runner": (runners or {}).get(arch, DEFAULT_RUNNER),
            "id": f"{name.replace('/', '-')}-{arch.name}",
        }
        for name in order
        for arch in arches
        if stage is None or depth[name] == stage
    ]
    include.sort(key=lambda e: (e["stage"], e["what"], e["arch"]))
    return {"include": include}


def write_github_output(path: Path, full: Mapping[str, Any], stages: int) -> None:
    """``stageN=<matrix json>`` lines for a workflow with ``stages`` build stages."""
    deepest = max((e["stage"] for e in full["include"]), default=0)
    if deepest >= stages:
        raise ConfigError(f"the plan needs {deepest + 1} stages but the workflow has {stages}")
    with path.open("a") as out:
        for n in range(stages):
            entries = [e for e in full["include"] if e["stage"] == n]
            out.write(f"stage{n}={json.dumps({'include': entries}, separators=(',', ':'))}\n")


def requested_nodes(plan: Plan) -> Plan:
    """Only the requested images' per-arch nodes: no lists, bases provided from outside."""
    keep: list[Node] = [n for n in plan.nodes if isinstance(n, ImageNode) and n.image.name in plan.requested]
    return Plan(nodes=keep, deps={n.id: plan.deps[n.id] for n in keep}, requested=plan.requested)


def provided_bases(
    reg: Registry, catalog: Catalog, plan: Plan, digests_dir: Path, registry: str
) -> dict[str, ImageResult]:
    """Base images of a sharded build: from the digest records in ``digests_dir`` (when it
    exists), else from the registry's tags."""
    records = read_records(digests_dir) if digests_dir.is_dir() else []
    by_node = {(r.image, r.arch): r for r in records}
    preset: dict[str, ImageResult] = {}
    wanted = {d for n in plan.nodes for d in plan.deps[n.id]} - {n.id for n in plan.nodes}
    for node_id in sorted(wanted):
        name, arch_name = node_id.rsplit("/", 1)
        comp, image = catalog.image(name)
        arch = parse_arch(arch_name)
        node = ImageNode(comp, image, arch)
        rec = by_node.get((name, arch.name))
        if rec is not None:
            digest, size = rec.digest, rec.size
        else:
            manifest = reg.get_manifest(image.repo, node.tag)
            if manifest is None or manifest.is_list:
                stage = stages(catalog, [name])[name]
                raise KubemipsError(
                    f"base {name} for {arch} is neither in {digests_dir} nor in {registry}: "
                    f"build its matrix entry (stage {stage}) first"
                )
            digest, size = manifest.digest, len(manifest.raw)
        res = ImageResult(node, status="provided", digest=digest, manifest_size=size)
        res.size = verify_image(reg, image.repo, digest, arch)
        preset[node_id] = res
    return preset


def write_records(directory: Path, report: Report, registry: str) -> None:
    """A record for each image the sharded build pushed (not those it was given)."""
    for res in report.images():
        if res.ok and res.status != "provided":
            node = res.node
            rec = Record(
                node.image.name, node.arch.name, node.arch.platform, res.digest, res.manifest_size, node.comp.tag,
                registry,
            )  # fmt: skip
            log.info(f"record {write_record(directory, rec)}")


@dataclass
class MergeResult:
    image: str
    tag: str
    arches: list[str]
    digest: str
    status: str


def incomplete(by_image: dict[str, dict[Arch, Record]], arches: tuple[Arch, ...]) -> dict[str, str]:
    """Images whose records lack a configured arch: image -> "IMAGE lacks PLATFORM, ..."."""
    return {
        image: f"{image} lacks {', '.join(a.platform for a in arches if a not in got)}"
        for image, got in sorted(by_image.items())
        if any(a not in got for a in arches)
    }


def merge(
    settings: Settings,
    reg: Registry,
    catalog: Catalog,
    records: list[Record],
    *,
    allow_partial: bool = False,
    complete_only: bool = False,
) -> tuple[list[MergeResult], list[str]]:
    """Check every record, then tag per-arch images and publish verified lists.

    An image lacking a configured arch stops the whole merge, unless ``allow_partial``
    (publish it without that arch) or ``complete_only`` (publish the complete images,
    skip it).  Returns the results and the skipped images' descriptions."""
    if not records:
        raise KubemipsError("no digest records to merge")
    by_image: dict[str, dict[Arch, Record]] = {}
    for rec in records:
        if rec.registry != settings.registry:
            raise ConfigError(
                f"record for {rec.image}/{rec.arch} was pushed to {rec.registry}, not {settings.registry}"
            )
        if rec.image not in catalog.images:
            raise ConfigError(f"record names image '{rec.image}', which this checkout does not define")
        arch = parse_arch(rec.arch)
        seen = by_image.setdefault(rec.image, {})
        if arch in seen and seen[arch].digest != rec.digest:
            raise KubemipsError(
                f"two records for {rec.image} on {arch.platform} disagree: {seen[arch].digest} and {rec.digest}"
            )
        seen[arch] = rec

    lacking = incomplete(by_image, settings.arches)
    missing = list(lacking.values())
    skipped: list[str] = []
    if missing and complete_only:
        for image, why in lacking.items():
            del by_image[image]
            skipped.append(why)
            log.warn(f"not publishing {image}'s list: {why.removeprefix(image + ' ')}")
        missing = []
    if missing and not allow_partial:
        raise KubemipsError(
            "refusing to publish lists without every configured arch (nothing was published): "
            + "; ".join(missing)
            + ". Build the missing entries, or pass --complete-only or --allow-partial."
        )
    for m in missing:
        log.warn(f"publishing a partial list: {m}")

    # Check everything before publishing anything.
    raws: dict[tuple[str, Arch], bytes] = {}
    repos = {image: catalog.image(image)[1].repo for image in by_image}
    for image, got in sorted(by_image.items()):
        for arch, rec in got.items():
            try:
                verify_image(reg, repos[image], rec.digest, arch)
            except VerifyError as exc:
                raise KubemipsError(
                    f"record {rec.filename} does not check out (nothing was published): {exc}"
                ) from None
            manifest = reg.get_manifest(repos[image], rec.digest)
            assert manifest is not None
            raws[(image, arch)] = manifest.raw

    results = []
    for image, got in sorted(by_image.items()):
        tag = next(iter(got.values())).tag
        repo = repos[image]
        for arch in got:
            reg.put_manifest(repo, arch.tag_for(tag), raws[(image, arch)], oci.MANIFEST)
        entries = [oci.ListEntry(arch, rec.digest, len(raws[(image, arch)])) for arch, rec in got.items()]
        digest, status = publish_list(reg, repo, tag, entries, list(got), reg.get_manifest(repo, tag))
        arches = sorted(a.name for a in got)
        log.info(f"{status} {reg.ref(repo, tag)} [{', '.join(arches)}], verified")
        results.append(MergeResult(repo, tag, arches, digest, status))
    return results, skipped


def merge_table(reg: Registry, results: list[MergeResult]) -> str:
    rows = [[reg.ref(r.image, r.tag), ", ".join(r.arches), r.digest[:19], r.status] for r in results]
    return log.table(["manifest list", "arches", "digest", "status"], rows)


def show_merge(reg: Registry, results: list[MergeResult], skipped: list[str]) -> None:
    """Print what the merge published; then fail if it left lists out (``complete_only``),
    so that a workflow sees the gap while the complete images are already published."""
    log.print_block(merge_table(reg, results))
    if skipped:
        raise KubemipsError(f"{len(skipped)} list(s) not published, an arch's build missing: {'; '.join(skipped)}")
