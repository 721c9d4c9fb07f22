"""The eight cluster components, for amd64 and mips64el (mips64el under QEMU).

Debian-sourced components (golang, etcd, docker-ce) and pause build for real.  The Go
components (hyperkube, coredns, calico, metrics-server) build from trees laid out like
their upstream sources, through --source: the same path a user with network runs on the
pinned upstream source.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubemips.registry import Registry

from . import upstream_trees
from .conftest import Built, Cli, docker, skopeo_raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BOTH = "amd64,mips64el"


def arches_of(cli: Cli, name: str, tag: str) -> set[str]:
    doc = json.loads(skopeo_raw(f"{cli.registry}/{name}:{tag}"))
    return {m["platform"]["architecture"] for m in doc["manifests"]}


def assert_built(built: Built, *names: str) -> None:
    for name in names:
        for arch in ("amd64", "mips64el"):
            image = built.image(name, arch)
            assert image["status"] in ("built", "cached"), image
            assert image["smoke"] in ("pass", "cached"), image
        assert built.list(name)["status"] in ("published", "unchanged")


@pytest.fixture(scope="session")
def debian_components(cli: Cli) -> Built:
    return cli.build("--what", "etcd,golang,docker-ce,pause", "--arch", BOTH)


@pytest.fixture(scope="session")
def hyperkube(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Built:
    tree = upstream_trees.kubernetes(tmp_path_factory.mktemp("kubernetes"))
    return cli.invoke_build_task("build-hyperkube", "--source", str(tree), "--arch", BOTH)


def test_debian_sourced_components_hold_both_arches(debian_components: Built, cli: Cli) -> None:
    assert_built(debian_components, "etcd", "golang", "docker-ce", "pause")
    for name, tag in (("etcd", "3.4.23"), ("golang", "1.19.8"), ("docker-ce", "20.10.24"), ("pause", "3.1")):
        assert arches_of(cli, name, tag) == {"amd64", "mips64le"}


def test_package_versions_recorded_in_labels(debian_components: Built, cli: Cli) -> None:
    config = json.loads(skopeo_raw(f"{cli.registry}/etcd:3.4.23-linux-mips64le", config=True))
    labels = config["config"]["Labels"]
    assert "etcd-server=3.4.23" in labels["org.kubemips.debian.packages"]
    assert config["architecture"] == "mips64le"
    assert "ETCD_UNSUPPORTED_ARCH=mips64le" in config["config"]["Env"]


def test_mips64le_etcd_answers_put_get(debian_components: Built, cli: Cli) -> None:
    script = (
        "etcd --data-dir /tmp/e >/tmp/log 2>&1 & "
        "for i in $(seq 1 240); do etcdctl endpoint health >/dev/null 2>&1 && break; sleep 0.5; done; "
        "etcdctl put k v-$(uname -m) >/dev/null && etcdctl get k --print-value-only"
    )
    out = docker(
        "run", "--rm", "--network", "none", "--platform", "linux/mips64le", f"{cli.registry}/etcd:3.4.23",
        "sh", "-c", script, timeout=600,
    )  # fmt: skip
    assert out.stdout.strip() == "v-mips64"


def test_mips64le_golang_compiles_and_runs(debian_components: Built, cli: Cli) -> None:
    out = docker("run", "--rm", "--platform", "linux/mips64le", f"{cli.registry}/golang:1.19.8", "go", "version")
    assert out.stdout.strip() == "go version go1.19.8 linux/mips64le"
    assert "hello from linux/mips64le" in (cli.cache / "smoke").joinpath(
        next(p.name for p in (cli.cache / "smoke").iterdir() if p.name.startswith(
            debian_components.image("golang", "mips64el")["digest"].removeprefix("sha256:")))
    ).read_text()  # fmt: skip


def test_docker_ce_bundle_export(debian_components: Built, cli: Cli, tmp_path: Path) -> None:
    proc = cli.invoke("bundle", "--what", "docker-ce", "--arch", "mips64el", "--out", str(tmp_path))
    bundle = tmp_path / "docker-ce-20.10.24-linux-mips64le"
    debs = sorted(p.name for p in bundle.glob("*.deb"))
    assert any(d.startswith("docker.io_20.10.24") and d.endswith("_mips64el.deb") for d in debs), debs
    assert any(d.startswith("containerd_") for d in debs) and any(d.startswith("runc_") for d in debs)
    assert (bundle / "SHA256SUMS").read_text().count(".deb") == len(debs)
    assert "checksums verified" in proc.stdout


def test_hyperkube_from_source_runs_on_mips64le(hyperkube: Built, cli: Cli) -> None:
    assert_built(hyperkube, "hyperkube-base", "hyperkube")
    assert arches_of(cli, "hyperkube", "v1.16.2") == {"amd64", "mips64le"}
    out = docker(
        "run", "--rm", "--platform", "linux/mips64le", f"{cli.registry}/hyperkube:v1.16.2", "kubelet", "--version"
    )
    assert out.stdout.strip() == "Kubernetes v1.16.2"
    tools = docker(
        "run", "--rm", "--platform", "linux/mips64le", "--entrypoint", "sh", f"{cli.registry}/hyperkube:v1.16.2",
        "-c", "for t in iptables conntrack socat mount.nfs; do command -v $t; done | wc -l; dpkg --print-architecture",
    ).stdout.split()  # fmt: skip
    assert tools == ["4", "mips64el"]


def test_hyperkube_v1_17_is_a_wrapper(hyperkube: Built, cli: Cli, tmp_path: Path) -> None:
    tree = upstream_trees.kubernetes(tmp_path / "k8s-1.17", split=True)
    built = cli.invoke_build_task("build-hyperkube", "--version", "v1.17.0", "--source", str(tree), "--arch", "amd64")
    assert built.image("hyperkube", "amd64")["smoke"] == "pass"
    ref = f"{cli.registry}/hyperkube:v1.17.0"
    assert docker("run", "--rm", ref, "kube-apiserver", "--version").stdout.strip() == "Kubernetes v1.17.0"
    listing = docker("run", "--rm", "--entrypoint", "ls", ref, "/usr/local/bin").stdout.split()
    assert {"kube-apiserver", "kubelet", "kubectl", "kube-proxy"} <= set(listing)


def test_go_components_from_source_trees(cli: Cli, tmp_path: Path) -> None:
    trees = upstream_trees.calico(tmp_path / "calico")
    calico = cli.invoke_build_task(
        "build-calico", "--source", ",".join(f"{k}={v}" for k, v in trees.items()), "--arch", BOTH
    )
    assert_built(calico, "calico-node", "calico-cni", "calico-kube-controllers", "calico-ctl")
    coredns = cli.invoke_build_task(
        "build-coredns", "--source", str(upstream_trees.coredns(tmp_path / "coredns")), "--arch", BOTH
    )
    assert_built(coredns, "coredns")
    metrics = cli.invoke_build_task(
        "build-metrics-server", "--source", str(upstream_trees.metrics_server(tmp_path / "ms")), "--arch", BOTH
    )
    assert_built(metrics, "metrics-server")
    run = ("run", "--rm", "--platform", "linux/mips64le")
    assert docker(*run, f"{cli.registry}/coredns:1.6.2", "-version").stdout.splitlines()[:1] == ["CoreDNS-1.6.2"]
    assert "linux/mips64le" in docker(*run, f"{cli.registry}/coredns:1.6.2", "-version").stdout
    assert docker(*run, f"{cli.registry}/calico-node:v3.8.0", "-v").stdout.strip() == "v3.8.0"
    assert "Client Version:    v3.8.0" in docker(*run, f"{cli.registry}/calico-ctl:v3.8.0", "version").stdout
    assert (
        docker(*run, f"{cli.registry}/metrics-server:v0.3.6", "--help").stdout.strip() == "Launch metrics-server v0.3.6"
    )


def test_unpinned_and_mismatched_sources_are_refused(cli: Cli) -> None:
    proc = cli.invoke("build-coredns", "--arch", "amd64", check=False)
    assert proc.returncode == 2 and "no pinned source 'main' for coredns 1.6.2" in proc.stderr
    proc = cli.invoke("build-hyperkube", "--version", "v1.17.0", "--arch", "amd64", check=False)
    assert proc.returncode == 2 and "pins its source for hyperkube v1.16.2" in proc.stderr


def test_per_arch_patch_applies_only_where_needed(cli: Cli, registry: Registry, tmp_path: Path) -> None:
    """A Stat_t.Dev fix for mips64le: without it mips64le does not compile; amd64 never needs it."""
    project = tmp_path / "project"
    comp = project / "components" / "kube"
    (comp / "patches").mkdir(parents=True)
    (project / "kubemips.toml").write_text("")
    (comp / "patches" / "stat-dev.patch").write_text(upstream_trees.STAT_DEV_PATCH)
    body = """
