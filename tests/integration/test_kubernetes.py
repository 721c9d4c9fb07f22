"""Kubernetes v1.16.2 itself, from the real k8s.io/kubernetes module, for both arches.

Tens of minutes on 2 cores (every package of hyperkube, the node binaries and e2e.test
cross-compiled twice), so not part of the default run: `nox -s kubernetes`.  Each check
expects what only the real programs print.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Built, Cli, docker, skopeo_raw

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.kubernetes]
BOTH = "amd64,mips64el"
MIPS = ("run", "--rm", "--platform", "linux/mips64le")
GO_IMAGES = {
    "conformance": "v1.16.2",
    "nonewprivs": "1.0",
    "resource-consumer": "1.5",
    "resource-consumer-controller": "1.0",
    "sample-apiserver": "1.10",
    "apparmor-loader": "1.0",
    "nautilus": "1.0",
}


@pytest.fixture(scope="module")
def hyperkube(cli: Cli) -> Built:
    """The issue's own command, with no flags: the source is the pinned module."""
    return cli.invoke_build_task("build-hyperkube")


@pytest.fixture(scope="module")
def go_images(hyperkube: Built, cli: Cli) -> Built:
    return cli.invoke_build_task("e2e-images", "--what", ",".join(GO_IMAGES))


def test_hyperkube_for_both_arches(hyperkube: Built, cli: Cli) -> None:
    for name in ("hyperkube", "kubernetes-node"):
        for arch in ("amd64", "mips64el"):
            image = hyperkube.image(name, arch)
            assert image["smoke"] in ("pass", "cached"), image
        assert hyperkube.list(name)["status"] in ("published", "unchanged")
    doc = json.loads(skopeo_raw(f"{cli.registry}/hyperkube:v1.16.2"))
    assert {m["platform"]["architecture"] for m in doc["manifests"]} == {"amd64", "mips64le"}


@pytest.mark.parametrize(
    "command", ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet"]
)
def test_mips64le_server_binaries_print_the_release(hyperkube: Built, cli: Cli, command: str) -> None:
    out = docker(*MIPS, f"{cli.registry}/hyperkube:v1.16.2", f"/usr/local/bin/{command}", "--version", timeout=600)
    assert out.stdout.strip() == "Kubernetes v1.16.2"


def test_mips64le_kubectl_reports_commit_and_tree_state(hyperkube: Built, cli: Cli) -> None:
    out = docker(*MIPS, f"{cli.registry}/hyperkube:v1.16.2", "kubectl", "version", "--client", "-o", "json")
    info = json.loads(out.stdout)["clientVersion"]
    assert info["gitVersion"] == "v1.16.2"
    assert info["gitCommit"] == "c97fe5036ef3df2967d086711e6c0c405941e14b"
    assert (info["gitTreeState"], info["platform"]) == ("clean", "linux/mips64le")


def test_node_bundle_export(hyperkube: Built, cli: Cli, tmp_path: Path) -> None:
    proc = cli.invoke("bundle", "--what", "kubernetes-node", "--arch", "mips64el", "--out", str(tmp_path))
    bundle = tmp_path / "kubernetes-node-v1.16.2-linux-mips64le"
    assert sorted(p.name for p in bundle.iterdir()) == ["SHA256SUMS", "kubeadm", "kubectl", "kubelet"]
    assert "checksums verified" in proc.stdout
    out = docker(
        *MIPS, "-v", f"{bundle}:/b:ro", f"{cli.registry}/debian-base:1.0.0", "/b/kubeadm", "version", "-o", "short"
    )
    assert out.stdout.strip() == "v1.16.2"


def test_go_test_images_and_the_conformance_runner(go_images: Built, cli: Cli) -> None:
    for name, tag in GO_IMAGES.items():
        for arch in ("amd64", "mips64el"):
            image = go_images.image(name, arch)
            assert image["smoke"] in ("pass", "cached"), image
        doc = json.loads(skopeo_raw(f"{cli.registry}/{name}:{tag}"))
        assert {m["platform"]["architecture"] for m in doc["manifests"]} == {"amd64", "mips64le"}
    ref = f"{cli.registry}/conformance:v1.16.2"
    usage = docker(*MIPS, ref, "/usr/local/bin/e2e.test", "--help", check=False, timeout=600)
    for flag in ("-ginkgo.focus", "-kubeconfig", "-provider", "-report-dir"):
        assert flag in usage.stdout + usage.stderr
