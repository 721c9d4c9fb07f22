"""The command line: Invoke tasks over kubemips.app, run as `kubemips` or through `invoke`.

`kubemips --list`, `kubemips --help TASK` (or the same with `invoke` from the repo, whose
tasks.py re-exports ``ns``).  Comma lists everywhere: `kubemips build --what
debian-base,pause --arch amd64,mips64el`.  Settings come from kubemips.toml, then the
environment (REGISTRY, ALL_ARCH, WHAT, ...), then flags.  Every component under
components/ also gets its own `build-<name>` task.

Tasks have long flags only: Invoke's automatic short flags would make `-v` mean
`--version` on one task and `-r` shadow `invoke -r` (--search-root) on another.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.program import Program
from invoke.tasks import Task, task

from kubemips.e2erun import QUICK_FOCUS

from . import __version__, app, clusterops, components, config


def command(**options: Any) -> Callable[[Callable[..., None]], Task[Any]]:
    """``@task`` with long flags only (see the module docstring)."""
    decorator: Callable[[Callable[..., None]], Task[Any]] = task(auto_shortflags=False, **options)
    return decorator


_BUILD_HELP = {
    "arch": "comma-separated architectures (default: kubemips.toml / ALL_ARCH); mips64le = mips64el",
    "registry": "HOST[:PORT][/NAMESPACE] to push to (default: the embedded registry / REGISTRY)",
    "force": "rebuild and re-check even when the registry holds the same inputs (RUN steps too: "
    "the Docker engine's layer cache is not used)",
    "dry_run": "print the plan in dependency order and do nothing",
    "no_smoke": "skip running the images (not recommended: publishing then proves less)",
    "jobs": "steps run at the same time (default: kubemips.toml build.jobs)",
    "report": "write the JSON report here (default: <cache>/reports/last-build.json)",
    "progress": "auto (default), tty (a live status line), plain (timestamped lines), quiet; on stderr",
    "json": "stdout is JSON only: the plan with --dry-run, else the report",
}
"""The flags every building task takes (build, e2e-images, build-<component>)."""

_COMMON_HELP = {
    **_BUILD_HELP,
    "version": "build another version of the one component requested (needs --source unless pinned)",
    "source": "local source tree: DIR, or NAME=DIR,... for components with several sources",
}
"""The build flags plus the overrides of one component's version and source."""

_READ_REGISTRY = "HOST[:PORT][/NAMESPACE] to read from (default: the embedded registry / REGISTRY)"
_NAMES_REGISTRY = "HOST[:PORT][/NAMESPACE] the image names point at (default: the embedded registry / REGISTRY)"
_JSON = "print JSON on stdout instead of the table (nothing else goes to stdout)"


def _build(what: str, arch: str, registry: str, jobs: int, *, k8s: str | None = None, **options: Any) -> None:
    """Run a build from a task's flags; with ``k8s``, WHAT names e2e catalog images."""
    with app.edge(options.get("progress", "")):
        settings = app.settings(arch=arch, registry=registry, jobs=jobs)
        names: str | list[str] = (
            app.e2e_what(settings, k8s, what.replace(",", " ").split()) if k8s is not None else what
        )
        app.build(
            settings,
            names,
            force=options["force"],
            dry_run=options["dry_run"],
            smoke=not options["no_smoke"],
            report_path=options["report"],
            # $VERSION stands in for --version on the tasks that have that flag, as
            # upstream's `make VERSION=...` did; a flag wins.
            version=options["version"] or settings.version if "version" in options else "",
            source=options.get("source", ""),
            digests_dir=options.get("digests_dir", "") if options.get("push_by_digest") else "",
            k8s_source=options.get("k8s_source", ""),
            as_json=options.get("json", False),
        )


