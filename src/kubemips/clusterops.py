"""The cluster tasks: which images a local cluster and a conformance run need, building
what the registry lacks, then handing over to :mod:`cluster` and :mod:`e2erun`.

A cluster has two arches.  The node (kubelet, control plane, etcd, kube-proxy) is this
machine's; the workloads (pod sandbox, add-ons, every test pod) are ``--arch``'s, run under
QEMU user-mode emulation when that is another arch.  Node images and add-ons are named by
their per-arch tags; the test images, whose names e2e.test makes itself from
KUBE_TEST_REPO_LIST, come from the registry's per-arch view (:mod:`archview`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from . import app, archview, cluster, conformance, e2erun, log, manifests
from .arch import Arch, host_arch, parse_arch
from .catalog import Catalog
from .config import Settings
from .engine import Engine
from .errors import ClusterError, ConfigError
from .host import check_emulation
from .localregistry import open_registry
from .registry import Registry

NODE_IMAGES = ("hyperkube", "etcd", "kubernetes-node")
"""Of the node's arch: the control plane, etcd, and kubeadm/kubelet/kubectl."""
POD_IMAGES = ("pause", "coredns", "metrics-server")
"""Of the workloads' arch: the pod sandbox and the add-ons."""
ADDONS = ("coredns", "metrics-server")
"""Applied after kubeadm, each from ``manifests/<name>.yaml.in``; its image has the same name."""


def _present(reg: Registry, cat_image: tuple[str, str], arch: Arch) -> bool:
    """Whether the registry holds the per-arch tag (moved only to verified images)."""
    repo, tag = cat_image
    return reg.get_manifest(repo, arch.tag_for(tag)) is not None


def _ensure(s: Settings, reg: Registry, wanted: Iterable[tuple[str, Arch]], *, build: bool, why: str) -> list[str]:
    """Build every (image, arch) the registry lacks; returns what is still missing (only
    without ``build``: a failed build raises, naming the image and its log)."""
    cat = app.catalog(s)

    def missing() -> list[tuple[str, Arch]]:
        out = []
        for name, arch in wanted:
            comp, image = cat.image(name)
            if not _present(reg, (image.repo, comp.tag), arch):
                out.append((name, arch))
        return out

    lacking = missing()
    if lacking and build:
        log.info(f"{why}: the registry lacks {', '.join(f'{n} ({a})' for n, a in lacking)}; building")
        for arch in dict.fromkeys(a for _, a in lacking):
            # One arch at a time: a list keeps its other arches' images (see Runner.publish_list).
            app.build(dataclasses.replace(s, arches=(arch,)), [n for n, a in lacking if a == arch])
        lacking = missing()
    return [f"{n} for {a}" for n, a in lacking]


def _arch_here(arch: str) -> Arch:
    """The arch asked for (default this machine's), runnable here: natively or by QEMU."""
    wanted = parse_arch(arch) if arch else host_arch()
    check_emulation(wanted)
    return wanted


