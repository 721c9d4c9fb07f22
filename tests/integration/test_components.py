"""The cluster components, for amd64 and mips64el (mips64el under QEMU).

Debian-sourced components (golang, etcd, docker-ce) and pause build for real here.
Kubernetes itself (hyperkube, the node binaries) builds from its real module in
tests/integration/test_kubernetes.py (`nox -s kubernetes`, by hand: tens of minutes);
the Go test images from the same module build in test_e2e.py.  CoreDNS and
metrics-server build from their real modules (no --source); calico still has no upstream
pin and builds from trees laid out like its repositories, through --source.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from kubemips.registry import Registry

from . import upstream_trees
from .conftest import Built, Cli, docker, free_port, skopeo_raw

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


def test_calico_from_source_trees(cli: Cli, tmp_path: Path) -> None:
    trees = upstream_trees.calico(tmp_path / "calico")
    calico = cli.invoke_build_task(
        "build-calico", "--source", ",".join(f"{k}={v}" for k, v in trees.items()), "--arch", BOTH
    )
    assert_built(calico, "calico-node", "calico-cni", "calico-kube-controllers", "calico-ctl")
    run = ("run", "--rm", "--platform", "linux/mips64le")
    assert docker(*run, f"{cli.registry}/calico-node:v3.8.0", "-v").stdout.strip() == "v3.8.0"
    assert "Client Version:    v3.8.0" in docker(*run, f"{cli.registry}/calico-ctl:v3.8.0", "version").stdout


def test_metrics_server_from_its_module_on_both_arches(cli: Cli) -> None:
    """metrics-server from sigs.k8s.io/metrics-server at commit 5fcf6956a533 (no --source):
    its smoke check starts it as the manifest does, with no API server, and it stops with
    its own message; here each arch also prints its stamped version and its real flags."""
    metrics = cli.invoke_build_task("build-metrics-server", "--arch", BOTH)
    assert_built(metrics, "metrics-server")
    assert arches_of(cli, "metrics-server", "v0.3.6-5fcf6956") == {"amd64", "mips64le"}
    image = f"{cli.registry}/metrics-server:v0.3.6-5fcf6956"
    for platform in ("linux/amd64", "linux/mips64le"):
        run = ("run", "--rm", "--pull", "always", "--network", "none", "--platform", platform, image)
        assert docker(*run, "--version", timeout=300).stdout.strip() == "v0.3.6-5fcf6956"
        flags = docker(*run, "--help", timeout=300).stdout
        assert flags.startswith("Launch metrics-server\n"), flags[:200]
        for flag in ("--kubelet-insecure-tls ", "--kubelet-preferred-address-types strings ", "--kubelet-port int "):
            assert flag in flags, flag
        started = docker(*run, "--cert-dir=/tmp", "--secure-port=4443", timeout=300, check=False)
        assert started.returncode == 2
        assert (
            "Error: failed to get delegated authentication kubeconfig: failed to get delegated authentication "
            "kubeconfig: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT must be defined"
        ) in started.stderr
        assert "Generated self-signed cert (/tmp/apiserver.crt, /tmp/apiserver.key)" in started.stderr


@pytest.mark.parametrize("version", ["1.6.2", "1.6.5"])
def test_coredns_from_its_module_answers_dns_on_mips64le(cli: Cli, version: str) -> None:
    """CoreDNS 1.6.2 and 1.6.5 from github.com/coredns/coredns at those versions (no
    --source): the smoke check runs the image's -version, counts its CA bundle's
    certificates, serves a zone on loopback and a client asks it for an A record and
    /health, on both arches.  Both versions' lists are published, each with its CA
    bundle taken from the ca-certificates image of the same arch."""
    coredns = cli.invoke_build_task("build-coredns", "--version", version, "--arch", BOTH)
    assert_built(coredns, "coredns", "ca-certificates")
    assert arches_of(cli, "coredns", version) == {"amd64", "mips64le"}
    image = f"{cli.registry}/coredns:{version}"
    out = docker("run", "--rm", "--pull", "always", "--platform", "linux/mips64le", image, "-version").stdout
    assert out.splitlines()[:2] == [f"CoreDNS-{version}", f"linux/mips64le, go1.19.8, v{version}"], out
    registry = Registry(cli.registry, plain_http=True)
    for arch in ("amd64", "mips64le"):
        config = json.loads(skopeo_raw(f"{image}-linux-{arch}", config=True))
        assert config["config"]["Entrypoint"] == ["/coredns"]
        assert config["history"][-2]["created_by"].endswith("--from=ca-certificates /etc/ssl/certs/ca-certificates.crt")
        manifest = json.loads(skopeo_raw(f"{image}-linux-{arch}"))
        files = []
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=io.BytesIO(registry.get_blob("coredns", layer["digest"]))) as tar:
                files += [m.name.removeprefix("./") for m in tar if m.isfile()]
        assert sorted(files) == ["coredns", "etc/ssl/certs/ca-certificates.crt"]


def test_unpinned_and_mismatched_sources_are_refused(cli: Cli) -> None:
    proc = cli.invoke("build-calico", "--arch", "amd64", check=False)
    assert proc.returncode == 2
    assert "no pinned source 'calicoctl', 'cni', 'kube-controllers', 'node' for calico 3.8.0" in proc.stderr
    proc = cli.invoke("build-hyperkube", "--version", "v1.17.0", "--arch", "amd64", check=False)
    assert proc.returncode == 2 and "pins its source for hyperkube v1.16.2" in proc.stderr


def test_module_source_faults_name_module_version_and_step(cli: Cli, tmp_path: Path) -> None:
    """A version the proxy does not have, and a go.sum hash that does not match: one
    message naming the module, its version and the step; nothing pushed."""
    project = tmp_path / "project"
    comp = project / "components" / "tiny"
    comp.mkdir(parents=True)
    (project / "kubemips.toml").write_text("")
    body = """