@command(
    help={
        "what": "comma-separated images or components, or 'all' (default: build.default-what)",
        "push_by_digest": "sharded mode: push per-arch images by digest only (no tag, no list)",
        "digests_dir": "sharded mode: where digest records are written (and bases' records read)",
        **_COMMON_HELP,
    }
)
def build(
    c: Context,
    what: str = "",
    arch: str = "",
    registry: str = "",
    force: bool = False,
    dry_run: bool = False,
    no_smoke: bool = False,
    jobs: int = 0,
    report: str = "",
    version: str = "",
    source: str = "",
    push_by_digest: bool = False,
    digests_dir: str = "",
    progress: str = "",
    json: bool = False,
) -> None:
    """Build, push, verify and smoke-check images and their manifest lists."""
    if push_by_digest != bool(digests_dir):
        raise Exit("error: --push-by-digest and --digests-dir go together", code=2)
    _build(
        what, arch, registry, jobs, force=force, dry_run=dry_run, no_smoke=no_smoke, report=report,
        version=version, source=source, push_by_digest=push_by_digest, digests_dir=digests_dir,
        progress=progress, json=json,
    )  # fmt: skip


@command(
    help={
        "what": "comma-separated images (default: build.default-what)",
        "arch": _COMMON_HELP["arch"],
        "registry": _READ_REGISTRY,
        "json": _JSON,
    }
)
def verify(c: Context, what: str = "", arch: str = "", registry: str = "", json: bool = False) -> None:
    """Read back published manifest lists and check every child and blob."""
    with app.edge():
        app.verify(app.settings(arch=arch, registry=registry), what, as_json=json)


@command(
    help={
        "what": "debian-packages components that keep a bundle (e.g. docker-ce)",
        "arch": _COMMON_HELP["arch"],
        "registry": _READ_REGISTRY,
        "out": "directory to write NAME-TAG-linux-ARCH/ folders into",
    }
)
def bundle(c: Context, what: str = "docker-ce", arch: str = "", registry: str = "", out: str = "bundles") -> None:
    """Export per-arch .deb bundles (node provisioning) from built images, checksums verified."""
    with app.edge():
        app.bundle(app.settings(arch=arch, registry=registry), what, Path(out))


@command(
    help={
        "what": "comma-separated images or components (default: build.default-what)",
        "arch": _COMMON_HELP["arch"],
        "stage": "only the entries of this stage (0 = images FROM scratch)",
        "github_output": "append stage0..stageN-1 matrices to this file ($GITHUB_OUTPUT)",
        "stages": "with --github-output: how many stage jobs the workflow has",
    }
)
def matrix(
    c: Context, what: str = "", arch: str = "", stage: int = -1, github_output: str = "", stages: int = 4
) -> None:
    """Print the GitHub Actions strategy.matrix JSON: one entry per image and arch."""
    with app.edge():
        settings = app.settings(arch=arch)
        if github_output:
            app.write_github_output(settings, what, Path(github_output), stages)
        else:
            print(json.dumps(app.matrix(settings, what, stage=None if stage < 0 else stage)))


@command(
    help={
        "digests_dir": "directory of digest records written by sharded builds",
        "allow_partial": "publish lists even when a configured arch has no record",
        "complete_only": "publish the lists of images with every arch; skip the others, naming them (exit 1)",
        "registry": _COMMON_HELP["registry"],
        "arch": _COMMON_HELP["arch"],
    }
)
def merge(
    c: Context,
    digests_dir: str = "digests",
    allow_partial: bool = False,
    complete_only: bool = False,
    registry: str = "",
    arch: str = "",
) -> None:
    """Publish and verify manifest lists from sharded builds' digest records."""
    with app.edge():
        if allow_partial and complete_only:
            raise Exit("error: --allow-partial and --complete-only: give one", code=2)
        settings = app.settings(arch=arch, registry=registry)
        app.merge(settings, Path(digests_dir), allow_partial=allow_partial, complete_only=complete_only)


_K8S_HELP = "Kubernetes version whose conformance catalog to use (e2e-images/catalogs/)"