def cluster_up(
    s: Settings, arch: str = "", node_binaries: str = "", *, build: bool = True, node_arch: str = ""
) -> Path:
    """`invoke cluster-up`: a single-node cluster of the registry's images; the kubeconfig path.

    ``node_arch`` other than this machine's runs the node itself emulated too (the kubelet
    binary through binfmt, the control plane and etcd containers): an experiment, slow."""
    lay = cluster.layout_for(s.cache_dir)
    running = cluster.State.load(lay)
    if running is not None:
        # Without flags, a second cluster-up verifies the cluster that runs, whatever its arches.
        node_arch = node_arch or running.arch
        arch = arch or running.workloads or running.arch
    node = _arch_here(node_arch)
    workloads = _arch_here(arch)
    reg = open_registry(s)
    cat = app.catalog(s)
    wanted = [(n, node) for n in NODE_IMAGES] + [(n, workloads) for n in POD_IMAGES]
    native = host_arch()
    if node != native:
        wanted.append(("hyperkube", native))  # kube-proxy runs natively (see cluster.up)
    if running is not None:
        wanted = [(n, a) for n, a in wanted if n != "kubernetes-node"]  # its binaries are in place
    elif node_binaries:
        wanted = [(n, a) for n, a in wanted if n != "kubernetes-node"]
    missing = _ensure(s, reg, wanted, build=build, why="cluster-up")
    required = [m for m in missing if m.split()[0] not in ADDONS]
    if required:
        raise ClusterError(
            "cannot bring the cluster up, not in the registry: " + ", ".join(required) + " (build them with "
            "`invoke build-hyperkube` and `invoke build --what etcd,pause`, or run cluster-up without --no-build)"
        )

    def ref(name: str, arch: Arch) -> str:
        return f"{s.registry}/{_per_arch(cat, name, arch)}"

    kube = cat.image("hyperkube")[0].tag
    rendered = manifests.render(s.root, s.registry, kube, cat, s.cluster_plan)
    addons = tuple(
        cluster.Addon(name, rendered[f"{name}.yaml"]) for name in ADDONS if f"{name} for {workloads}" not in missing
    )
    if running is not None:
        binaries = lay.bin  # already in place; cluster.up verifies or resumes
    elif node_binaries:
        binaries = Path(node_binaries).expanduser().resolve()
        if not binaries.is_dir():
            raise ConfigError(f"--node-binaries {node_binaries}: not a directory")
    else:
        (binaries,) = app.bundle(dataclasses.replace(s, arches=(node,)), "kubernetes-node", lay.state / "bundle")
    request = cluster.UpRequest(
        arch=node,
        workloads=workloads,
        plan=s.cluster_plan,
        images=cluster.Images(
            hyperkube=ref("hyperkube", node),
            etcd=ref("etcd", node),
            pause=ref("pause", workloads),
            coredns=ref("coredns", workloads),
            metrics_server=ref("metrics-server", workloads),
            kube_proxy=ref("hyperkube", native),
        ),
        addons=addons,
        kubernetes=kube,
        registry=s.registry,
        kubeadm_template=rendered["kubeadm.yaml"],
        node_binaries=binaries,
        timeout=s.cluster_timeout,
    )
    if running is None:
        with log.step("pulling the cluster's images (a tag moved by a rebuild is refreshed)"):
            _pull(
                [(request.images.hyperkube, node), (request.images.etcd, node), (request.images.pause, workloads)]
                + ([(request.images.kube_proxy, native)] if request.emulated else [])
                + [(ref(a.name, workloads), workloads) for a in addons]
            )
    return cluster.up(request, lay)


def _pull(refs: Iterable[tuple[str, Arch]], *, held_only: bool = False) -> list[str]:
    """Pull images into the Docker engine now; returns those pulled.  kubeadm and the
    kubelet pull only what the engine lacks, so a tag moved by a rebuild (a per-arch tag,
    a view's tag) would otherwise leave the old image under its name.  ``held_only``:
    refresh only what the engine already holds (the rest is pulled when first used)."""
    import docker.errors

    engine = Engine()
    pulled = []
    for image, arch in refs:
        if held_only:
            try:
                engine.client.images.get(image)
            except docker.errors.ImageNotFound:
                continue
        engine.pull(image, arch)
        pulled.append(image)
    return pulled


def cluster_down(s: Settings, keep_logs: str = "") -> None:
    """`invoke cluster-down`: remove everything cluster-up made."""
    cluster.down(cluster.layout_for(s.cache_dir), s.cluster_plan, keep_logs=Path(keep_logs) if keep_logs else None)


