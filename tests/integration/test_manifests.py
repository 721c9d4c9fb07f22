"""Rendered cluster manifests pull only from the local registry, and verify-manifests tells
before deploying which image is missing for which arch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from . import upstream_trees
from .conftest import Cli, skopeo_raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BOTH = "amd64,mips64el"


@pytest.fixture(scope="module")
def pause_etcd(cli: Cli) -> None:
    cli.build("--what", "pause,etcd", "--arch", BOTH)


@pytest.fixture(scope="module")
def cluster_images(pause_etcd: None, cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every image the manifests name, built for both arches (cached when built already):
    Kubernetes, CoreDNS, metrics-server and the conformance image from their real modules
    (tens of minutes); calico from trees laid out like its repositories."""
    root = tmp_path_factory.mktemp("cluster-trees")
    calico = upstream_trees.calico(root / "calico")
    cli.invoke_build_task("build-hyperkube", "--arch", BOTH)
    cli.invoke_build_task("build-coredns", "--arch", BOTH)
    cli.invoke_build_task("build-metrics-server", "--arch", BOTH)
    sources = ",".join(f"{name}={path}" for name, path in calico.items())
    cli.invoke_build_task("build-calico", "--source", sources, "--arch", BOTH)
    cli.invoke_build_task("e2e-images", "--what", "conformance", "--arch", BOTH)


def test_rendered_manifests_reference_only_the_registry(cli: Cli, tmp_path: Path) -> None:
    cli.invoke("manifests", "--out", str(tmp_path))
    text = "\n".join(p.read_text() for p in sorted(tmp_path.glob("*.yaml")))
    images = [line.split("image:", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("image:")]
    assert images and all(i.startswith(cli.registry + "/") for i in images)
    assert f"imageRepository: {cli.registry}" in text
    listed = cli.invoke("images-for-cluster").stdout.split()
    assert len(listed) == 9 and all(i.startswith(cli.registry + "/") for i in listed)
    assert f"{cli.registry}/hyperkube:v1.16.2" in listed and f"{cli.registry}/pause:3.1" in listed


def test_verify_against_an_empty_registry_names_images_and_arches(cli: Cli, tmp_path: Path) -> None:
    empty = f"{cli.registry}/nothing-here"
    cli.invoke("manifests", "--out", str(tmp_path), "--registry", empty)
    proc = cli.invoke("verify-manifests", "--dir", str(tmp_path), "--registry", empty, check=False)
    assert proc.returncode == 1
    assert f"{empty}/hyperkube:v1.16.2: missing for linux/amd64, linux/mips64le" in proc.stdout
    assert f"{empty}/calico-node:v3.8.0: missing for linux/amd64, linux/mips64le" in proc.stdout
    assert "0 schema problem(s) and 9 image problem(s)" in proc.stderr


@pytest.mark.kubernetes
def test_verify_passes_once_the_components_are_built(cluster_images: None, cli: Cli, tmp_path: Path) -> None:
    cli.invoke("manifests", "--out", str(tmp_path))
    proc = cli.invoke("verify-manifests", "--dir", str(tmp_path))
    assert "all documents valid; every image is in the registry for every arch" in proc.stdout

    # A typo in a document is caught offline, naming the file and field.
    coredns = tmp_path / "coredns.yaml"
    coredns.write_text(coredns.read_text().replace("readinessProbe:", "readinessProbes:"))
    bad = cli.invoke("verify-manifests", "--dir", str(tmp_path), check=False)
    assert bad.returncode == 1
    assert "coredns.yaml document 5 (Deployment coredns)" in bad.stdout and "readinessProbes" in bad.stdout


def test_mirror_copies_missing_images_with_their_digests(pause_etcd: None, cli: Cli) -> None:
    dest = f"{cli.registry}/mirror"
    proc = cli.invoke("mirror", "--from", cli.registry, "--registry", dest, "--what", "pause,etcd")
    assert proc.stdout.count("copied from") == 2
    for ref in ("pause:3.1", "etcd:3.4.23"):
        assert skopeo_raw(f"{dest}/{ref}") == skopeo_raw(f"{cli.registry}/{ref}")  # same bytes, same digest
        platforms = {m["platform"]["architecture"] for m in json.loads(skopeo_raw(f"{dest}/{ref}"))["manifests"]}
        assert platforms == {"amd64", "mips64le"}
    again = cli.invoke("mirror", "--from", cli.registry, "--registry", dest, "--what", "pause,etcd")
    assert again.stdout.count("present") == 2
    # A build into the mirror finds its images as the lists' children: nothing is rebuilt,
    # the per-arch tags appear on the copied children and the list keeps its digest.
    listed = skopeo_raw(f"{dest}/pause:3.1")
    built = cli.build("--what", "pause", "--arch", BOTH, "--registry", dest)
    assert [built.image("pause", a)["status"] for a in ("amd64", "mips64el")] == ["cached", "cached"]
    assert built.list("pause")["status"] == "unchanged"
    assert skopeo_raw(f"{dest}/pause:3.1") == listed
    children = {m["platform"]["architecture"]: m["digest"] for m in json.loads(listed)["manifests"]}
    for arch in ("amd64", "mips64le"):
        argv = ["skopeo", "inspect", "--tls-verify=false", f"docker://{dest}/pause:3.1-linux-{arch}"]
        shown = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
        assert json.loads(shown.stdout)["Digest"] == children[arch]
