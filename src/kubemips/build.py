"""Walk a plan: build, push by digest, verify, smoke-check, tag; then lists.

Publishing order is what keeps a failure from leaving anything half-published: a
per-arch image is pushed by digest, read back and run on its architecture before its tag
moves; a list is assembled only from per-arch nodes that all succeeded, pushed after its
children, and verified.  Every node's skip key is a digest of all of its inputs, stored as
a config label, so a node whose key the registry already holds is not rebuilt.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tarfile
import time
import traceback
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import interrupt, log, oci, timing
from .arch import Arch, from_oci
from .builders import BaseImage, BuildContext, BuildOutput, builder_for
from .components import ImageDef
from .config import Settings
from .engine import Engines
from .errors import (
    BuildError,
    CommandError,
    DiskFull,
    Interrupted,
    KubemipsError,
    RunFault,
    SmokeError,
    file_error,
    free_space,
)
from .host import check_emulation
from .plan import ImageNode, ListNode, Node, Plan
from .publish import publish_list
from .registry import Manifest, Registry
from .sizes import human_size
from .slots import Slots
from .verify import child_for, verify_image

ENGINE_KINDS = frozenset({"dockerfile", "debian-packages", "e2e-dockerfile"})
"""Builders that run RUN steps through the Docker engine."""

ASSEMBLY_VERSION = "3"  # 3: layers gzip level 1 (oci.GZIP_LEVEL)
"""Bumped when image assembly changes in a way that changes digests."""


@dataclass
class ImageResult:
    node: ImageNode
    status: str = "pending"  # built | cached | failed | blocked
    digest: str = ""
    manifest_size: int = 0
    size: int = 0
    smoke: str = "-"  # pass | cached | fail | skipped | -
    seconds: float = 0.0
    error: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per :data:`timing.PHASES` entry; they add up to ``seconds``."""

    @property
    def ok(self) -> bool:
        return self.status in ("built", "cached", "provided")


@dataclass
class ListResult:
    node: ListNode
    status: str = "pending"  # published | unchanged | not published
    digest: str = ""
    seconds: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("published", "unchanged")


Result = ImageResult | ListResult


@dataclass
class Report:
    order: list[str] = field(default_factory=list)
    """Node ids in plan order: results are reported in this order, not completion order."""
    results: dict[str, Result] = field(default_factory=dict)
    seconds: float = 0.0
    fetch_seconds: float = 0.0
    """Fetching every source before the first build (not part of any image's time)."""
    fault: RunFault | None = None
    """What stopped the run early (the registry gone, the disk full), if anything did."""

    def _ordered(self) -> list[Result]:
        return [self.results[i] for i in self.order if i in self.results]

    def images(self) -> list[ImageResult]:
        return [r for r in self._ordered() if isinstance(r, ImageResult)]

    def lists(self) -> list[ListResult]:
        return [r for r in self._ordered() if isinstance(r, ListResult)]

    @property
    def failures(self) -> list[Result]:
        return [r for r in self._ordered() if not r.ok]


def input_key(doc: dict[str, Any]) -> str:
    """The skip key: a digest of every input, canonically serialized."""
    return "sha256:" + hashlib.sha256(oci.canonical_json(doc)).hexdigest()