@command(
    name="e2e-images",
    help={
        "what": "catalog images (ids, repositories like nginx, or components); default: the whole catalog",
        "k8s": _K8S_HELP,
        "source": "local Kubernetes tree for the images whose Go sources live there",
        **_BUILD_HELP,
    },
)
def e2e_images(
    c: Context,
    what: str = "",
    k8s: str = config.KUBERNETES_VERSION,
    arch: str = "",
    registry: str = "",
    force: bool = False,
    dry_run: bool = False,
    no_smoke: bool = False,
    jobs: int = 0,
    report: str = "",
    source: str = "",
    progress: str = "",
    json: bool = False,
) -> None:
    """Build the conformance e2e images (and what they need) for every configured arch."""
    _build(
        what, arch, registry, jobs, k8s=k8s, force=force, dry_run=dry_run, no_smoke=no_smoke, report=report,
        k8s_source=source, progress=progress, json=json,
    )  # fmt: skip


@command(name="e2e-list", help={"k8s": _K8S_HELP, "registry": _NAMES_REGISTRY})
def e2e_list(c: Context, k8s: str = config.KUBERNETES_VERSION, registry: str = "") -> None:
    """Print the images a conformance run of that version pulls, and which this project builds."""
    with app.edge():
        app.e2e_list(app.settings(registry=registry), k8s)


@command(name="e2e-repo-list", help={"k8s": _K8S_HELP, "registry": _NAMES_REGISTRY, "out": "YAML file to write"})
def e2e_repo_list(c: Context, k8s: str = config.KUBERNETES_VERSION, registry: str = "", out: str = "") -> None:
    """Write the KUBE_TEST_REPO_LIST YAML pointing every registry key at REGISTRY; print its path."""
    with app.edge():
        print(app.e2e_repo_list(app.settings(registry=registry), k8s, Path(out) if out else None))


@command(
    name="e2e-coverage",
    help={
        "k8s": _K8S_HELP,
        "registry": _READ_REGISTRY,
        "arch": _COMMON_HELP["arch"],
        "markdown": "Markdown file to write (default: <cache>/reports/e2e-coverage-K8S.md)",
        "html": "HTML page to write (default: <cache>/reports/e2e-coverage-K8S.html)",
        "json": _JSON,
    },
)
def e2e_coverage(
    c: Context,
    k8s: str = config.KUBERNETES_VERSION,
    registry: str = "",
    arch: str = "",
    markdown: str = "",
    html: str = "",
    json: bool = False,
) -> None:
    """Show, per catalog image and arch, whether the registry holds it (✅/❌/—) and its smoke result.

    Also writes the table as Markdown and as an HTML page, and appends it to GitHub's job
    summary when $GITHUB_STEP_SUMMARY is set."""
    with app.edge():
        app.e2e_coverage(
            app.settings(arch=arch, registry=registry),
            k8s,
            markdown=Path(markdown) if markdown else None,
            html=Path(html) if html else None,
            as_json=json,
        )


@command(
    help={
        "registry": _NAMES_REGISTRY,
        "k8s": "Kubernetes version (its conformance catalog names the test images)",
        "out": "directory for the rendered manifests",
    }
)
def manifests(
    c: Context, registry: str = "", k8s: str = config.KUBERNETES_VERSION, out: str = "rendered-manifests"
) -> None:
    """Render manifests/ (kubeadm, calico, coredns, metrics-server, conformance) for REGISTRY."""
    with app.edge():
        app.render_manifests(app.settings(registry=registry), k8s, Path(out))


@command(
    name="verify-manifests",
    help={"registry": _READ_REGISTRY, "dir": "rendered manifests", "arch": _COMMON_HELP["arch"]},
)
def verify_manifests(c: Context, registry: str = "", dir: str = "rendered-manifests", arch: str = "") -> None:
    """Check rendered manifests: API schema offline, and every image a list with every arch."""
    with app.edge():
        app.verify_manifests(app.settings(registry=registry, arch=arch), Path(dir))


@command(name="images-for-cluster", help={"registry": _NAMES_REGISTRY, "k8s": "Kubernetes version"})
def images_for_cluster(c: Context, registry: str = "", k8s: str = config.KUBERNETES_VERSION) -> None:
    """List every image a cluster of that version needs (like `kubeadm config images list`)."""
    with app.edge():
        for ref in app.cluster_images(app.settings(registry=registry), k8s):
            print(ref)