name = "tiny"
version = "v1.0.0"
[source]
kind = "go-module"
module = "k8s.io/kubernetes"
version = "VERSION"
sum = "SUM"
[build]
kind = "go"
binaries = [{ name = "x", package = "./cmd/x" }]
[image]
files = { "/x" = "x" }
[smoke]
command = ["/x"]
expect = "x"
"""
    good = "h1:k0f/OVp6Yfv+UMTm6VYKhqjRgcvHh4QhN9coanjrito="
    (comp / "component.toml").write_text(body.replace("VERSION", "v1.16.999").replace("SUM", good))
    proc = cli.invoke("build", "--what", "tiny", "--arch", "amd64", cwd=project, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "fetching Go module k8s.io/kubernetes@v1.16.999 failed" in proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    wrong = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    (comp / "component.toml").write_text(body.replace("VERSION", "v1.16.2").replace("SUM", wrong))
    proc = cli.invoke("build", "--what", "tiny", "--arch", "amd64", cwd=project, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"k8s.io/kubernetes@v1.16.2 has go.sum hash {good}, but the component pins {wrong}" in proc.stderr
    # The proxy unreachable (a closed loopback port) and a version not in the cache.
    (comp / "component.toml").write_text(body.replace("VERSION", "v1.16.3").replace("SUM", good))
    proc = cli.invoke(
        "build", "--what", "tiny", "--arch", "amd64", cwd=project, check=False,
        env={"GOPROXY": f"http://127.0.0.1:{free_port()}", "GOSUMDB": "off"},
    )  # fmt: skip
    assert proc.returncode == 1 and "fetching Go module k8s.io/kubernetes@v1.16.3 failed" in proc.stderr
    assert "connection refused" in proc.stderr
    # A generator that fails (this module vendors no openapi-gen) names itself and the module.
    uuid = body.replace('module = "k8s.io/kubernetes"', 'module = "github.com/google/uuid"')
    uuid = uuid.replace('version = "VERSION"', 'version = "v1.6.0"\nlayout = "gopath"\ngenerate = ["openapi"]')
    (comp / "component.toml").write_text(uuid.replace("SUM", "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0="))
    proc = cli.invoke("build", "--what", "tiny", "--arch", "amd64", cwd=project, check=False)
    assert proc.returncode == 1 and "generator 'openapi' failed for github.com/google/uuid@v1.6.0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert registry_has_nothing(cli, "tiny")


def registry_has_nothing(cli: Cli, repo: str) -> bool:
    proc = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", f"docker://{cli.registry}/{repo}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode != 0 or json.loads(proc.stdout).get("Tags") in (None, [])


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