class Runner:
    """Executes plans against one registry, with an engine per architecture."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        engines: Engines,
        *,
        force: bool = False,
        smoke: bool = True,
        tag_images: bool = True,
        sources: Mapping[str, Mapping[str, Path]] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.engines = engines
        self.force = force
        self.smoke_enabled = smoke
        self.fetch_seconds = 0.0
        self.tag_images = tag_images
        self.slots = Slots(settings.jobs)
        self.priority: dict[str, float] = {}
        self.started: dict[str, int] = {}
        """Node -> the order the walk started it in: ties for a slot go to the earlier."""
        self.stopping = ""
        """Why the walk starts nothing new, once it does not."""
        self.ctx = BuildContext(settings, oci.BlobStore(settings.blob_dir), engines, sources or {})

    # -- per-arch image ---------------------------------------------------------------
    def _base(self, image: ImageDef, arch: Arch, results: dict[str, Result]) -> BaseImage | None:
        if image.base == "scratch":
            return None
        parent = results[f"{image.base}/{arch.name}"]
        assert isinstance(parent, ImageResult) and parent.ok
        repo = parent.node.image.repo
        manifest = self.registry.get_manifest(repo, parent.digest)
        if manifest is None:
            raise BuildError(f"base {repo}@{parent.digest} vanished from the registry")
        config = json.loads(self.registry.get_blob(repo, manifest.doc["config"]["digest"]))
        return BaseImage(repo, parent.digest, self.registry.ref(repo, parent.digest), manifest.doc, config)

    def _cached(self, node: ImageNode, key: str) -> tuple[Manifest, bool] | None:
        """The registry's image for ``node`` whose inputs label equals ``key``: under the
        node's per-arch tag, or else as the arch's child of the list tag. A registry copied
        list by list, as a mirror copies (``skopeo copy --all``), holds only the latter, and
        finding the result there means copying a registry never costs a rebuild. The flag
        says whether the per-arch tag already points at it."""
        name = node.image.repo
        existing = self.registry.get_manifest(name, node.tag)
        tagged = existing is not None and not existing.is_list
        if not tagged:
            listed = self.registry.get_manifest(name, node.comp.tag)
            child = child_for(listed.doc, node.arch) if listed is not None and listed.is_list else None
            existing = self.registry.get_manifest(name, child) if child else None
        if existing is None or existing.is_list:
            return None
        config = json.loads(self.registry.get_blob(name, existing.doc["config"]["digest"]))
        labels = (config.get("config") or {}).get("Labels") or {}
        return (existing, tagged) if labels.get(oci.INPUTS_LABEL) == key else None

    def _config(self, node: ImageNode, key: str, out: BuildOutput, base: BaseImage | None) -> dict[str, Any]:
        comp, image, arch = node.comp, node.image, node.arch
        labels = {
            **image.labels,
            **out.labels,
            "org.opencontainers.image.title": image.repo,
            "org.opencontainers.image.version": comp.version,
            oci.INPUTS_LABEL: key,
        }
        base_ids = list(((base.config if base else {}).get("rootfs") or {}).get("diff_ids") or [])
        spec = oci.ImageSpec(
            env=image.env_for(arch),
            entrypoint=image.entrypoint,
            cmd=image.cmd,
            workdir=image.workdir,
            user=image.user,
            labels=labels,
            exposed_ports=image.expose,
        )
        if out.config is not None:
            # The builder made the whole config (a Dockerfile build): lay [image] over it.
            config = dict(out.config)
            config["config"] = oci.container_config(config.get("config") or {}, spec)
            want = base_ids + [layer.diff_id for layer in out.layers]
            if config.get("rootfs", {}).get("diff_ids") != want:
                raise BuildError(f"[{node.id}] built image layers do not extend its base {image.base} as expected")
            platform = f"{config.get('os')}/{config.get('architecture')}"
            if platform != f"linux/{arch.oci}":
                raise BuildError(f"[{node.id}] built image says {platform}, expected {arch.platform}")
            return config
        return oci.image_config(
            arch,
            diff_ids=[layer.diff_id for layer in out.layers],
            spec=spec,
            epoch=self.settings.source_date_epoch,
            history=out.history,
            base_config=base.config if base else None,
        )

    def build_image(self, node: ImageNode, results: dict[str, Result]) -> ImageResult:
        comp, image, arch = node.comp, node.image, node.arch
        name = image.repo
        res = ImageResult(node)
        builder = builder_for(comp)
        base = self._base(image, arch, results)
        copied = self._copied(node, results)
        key = input_key(
            {
                "assembly": ASSEMBLY_VERSION,
                "component": comp.raw,
                "version": comp.version,
                "tag": comp.tag,
                "image": image.name,
                "builder": {
                    "kind": builder.kind,
                    "version": builder.version,
                    "inputs": builder.inputs(comp, image, arch, self.ctx),
                },
                "arch": arch.platform,
                "base": base.digest if base else "scratch",
                "epoch": self.settings.source_date_epoch,
                **({"copies": {e.path: hashlib.sha256(e.data).hexdigest() for e in copied}} if copied else {}),
            }
        )
        found = None if self.force else self._cached(node, key)
        if found is not None:
            cached, tagged = found
            res.status, res.digest, res.manifest_size = "cached", cached.digest, len(cached.raw)
            with timing.phase("verify"):
                res.size = verify_image(self.registry, name, cached.digest, arch)
            log.info(f"[{node.id}] up to date: {name}:{node.tag} ({cached.digest[:19]})")
            self._smoke(node, res, results)
            if not tagged:  # found as a list's child: give it its per-arch tag too
                self._tag(node, cached.raw, cached.media_type)
            return res

        with self._slot(node):
            return self._build_new(node, res, key, base, copied, results)

    def _build_new(
        self,
        node: ImageNode,
        res: ImageResult,
        key: str,
        base: BaseImage | None,
        copied: list[oci.FileEntry],
        results: dict[str, Result],
    ) -> ImageResult:
        comp, image, arch, name = node.comp, node.image, node.arch, node.image.repo
        builder = builder_for(comp)
        log.info(f"[{node.id}] building ({comp.kind}) ...")
        with timing.phase("emulated" if self._emulated(node) else "native"):
            out = builder.build(comp, image, arch, self.ctx, base)
        if copied:
            # Their own layer under the builder's, as upstream's COPY --from comes first.
            with timing.phase("layers"):
                layer = self.ctx.store.write_layer(oci.FilesLayer(copied, self.settings.source_date_epoch))
            what = " ".join(f"--from={c.image} {c.path}" for c in image.copies)
            out = BuildOutput([layer, *out.layers], [f"COPY {what}", *out.history], out.labels, out.config)
        config = self._config(node, key, out, base)
        config_blob = self.ctx.store.put_bytes(oci.canonical_json(config), oci.CONFIG)
        base_layers: list[dict[str, Any]] = list(base.manifest["layers"]) if base else []
        sent = 0
        with timing.phase("push"):
            for layer_desc in base_layers:
                assert base is not None
                self.registry.mount_blob(name, layer_desc["digest"], base.name)
            for layer in out.layers:
                if self.registry.push_blob(name, layer.blob):
                    sent += layer.blob.size
            self.registry.push_blob(name, config_blob)
            manifest = oci.image_manifest(config_blob, base_layers + [layer.blob.descriptor() for layer in out.layers])
            raw = oci.canonical_json(manifest)
            digest = self.registry.put_manifest(name, oci.sha256_digest(raw), raw, oci.MANIFEST)
        res.digest, res.manifest_size = digest, len(raw)
        with timing.phase("verify"):
            res.size = verify_image(self.registry, name, digest, arch)
        log.info(f"[{node.id}] pushed {name}@{digest[:19]} ({human_size(sent)} uploaded), verified")
        interrupt.check(f"{name}@{digest[:19]} pushed by digest, not smoke-checked or tagged")
        self._smoke(node, res, results)
        self._tag(node, raw, oci.MANIFEST)
        res.status = "built"
        return res

    def _tag(self, node: ImageNode, raw: bytes, media_type: str) -> None:
        """Point the per-arch tag at a verified, smoke-checked image, never after a signal."""
        if not self.tag_images:
            return
        digest = oci.sha256_digest(raw)
        interrupt.check(f"{node.image.repo}@{digest[:19]} smoke-checked but not tagged")
        self.registry.put_manifest(node.image.repo, node.tag, raw, media_type)

    def _copied(self, node: ImageNode, results: Mapping[str, Result]) -> list[oci.FileEntry]:
        """The files the image copies from other images of its arch (``copy``), read from
        the registry by digest: their content is an input of the image's key."""
        entries = []
        for copy in node.image.copies:
            stage = results[f"{copy.image}/{node.arch.name}"]
            assert isinstance(stage, ImageResult) and stage.ok
            data, mode = file_in_image(self.registry, stage.node.image.repo, stage.digest, copy.path)
            entries.append(oci.FileEntry(copy.path, data, mode))
        return entries

    def _smoke_marker(self, node: ImageNode, digest: str) -> Path:
        smoke = node.image.smoke
        doc: list[Any] = [list(smoke.command), smoke.expect, list(smoke.env), list(smoke.entrypoint or [])]
        if smoke.files or smoke.client:
            doc += [dict(smoke.files), smoke.client, list(smoke.client_command)]
        if smoke.exit_code:
            doc += [smoke.exit_code]
        spec = hashlib.sha256(oci.canonical_json(doc)).hexdigest()[:16]
        return self.settings.smoke_dir / f"{digest.removeprefix('sha256:')}-{spec}"

    @contextmanager
    def _slot(self, node: Node) -> Iterator[None]:
        """One of the ``jobs`` build slots, for work that needs a core (:mod:`.slots`)."""
        with log.queued():
            timing.waited(self.slots.acquire(self.priority.get(node.id, 0.0), self.started.get(node.id, 0)))
        if self.stopping:  # it waited while the run was interrupted or faulted
            self.slots.release()
            raise _NotStarted(self.stopping)
        try:
            yield
        finally:
            self.slots.release()

    def _smoke(self, node: ImageNode, res: ImageResult, results: Mapping[str, Result]) -> None:
        """Smoke-check the image unless disabled or already passed; the run itself takes a
        build slot, outside the phase (the wait is not smoke time)."""
        with timing.phase("smoke"):
            marker = self._smoke_marker(node, res.digest)
            if not self.smoke_enabled:
                res.smoke = "skipped"
                return
            if marker.exists() and not self.force:
                res.smoke = "cached"
                return
        with self._slot(node), timing.phase("smoke"):
            self._smoke_check(node, res, marker, results)

    def _smoke_check(self, node: ImageNode, res: ImageResult, marker: Path, results: Mapping[str, Result]) -> None:
        comp, image, arch = node.comp, node.image, node.arch
        smoke = image.smoke
        engine = self.engines.for_arch(arch)
        if not self.engines.is_native(arch):
            check_emulation(arch)
        ref = self.registry.ref(image.repo, res.digest)
        engine.pull(ref, arch)
        client = None
        if smoke.client:
            helper = results[f"{smoke.client}/{arch.name}"]
            assert isinstance(helper, ImageResult) and helper.ok
            client = (self.registry.ref(helper.node.image.repo, helper.digest), smoke.client_command)
        outcome = engine.run(
            ref,
            arch,
            smoke.command,
            env=smoke.env,
            entrypoint=smoke.entrypoint,
            timeout=smoke.timeout,
            files=smoke.files,
            client=client,
        )
        pattern = smoke.pattern(comp.version, arch)
        match = pattern.search(outcome.output)
        if outcome.exit_code != smoke.exit_code or match is None:
            res.smoke = "fail"
            wanted = f" (expected {smoke.exit_code})" if smoke.exit_code else ""
            raise SmokeError(
                f"[{node.id}] smoke check failed: `{' '.join(smoke.command)}` exited {outcome.exit_code}{wanted}, "
                f"expected output matching /{pattern.pattern}/; got:\n{outcome.output[-1500:]}"
            )
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(outcome.output)
        res.smoke = "pass"
        first = match.group(0).strip().splitlines()[:1]
        log.info(f"[{node.id}] smoke pass on {arch.platform}: {first[0] if first else ''}")

    # -- list ---------------------------------------------------------------------------
    def publish_list(self, node: ListNode, results: dict[str, Result]) -> ListResult:
        name = node.image.repo
        res = ListResult(node)
        entries = []
        for arch in node.arches:
            child = results[f"{node.image.name}/{arch.name}"]
            assert isinstance(child, ImageResult) and child.ok
            entries.append(oci.ListEntry(arch, child.digest, child.manifest_size))
        interrupt.check(f"list {name}:{node.tag} not published")
        existing = self.registry.get_manifest(name, node.tag)
        kept = self._other_arches(name, node, existing)
        entries += kept
        # Every entry's image was verified in this run: by its node, or by _other_arches.
        verified = {e.digest for e in entries}
        digest, res.status = publish_list(
            self.registry, name, node.tag, entries, node.arches, existing, verified=verified
        )
        res.digest = digest
        also = f"; kept {', '.join(e.arch.name for e in kept)} from the previous list" if kept else ""
        log.info(f"[{node.id}] {res.status} {self.registry.ref(name, node.tag)} ({digest[:19]}), verified{also}")
        return res

    def _other_arches(self, name: str, node: ListNode, existing: Manifest | None) -> list[oci.ListEntry]:
        """Entries of the current list for arches this run did not build (``--arch amd64``
        must not drop mips64le from a list), when their images are still intact."""
        if existing is None or not existing.is_list:
            return []
        kept = []
        for entry in existing.doc.get("manifests", []):
            platform = entry.get("platform", {})
            arch = from_oci(platform.get("architecture", ""), platform.get("variant"))
            if arch is None or arch in node.arches:
                continue
            try:
                verify_image(self.registry, name, entry["digest"], arch)
            except KubemipsError:
                log.warn(f"[{node.id}] dropping {arch.platform} from the list: its image is no longer intact")
                continue
            kept.append(oci.ListEntry(arch, entry["digest"], int(entry["size"]), entry.get("mediaType", oci.MANIFEST)))
        return kept

    # -- walk ---------------------------------------------------------------------------
    def _classify(self, exc: KubemipsError | OSError, node: Node) -> KubemipsError:
        """The error to report for a failed step: a file-system fault as one naming its path,
        a tool that met a full disk as the disk full, and any failure while the registry
        has stopped answering as the registry's (a run fault, which stops the run)."""
        if isinstance(exc, OSError):
            return file_error(exc, self.settings.cache_dir, doing=f"{node.id}")
        if isinstance(exc, CommandError):
            said = [line.strip() for line in exc.output.splitlines() if os.strerror(errno.ENOSPC) in line]
            if said:
                cache = self.settings.cache_dir
                return DiskFull(f"{exc.what}: {cache}: No space left on device ({said[-1]}); {free_space(cache)}")
        if isinstance(exc, (RunFault, Interrupted)):
            return exc
        try:
            self.registry.ping(what=f"checked after {node.id} failed: {_first_line(str(exc))}")
        except RunFault as gone:
            return gone
        except KubemipsError:
            pass
        return exc

    def prepare(self, plan: Plan) -> None:
        """Before the first push: every prerequisite the plan needs, every source fetched.

        A missing engine, emulator or source then fails the run with nothing pushed,
        instead of after other images were built and pushed by digest."""
        for node in plan.nodes:
            if isinstance(node, ImageNode) and node.image.copies and node.comp.kind in ENGINE_KINDS:
                raise BuildError(
                    f"{node.comp.file}: image '{node.image.name}' is built by a Dockerfile ({node.comp.kind}): "
                    "copy files there with COPY --from, not with copy = [...]"
                )
        arches = sorted({n.arch for n in plan.nodes if isinstance(n, ImageNode)}, key=lambda a: a.name)
        needs_engine = self.smoke_enabled or any(
            isinstance(n, ImageNode) and n.comp.kind in ENGINE_KINDS for n in plan.nodes
        )
        for arch in arches:
            if needs_engine:
                engine = self.engines.for_arch(arch)
                for orphan in engine.remove_orphans():  # connects, or names the address
                    log.info(f"removed smoke-check container {orphan[:12]} of a run that did not finish")
            if not self.engines.is_native(arch):
                check_emulation(arch)
        seen: set[str] = set()
        began = time.monotonic()
        for node in plan.nodes:
            if isinstance(node, ImageNode) and node.comp.name not in seen:
                seen.add(node.comp.name)
                builder_for(node.comp).fetch(node.comp, self.ctx)
        self.fetch_seconds = time.monotonic() - began

    def _emulated(self, node: ImageNode) -> bool:
        """Whether building ``node`` runs target programs under QEMU on this machine."""
        comp, arch = node.comp, node.arch
        return builder_for(comp).emulated(comp) and self.engines.emulates(arch)

    def _weight(self, node: Node) -> float:
        """A node's expected cost relative to a native build, for scheduling."""
        if isinstance(node, ListNode):
            return 0.0
        return EMULATED_WEIGHT if self._emulated(node) else 1.0

    def run(self, plan: Plan, *, preset: Mapping[str, ImageResult] | None = None) -> Report:
        """Walk ``plan``; ``preset`` holds results of nodes done elsewhere (bases of a shard)."""
        report = Report(order=[*(preset or {}), *(n.id for n in plan.nodes)], fetch_seconds=self.fetch_seconds)
        began = time.monotonic()
        results = report.results
        results.update(preset or {})
        pending: list[Node] = list(plan.nodes)
        running: dict[Future[Result], Node] = {}

        def blocked(node: Node, why: str) -> Result:
            res: Result = ImageResult(node) if isinstance(node, ImageNode) else ListResult(node)
            res.status = "blocked" if isinstance(node, ImageNode) else "not published"
            res.error = why
            return res

        def task(node: Node) -> Result:
            start = time.monotonic()
            tracker.start(node.id)  # on this thread, so the node's commands report their output to it
            res: Result
            record = timing.Phases()
            try:
                if isinstance(node, ImageNode):
                    with timing.recording(record):
                        res = self.build_image(node, results)
                else:
                    res = self.publish_list(node, results)
            except _NotStarted as why:
                res = blocked(node, f"not attempted: {why}")
            except (KubemipsError, OSError) as raised:
                exc = self._classify(raised, node)
                if isinstance(exc, RunFault) and report.fault is None:
                    report.fault = exc
                res = blocked(node, str(exc))
                res.status = "failed" if isinstance(node, ImageNode) else "not published"
                if isinstance(res, ImageResult) and isinstance(exc, SmokeError):
                    res.smoke = "fail"
                log.info(f"[{node.id}] FAILED: {exc}")
            except Exception as exc:  # a bug: report it against the node, keep the others going
                res = blocked(node, f"internal error: {type(exc).__name__}: {exc}")
                res.status = "failed" if isinstance(node, ImageNode) else "not published"
                log.info(f"[{node.id}] INTERNAL ERROR\n{traceback.format_exc()}")
            res.seconds = time.monotonic() - start - record.waited
            if isinstance(res, ImageResult):
                res.phases = record.rounded(res.seconds)
            tracker.finish(node.id, res.status, res.seconds, ok=res.ok)
            return res

        def skip(node: Node, why: str) -> None:
            results[node.id] = blocked(node, why)
            tracker.finish(node.id, results[node.id].status, 0.0, ok=False)

        priority = self.priority = plan.chain_lengths(self._weight)
        in_flight = self.settings.jobs + CHECKS
        tracker = log.Tracker(len(plan.nodes))
        with tracker, ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="node") as pool:
            while pending or running:
                stop = "interrupted" if interrupt.requested() else "the run stopped" if report.fault else ""
                self.stopping = stop
                if stop:
                    for node in pending:  # start nothing new; running nodes stop at their next check
                        skip(node, f"not attempted: {stop}")
                    pending.clear()
                ready: list[Node] = []
                for node in list(pending):
                    deps = plan.deps.get(node.id, [])
                    failed = [d for d in deps if d in results and not results[d].ok]
                    if failed:
                        skip(node, f"not attempted: {', '.join(failed)} failed")
                        pending.remove(node)
                    elif all(d in results for d in deps):
                        ready.append(node)
                # The heaviest remaining chain first; a node in flight waits for a build
                # slot only once it knows it must build (self.slots).
                ready.sort(key=lambda n: -priority[n.id])
                for node in ready[: max(0, in_flight - len(running))]:
                    self.started[node.id] = len(self.started)
                    running[pool.submit(task, node)] = node
                    pending.remove(node)
                if not running:
                    continue
                done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    node = running.pop(fut)
                    results[node.id] = fut.result()
        report.seconds = time.monotonic() - began
        return report