@command(
    name="mirror",
    help={
        "from_": "registry to copy from (HOST[:PORT][/NAMESPACE])",
        "registry": _COMMON_HELP["registry"],
        "k8s": "Kubernetes version",
        "what": "only these repositories (comma-separated)",
    },
)
def mirror(c: Context, from_: str, registry: str = "", k8s: str = config.KUBERNETES_VERSION, what: str = "") -> None:
    """Copy the cluster images the registry lacks from another registry, checking digests."""
    with app.edge():
        app.mirror(app.settings(registry=registry), from_, k8s, what.replace(",", " ").split())


@command(name="registry-start")
def registry_start(c: Context) -> None:
    """Start the embedded registry (127.0.0.1:5000 unless configured otherwise)."""
    with app.edge():
        server = app.embedded_server(app.settings())
        started = server.start()
        print(("started " if started else "already running: ") + server.describe())


@command(name="registry-stop")
def registry_stop(c: Context) -> None:
    """Stop the embedded registry (its data stays in the cache directory)."""
    with app.edge():
        server = app.embedded_server(app.settings())
        print("stopped" if server.stop() else "not running (as started by this project)")


@command(name="registry-status")
def registry_status(c: Context) -> None:
    """Show whether the embedded registry runs, and where its data is."""
    with app.edge():
        print(app.embedded_server(app.settings()).describe())


@command(name="show-config")
def show_config(c: Context) -> None:
    """Print the resolved settings and where each came from."""
    with app.edge():
        app.show_config(app.settings())


@command(help={"json": _JSON})
def images(c: Context, json: bool = False) -> None:
    """List the images this project can build."""
    with app.edge():
        app.list_images(app.settings(), as_json=json)


@command(
    help={
        "what": "comma-separated images (default: the default set and redis, perl, httpd-2.4.38, dnsutils)",
        "arch": _COMMON_HELP["arch"],
        "cases": "comma-separated, in this order: cold, warm, incremental, serial (default: all)",
        "touch": "the project file the incremental case changes (default: components/pause/pause.c)",
        "out": "write the results here as JSON (default: <cache>/reports/bench.json)",
        "keep": "keep the throwaway registry, caches, reports and build logs",
        "compare": "BEFORE.json,AFTER.json: compare two results instead of running",
    }
)
def bench(
    c: Context, what: str = "", arch: str = "", cases: str = "", touch: str = "", out: str = "",
    keep: bool = False, compare: str = "",
) -> None:  # fmt: skip
    """Measure cold, warm, incremental and serial builds into a throwaway registry: time per phase."""
    with app.edge():
        app.bench(
            app.settings(arch=arch), [w for w in what.replace(",", " ").split() if w], cases, touch=touch, out=out,
            keep=keep, compare=[p for p in compare.split(",") if p],
        )  # fmt: skip


@command(
    name="cluster-up",
    help={
        "arch": "the workloads' architecture: pods, add-ons, test pods (default: this machine's; "
        "another runs under QEMU, the node stays native)",
        "registry": _COMMON_HELP["registry"],
        "node_binaries": "directory with kubeadm, kubelet, kubectl instead of the registry's kubernetes-node bundle",
        "build": "build the images the registry lacks first (default; --no-build fails instead)",
        "node_arch": "the node's architecture: kubelet, control plane, etcd, kube-proxy (default: this "
        "machine's; another runs emulated too, an experiment)",
    },
)
def cluster_up(
    c: Context, arch: str = "", registry: str = "", node_binaries: str = "", build: bool = True, node_arch: str = ""
) -> None:
    """Bring up a single-node Kubernetes on this machine from the registry's images (idempotent)."""
    with app.edge():
        clusterops.cluster_up(app.settings(registry=registry), arch, node_binaries, build=build, node_arch=node_arch)