def run_conformance(
    s: Settings,
    *,
    focus: str,
    skip: str,
    parallel: int,
    results: Path,
    timeout: int,
    build: bool = True,
    submission: Path | None = None,
) -> e2erun.Summary:
    """`invoke conformance`: e2e.test from the conformance image against the local cluster,
    every test pod from the registry's view of the cluster's workload arch."""
    lay = cluster.layout_for(s.cache_dir)
    st = cluster.status(lay)
    if st is None:
        raise ClusterError(f"no cluster answers (state {lay.state}): bring one up with `invoke cluster-up` first")
    node, workloads = parse_arch(st.arch), parse_arch(st.workloads or st.arch)
    cat = app.catalog(s)
    reg = open_registry(s)
    missing = _ensure(s, reg, [("conformance", node)], build=build, why="conformance")
    comp, image = cat.image("conformance")
    if missing:
        raise ClusterError(
            f"conformance: {s.registry}/{image.repo}:{comp.tag} for {node} is not in the registry; build it with "
            "`invoke e2e-images --what conformance` (compiles e2e.test, ginkgo and kubectl from the Kubernetes "
            "module: tens of minutes on 2 cores)"
        )
    cc = conformance.load(s.root, st.kubernetes, cat)
    provided = [e for e in cc.provided if e.build in cat.images and e.build not in ("conformance", "hyperkube")]
    absent = _ensure(s, reg, [(e.build, workloads) for e in provided], build=build, why="test images")
    with log.step(f"per-arch view {archview.registry_of(s.registry, workloads)}: {len(provided)} test images"):
        view = archview.publish(reg, [(e.name, e.tag) for e in provided], workloads)
        log.info(f"  {len(view.published)} pointed at their {workloads} images, {len(view.current)} already")
        view_registry = archview.registry_of(s.registry, workloads)
        stale = _pull([(f"{view_registry}/{r}", workloads) for r in view.published], held_only=True)
        if stale:
            names = ", ".join(r.rpartition("/")[2] for r in stale)
            log.info(f"  pulled again, the engine held older images under their names: {names}")
    if view.missing or absent:
        log.warn(f"not in the registry for {workloads}, tests that pull them will fail: "
                 f"{', '.join(view.missing)} (build them with `invoke e2e-images --arch {workloads}`)")  # fmt: skip
    results.mkdir(parents=True, exist_ok=True)
    repo_list = results / "repo-list.yaml"
    repo_list.write_text(conformance.repo_list_yaml(cc, archview.registry_of(s.registry, workloads)))
    runner = _per_arch(cat, "conformance", node)
    used = [runner, *_cluster_refs(s, node, workloads)]
    used += [f"{archview.prefix(workloads)}/{ref}" for ref in view.published + view.current]
    images = _digests(reg, used)
    started = time.time()
    summary = e2erun.run(
        e2erun.RunRequest(
            image=f"{s.registry}/{runner}",
            arch=node,
            kubeconfig=lay.kubeconfig,
            repo_list=repo_list,
            resolv_conf=lay.resolv_conf,
            results=results,
            focus=focus,
            skip=skip,
            parallel=parallel,
            timeout=timeout,
        )
    )
    record = e2erun.RunRecord(
        kubernetes=st.kubernetes,
        node=node,
        workloads=workloads,
        focus=focus,
        skip=skip,
        parallel=parallel,
        started=datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        seconds=time.time() - started,
        images={f"{s.registry}/{ref}": digest for ref, digest in images.items()},
    )
    page, web = e2erun.write_report(results, summary, record)
    log.info(f"results page {page} ({web.name} beside it)")
    if submission is not None:
        files = e2erun.write_submission(submission, results, summary, record)
        log.info(f"submission layout in {submission}: {', '.join(f.name for f in files)} (fill in PRODUCT.yaml)")
    return summary


def _per_arch(cat: Catalog, name: str, arch: Arch) -> str:
    """A catalog image's per-arch reference, ``repo:tag-linux-arch`` (moved only to verified images)."""
    comp, image = cat.image(name)
    return f"{image.repo}:{arch.tag_for(comp.tag)}"


def _cluster_refs(s: Settings, node: Arch, workloads: Arch) -> list[str]:
    """The cluster's own images as per-arch references."""
    cat = app.catalog(s)
    images = [(n, node) for n in NODE_IMAGES] + [(n, workloads) for n in POD_IMAGES]
    return [_per_arch(cat, name, arch) for name, arch in images if name != "kubernetes-node"]


def _digests(reg: Registry, refs: Iterable[str]) -> dict[str, str]:
    out = {}
    for ref in refs:
        repo, _, tag = ref.rpartition(":")
        manifest = reg.get_manifest(repo, tag)
        out[ref] = manifest.digest if manifest is not None else "(not in the registry)"
    return out