class _NotStarted(Exception):
    """A node that waited for a build slot while the run stopped: reported as not attempted."""


CHECKS = 6
"""Nodes in flight beyond the build slots: they look the registry up (a warm node is
done then) and otherwise wait for a slot."""

EMULATED_WEIGHT = 4.0
"""How much longer a build under QEMU takes than a native one, for scheduling: the
benchmark measured mips64el Debian-package images at 3-4x their amd64 builds."""


def run_plan(
    settings: Settings,
    registry: Registry,
    plan: Plan,
    *,
    sources: Mapping[str, Mapping[str, Path]],
    force: bool = False,
    smoke: bool = True,
    tag_images: bool = True,
    preset: Mapping[str, ImageResult] | None = None,
) -> Report:
    """Build ``plan`` into ``registry`` with the configured engines: prepare (every
    prerequisite and source before the first push), then walk the graph.  ``force`` also
    bypasses the engines' layer cache, so that a forced rebuild runs every RUN step again."""
    engines = Engines.configured(settings, layer_cache=not force)
    runner = Runner(settings, registry, engines, force=force, smoke=smoke, sources=sources, tag_images=tag_images)
    runner.prepare(plan)
    return runner.run(plan, preset=preset)


def _first_line(text: str, limit: int = 300) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def file_in_image(registry: Registry, repo: str, digest: str, path: str) -> tuple[bytes, int]:
    """Content and mode of the regular file ``path`` in image ``repo@digest``: the top
    layer holding it wins, a whiteout above hides it (as in the image's filesystem)."""
    manifest = registry.get_manifest(repo, digest)
    if manifest is None:
        raise BuildError(f"{registry.ref(repo, digest)} vanished from the registry")
    want = path.strip("/")
    parent = want.rpartition("/")[0]
    hidden = {f"{parent}/.wh.{want.rpartition('/')[2]}".lstrip("/"), f"{parent}/.wh..wh..opq".lstrip("/")}
    for layer in reversed(manifest.doc["layers"]):
        with tarfile.open(fileobj=io.BytesIO(registry.get_blob(repo, layer["digest"])), mode="r:*") as tar:
            gone = False
            for member in tar:
                name = member.name.removeprefix("./").strip("/")
                if name == want:
                    data = tar.extractfile(member) if member.isreg() or member.islnk() else None
                    if data is None:
                        raise BuildError(f"{registry.ref(repo, digest)}: {path} is not a regular file")
                    return data.read(), member.mode & 0o777
                gone = gone or name in hidden
            if gone:
                break
    raise BuildError(f"{registry.ref(repo, digest)} has no {path}")