@command(name="cluster-down", help={"keep_logs": "copy every component's log to this directory first"})
def cluster_down(c: Context, keep_logs: str = "") -> None:
    """Remove everything cluster-up made (kubelet, containers, mounts, rules, interfaces, files); safe to repeat."""
    with app.edge():
        clusterops.cluster_down(app.settings(), keep_logs)


@command(
    help={
        "focus": "ginkgo focus regex (default: the whole conformance suite)",
        "skip": "ginkgo skip regex",
        "parallel": "ginkgo nodes (1 = serial, as certification runs)",
        "results": "directory for e2e.log, junit_*.xml, e2e.tar.gz (default: <cache>/reports/conformance)",
        "timeout": "seconds before the run is stopped (results so far are kept)",
        "registry": _COMMON_HELP["registry"],
        "build": "build the conformance image and test images the registry lacks first (default)",
        "quick": "only one test each of pods, containers, configmaps, secrets, DNS and services (minutes)",
        "submission": "also lay the results out here as a k8s-conformance submission (e2e.log, junit_01.xml, "
        "PRODUCT.yaml, README.md)",
    }
)
def conformance(
    c: Context,
    focus: str = r"\[Conformance\]",
    skip: str = "",
    parallel: int = 1,
    results: str = "",
    timeout: int = 10800,
    registry: str = "",
    build: bool = True,
    submission: str = "",
    quick: bool = False,
) -> None:
    """Run the conformance image's e2e.test against the local cluster; print passed/failed/skipped."""
    if quick:
        if focus != r"\[Conformance\]":
            raise Exit("conformance: --quick and --focus choose the tests both; give one", code=2)
        focus = QUICK_FOCUS

    with app.edge():
        settings = app.settings(registry=registry)
        out = Path(results) if results else settings.reports_dir / "conformance"
        summary = clusterops.run_conformance(
            settings,
            focus=focus,
            skip=skip,
            parallel=parallel,
            results=out,
            timeout=timeout,
            build=build,
            submission=Path(submission) if submission else None,
        )
        print(summary.render())
        print(f"results: {out}")
    if summary.failed or summary.ran == 0 or summary.incomplete:
        why = "failures" if summary.failed else summary.incomplete or "no test ran (check --focus)"
        raise Exit(f"conformance: {why}", code=1)


def _component_task(comp: components.Component) -> Task[Any]:
    images = ", ".join(f"{img.name}:{comp.tag}" for img in comp.images)

    def body(
        c: Context,
        arch: str = "",
        registry: str = "",
        force: bool = False,
        dry_run: bool = False,
        no_smoke: bool = False,
        jobs: int = 0,
        report: str = "",
        version: str = "",
        source: str = "",
        progress: str = "",
        json: bool = False,
    ) -> None:
        what = ",".join(img.name for img in comp.images)  # every image of the component
        _build(
            what, arch, registry, jobs, force=force, dry_run=dry_run, no_smoke=no_smoke, report=report,
            version=version, source=source, progress=progress, json=json,
        )  # fmt: skip

    body.__doc__ = f"Build {images}: {comp.description}"
    body.__name__ = f"build_{comp.name.replace('-', '_')}"
    return Task(body, name=f"build-{comp.name}", help=dict(_COMMON_HELP), auto_shortflags=False)


ns = Collection(
    build, bundle, matrix, merge, verify, e2e_images, e2e_list, e2e_repo_list, e2e_coverage,
    manifests, verify_manifests, images_for_cluster, mirror,
    registry_start, registry_stop, registry_status, show_config, images,
    cluster_up, cluster_down, conformance, bench,
)  # fmt: skip
_loaded, _broken = components.load_each(config.find_root())
for _comp in _loaded:
    ns.add_task(_component_task(_comp))
for _problem in _broken.values():  # a broken component file must not hide the other tasks
    print(f"warning: {_problem}", file=sys.stderr)


program = Program(namespace=ns, name="kubemips", binary="kubemips", binary_names=["kubemips"], version=__version__)


def main() -> None:
    """The `kubemips` console command: the same tasks as `invoke` in the repository."""
    program.run()