name = "kube"
version = "v1.16.2"
[source]
kind = "git"
url = "https://example.invalid/kubernetes"
commit = "c97fe5036ef3df2967d086711e6c0c405941e14b"
patches = [{ file = "patches/stat-dev.patch", arches = ["mips64le"], versions = ">=1.16.0,<1.17.0" }]
[build]
kind = "go"
binaries = [{ name = "hyperkube", package = "./cmd/hyperkube" }]
ldflags = ["-X k8s.io/kubernetes/pkg/version.gitVersion={version}"]
[image]
entrypoint = ["/hyperkube"]
files = { "/hyperkube" = "hyperkube" }
[smoke]
command = ["kubelet", "--version"]
expect = "^Kubernetes {version}$"
"""
    (comp / "component.toml").write_text(body)
    tree = upstream_trees.kubernetes(tmp_path / "tree", stat_bug=True)
    built = cli.build("--what", "kube", "--arch", BOTH, "--source", str(tree), cwd=project)
    assert {built.image("kube", a)["smoke"] for a in ("amd64", "mips64el")} == {"pass"}

    # Without the patch, the mips64le build fails, naming the file; amd64 still publishes.
    (comp / "component.toml").write_text(
        body.replace(
            'patches = [{ file = "patches/stat-dev.patch", arches = ["mips64le"], versions = ">=1.16.0,<1.17.0" }]\n',
            "",
        )
    )
    broken = cli.build("--what", "kube", "--arch", BOTH, "--source", str(tree), "--force", cwd=project, check=False)
    assert broken.proc.returncode == 1
    assert broken.image("kube", "mips64el")["status"] == "failed"
    assert "dev.go" in broken.image("kube", "mips64el")["error"]
    assert broken.image("kube", "amd64")["status"] == "built"
    assert broken.list("kube")["status"] == "not published"

    # A patch that no longer applies fails loudly, naming the patch.
    (comp / "component.toml").write_text(body)
    (comp / "patches" / "stat-dev.patch").write_text(
        upstream_trees.STAT_DEV_PATCH.replace("return st.Dev", "return st.Ino")
    )
    stale = cli.build(
        "--what", "kube", "--arch", "mips64el", "--source", str(tree), "--force", cwd=project, check=False
    )
    assert stale.proc.returncode == 1
    assert "stat-dev.patch does not apply" in stale.image("kube", "mips64el")["error"]
