"""A real single-node cluster on this machine: `invoke cluster-up`, a pod behind a Service
reached from the host, containment of pod traffic, `invoke conformance`, then
`invoke cluster-down` and a check that the machine is as it was.

Needs root, the Docker daemon, the CNI plugins, and in the registry (REGISTRY, default
the embedded 127.0.0.1:5000): hyperkube, etcd, pause, kubernetes-node, coredns,
metrics-server, agnhost (both arches), and for the quick conformance subset the
conformance image and the test images it pulls (mounttest, busybox, nginx, dnsutils ...).
Every address used is on interfaces the project (or this test) creates; the test's own
"outside" is a network namespace on this machine.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubemips import cluster, netplan
from kubemips.registry import Registry

from .conftest import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGISTRY = os.environ.get("REGISTRY", "127.0.0.1:5000")
# kubeadm, kubelet, kubectl to use instead of the registry's kubernetes-node bundle (cluster-up --node-binaries).
NODE_BINARIES = os.environ.get("KUBEMIPS_TEST_NODE_BINARIES", "")
pytestmark = [pytest.mark.integration, pytest.mark.cluster]

OUTSIDE_NS = "kubemips-test-outside"
OUTSIDE_HOST, OUTSIDE_PEER = "kmtest-out0", "kmtest-out1"
OUTSIDE_ADDRESS = "203.0.113.7"  # TEST-NET-3, routed only into the test's namespace


def sh(*argv: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def invoke(
    *args: str, cache: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "REGISTRY": REGISTRY, "KUBEMIPS_CACHE": str(cache), **(env or {})}
    full.pop("KUBEMIPS_CONFIG", None)
    proc = subprocess.run(
        [str(BIN / "invoke"), "-r", str(REPO), *args], env=full, capture_output=True, text=True, timeout=3000
    )
    if check and proc.returncode != 0:
        pytest.fail(f"invoke {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def in_registry(repo: str, tag: str) -> bool:
    return Registry(REGISTRY, plain_http=True).get_manifest(repo, tag) is not None


@pytest.fixture(scope="module")
def host_ready() -> None:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests need root")
    if Path("/sys/class/net", netplan.NODE_INTERFACE).exists():
        pytest.fail(f"{netplan.NODE_INTERFACE} exists: a cluster is already up here (invoke cluster-down first)")
    missing = [
        f"{r}:{t}"
        for r, t in (("hyperkube", "v1.16.2"), ("etcd", "3.4.23"), ("pause", "3.1"),
                     ("kubernetes-node", "v1.16.2"), ("agnhost", "2.6"), ("coredns", "1.6.2"),
                     ("metrics-server", "v0.3.6-5fcf6956"))
        if not in_registry(r, t)
    ]  # fmt: skip
    if missing:
        pytest.fail(f"not in {REGISTRY}: {', '.join(missing)} (build them first)")


def machine_snapshot() -> dict[str, object]:
    """What cluster-up changes and cluster-down must restore."""
    return {
        "links": sorted(line.split(":")[1].strip().split("@")[0] for line in sh("ip", "-o", "link").splitlines()),
        "routes": sh("ip", "route").splitlines(),
        "netns": sh("ip", "netns").splitlines(),
        "rules": [
            line.split(" [")[0] for line in sh("iptables-save").splitlines() if line.startswith(("-A", "*", ":"))
        ],
        "mounts": [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "kubelet" in line],
        "sysctls": cluster.read_sysctls(),
        "paths": [str(p) for p in (*cluster.HOST_PATHS, Path.home() / ".kube") if p.exists()],
    }


def assert_clean(before: dict[str, object]) -> None:
    after = machine_snapshot()
    for key in before:
        assert after[key] == before[key], f"{key} differs after cluster-down"
    assert "KUBE" not in sh("iptables-save") and "CNI-" not in sh("iptables-save")
    assert sh("docker", "ps", "-aq", "--filter", "label=io.kubernetes.docker.type") == ""


def test_conformance_without_a_cluster_says_so(host_ready: None, tmp_path: Path) -> None:
    proc = invoke("conformance", "--focus", "Pods", cache=tmp_path / "cache", check=False)
    assert proc.returncode != 0
    assert "no cluster answers" in proc.stderr and "invoke cluster-up" in proc.stderr


def test_cluster_up_names_a_missing_image_and_leaves_nothing(host_ready: None, tmp_path: Path) -> None:
    from kubemips.localregistry import RegistryServer

    before = machine_snapshot()
    server = RegistryServer(f"127.0.0.1:{free_port()}", tmp_path / "empty-registry")
    server.start()
    try:
        env = {"REGISTRY": server.listen}
        proc = invoke("cluster-up", "--no-build", cache=tmp_path / "cache", env=env, check=False)
    finally:
        server.stop()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not in the registry: hyperkube for amd64, etcd for amd64, kubernetes-node for amd64" in proc.stderr
    assert "pause for amd64" in proc.stderr and "invoke build-hyperkube" in proc.stderr
    assert not (tmp_path / "cache" / "cluster" / "state.json").exists()
    assert_clean(before)


def test_a_kubelet_that_cannot_start_is_named_and_cluster_down_cleans(host_ready: None, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = machine_snapshot()
    # The real kubeadm and kubectl, and a kubelet that only knows its version.
    invoke("bundle", "--what", "kubernetes-node", "--arch", "amd64", "--out", str(tmp_path / "b"), cache=cache)
    (bundle,) = (tmp_path / "b").iterdir()
    bad = tmp_path / "bad-node"
    bad.mkdir()
    for name in ("kubeadm", "kubectl"):
        shutil.copy2(bundle / name, bad / name)
    (bad / "kubelet").write_text(
        '#!/bin/sh\n[ "$1" = --version ] && { echo "Kubernetes v1.16.2"; exit 0; }\n'
        'echo "F1127 failed to run Kubelet: misconfiguration (test)" >&2; exit 1\n'
    )
    (bad / "kubelet").chmod(0o755)
    proc = invoke("cluster-up", "--node-binaries", str(bad), cache=cache, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"kubelet exited with code 1 right after starting; log .*/logs/kubelet\.log", proc.stderr)
    assert "misconfiguration (test)" in proc.stderr
    again = invoke("cluster-up", cache=cache, check=False)
    assert again.returncode == 1 and "run `invoke cluster-down` first" in again.stderr
    down = invoke("cluster-down", cache=cache)
    assert "nothing of the cluster is left" in down.stdout
    assert_clean(before)


@pytest.fixture
def outside() -> Iterator[str]:
    """An 'outside world' on this machine: a namespace behind a veth, reachable from the
    host at OUTSIDE_ADDRESS.  Pod traffic must never arrive there."""
    netns_dir = Path("/run/netns")
    had_dir = netns_dir.exists()
    sh("ip", "netns", "add", OUTSIDE_NS)
    try:
        sh("ip", "link", "add", OUTSIDE_HOST, "type", "veth", "peer", "name", OUTSIDE_PEER, "netns", OUTSIDE_NS)
        for ns in ([], ["-n", OUTSIDE_NS]):
            link = OUTSIDE_PEER if ns else OUTSIDE_HOST
            sh("ip", *ns, "link", "set", link, "up")
        sh("ip", "-n", OUTSIDE_NS, "addr", "add", f"{OUTSIDE_ADDRESS}/32", "dev", OUTSIDE_PEER)
        sh("ip", "-n", OUTSIDE_NS, "route", "add", "default", "dev", OUTSIDE_PEER)
        sh("ip", "route", "add", f"{OUTSIDE_ADDRESS}/32", "dev", OUTSIDE_HOST)
        yield OUTSIDE_ADDRESS
    finally:
        sh("ip", "link", "del", OUTSIDE_HOST, check=False)
        sh("ip", "netns", "del", OUTSIDE_NS, check=False)
        if not had_dir:  # `ip netns add` made /run/netns a mount point of its own
            sh("umount", str(netns_dir), check=False)
            sh("rmdir", str(netns_dir), check=False)


def ipv4_packets_seen(ns: str, address: str) -> int:
    """IPv4 packets for ``address`` that reached the namespace (its iptables counter)."""
    out = sh("ip", "netns", "exec", ns, "iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n")
    return sum(int(line.split()[0]) for line in out.splitlines() if address in line)


def container_arches(names: tuple[str, ...]) -> dict[str, str]:
    """Container name (io.kubernetes.container.name) -> the arch of the image it runs."""
    out = {}
    for line in sh("docker", "ps", "--filter", "label=io.kubernetes.docker.type=container", "-q").split():
        (info,) = json.loads(sh("docker", "inspect", line))
        name, image = info["Config"]["Labels"].get("io.kubernetes.container.name", ""), info["Image"]
        if name in names:
            out[name] = sh("docker", "image", "inspect", "-f", "{{.Architecture}}", image).strip()
    return out


@pytest.mark.parametrize("arch", ["amd64", "mips64el"])
def test_cluster_up_pod_service_containment_and_down(host_ready: None, outside: str, tmp_path: Path, arch: str) -> None:
    cache = tmp_path / "cache"
    before = machine_snapshot()
    began = time.monotonic()
    binaries = ["--node-binaries", NODE_BINARIES] if NODE_BINARIES else []
    up = invoke("cluster-up", "--arch", arch, "--no-build", *binaries, cache=cache, check=False)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        took = time.monotonic() - began
        match = re.search(r"^KUBECONFIG=(\S+)$", up.stdout, re.M)
        assert match, up.stdout
        kubeconfig = match.group(1)
        kube_cache = f"--cache-dir={cache / 'cluster' / 'kube-cache'}"
        kubectl = [str(cache / "cluster" / "bin" / "kubectl"), f"--kubeconfig={kubeconfig}", kube_cache]
        home = {"HOME": str(cache / "cluster")}  # kubectl's discovery cache

        nodes = json.loads(sh(*kubectl, "get", "nodes", "-o", "json", env=home))["items"]
        assert len(nodes) == 1 and cluster.node_ready(nodes[0])
        assert nodes[0]["spec"]["podCIDR"] == "198.18.128.0/24"
        addresses = {a["type"]: a["address"] for a in nodes[0]["status"]["addresses"]}
        assert addresses["InternalIP"] == "198.18.0.1"
        pods = json.loads(sh(*kubectl, "get", "pods", "-A", "-o", "json", env=home))["items"]
        assert cluster.pod_problems(pods) == []
        names = " ".join(p["metadata"]["name"] for p in pods)
        for component in (
            "etcd-", "kube-apiserver-", "kube-controller-manager-", "kube-scheduler-", "kube-proxy-",
            "coredns-", "metrics-server-",
        ):  # fmt: skip
            assert component in names
        images = {c["image"] for p in pods for c in p["spec"]["containers"]}
        assert all(i.startswith(REGISTRY + "/") for i in images), images
        # The node is this machine's arch; the add-ons and the sandbox are the workloads' arch.
        oci = {"amd64": "amd64", "mips64el": "mips64le"}[arch]
        running = container_arches(("kube-apiserver", "etcd", "kube-proxy", "coredns", "metrics-server"))
        assert running == {
            "kube-apiserver": "amd64", "etcd": "amd64", "kube-proxy": "amd64", "coredns": oci, "metrics-server": oci,
        }, running  # fmt: skip
        assert "pods' images by arch: " in up.stdout
        top = sh(*kubectl, "top", "node", env=home, check=False)
        for _ in range(40):  # metrics-server scrapes every 60 s
            if re.search(r"\d+m\s+\d+%", top):
                break
            time.sleep(3)
            top = sh(*kubectl, "top", "node", env=home, check=False)
        assert re.search(r"\d+m\s+\d+%", top), top

        # A second cluster-up verifies and prints, quickly.
        again = invoke("cluster-up", cache=cache)
        assert "verifying the running cluster" in again.stderr and f"KUBECONFIG={kubeconfig}" in again.stdout

        # A pod from the registry behind a Service, reached from the host through its ClusterIP.
        manifest = tmp_path / "netexec.yaml"
        manifest.write_text(NETEXEC.replace("REGISTRY", REGISTRY).replace("ARCH", oci))
        sh(*kubectl, "apply", "-f", str(manifest), env=home)
        sh(*kubectl, "wait", "--for=condition=Ready", "pod/netexec", "--timeout=180s", env=home)
        svc = json.loads(sh(*kubectl, "get", "service", "netexec", "-o", "json", env=home))
        ip = svc["spec"]["clusterIP"]
        assert ipaddress.ip_address(ip) in netplan.default().service_subnet
        body = ""
        for _ in range(30):  # kube-proxy programs the Service a moment after the pod is Ready
            body = sh("curl", "-sS", "-m", "10", f"http://{ip}:8080/hostname", check=False)
            if body.strip() == "netexec":
                break
            time.sleep(1)
        assert body.strip() == "netexec"

        # Pod traffic to an address outside the cluster's ranges is dropped on this machine.
        sh("ip", "netns", "exec", OUTSIDE_NS, "iptables", "-t", "raw", "-A", "PREROUTING", "-d", outside)
        sh("curl", "-sS", "-m", "3", f"http://{outside}:80/", check=False)
        assert ipv4_packets_seen(OUTSIDE_NS, outside) >= 1, "the test's outside is not reachable from the host"
        seen = ipv4_packets_seen(OUTSIDE_NS, outside)
        dial = f"http://{ip}:8080/dial?request=hostname&protocol=http&host={outside}&port=80&tries=2"
        sh("curl", "-sS", "-m", "30", dial, check=False)
        assert ipv4_packets_seen(OUTSIDE_NS, outside) == seen, "a pod's packet left the cluster's ranges"
        drops = sh("iptables", "-t", "mangle", "-L", cluster.CONTAIN_CHAIN, "-v", "-x", "-n")
        assert int(drops.strip().splitlines()[-1].split()[0]) >= 1, drops

        assert container_arches(("netexec",)) == {"netexec": oci}

        # The quick conformance subset, every test pod from the workloads' per-arch view.
        results = tmp_path / "results"
        run = invoke("conformance", "--quick", "--no-build", "--results", str(results), cache=cache, check=False)
        if in_registry("conformance", "v1.16.2"):
            assert run.returncode == 0, run.stdout + run.stderr
            assert re.search(r"passed 6, failed 0, skipped \d+", run.stdout), run.stdout
            assert (results / "e2e.log").exists() and list(results.glob("junit_*.xml"))
            repo_list = (results / "repo-list.yaml").read_text()
            assert f'e2eRegistry: "{REGISTRY}/linux-{oci}"' in repo_list, repo_list
            page = (results / "report.md").read_text()
            assert f"| {arch} | 6 | 0 |" in page and f"{REGISTRY}/linux-{oci}/agnhost:2.6" in page
        else:
            assert run.returncode != 0 and "invoke e2e-images --what conformance" in run.stderr
        print(f"cluster-up took {took:.0f}s")
    finally:
        down = invoke("cluster-down", cache=cache, check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "nothing of the cluster is left" in down.stdout
    assert_clean(before)
    twice = invoke("cluster-down", cache=cache)
    assert "nothing to remove" in twice.stdout


NETEXEC = """\
apiVersion: v1
kind: Pod
metadata:
  name: netexec
  labels: {app: netexec}
spec:
  containers:
    - name: netexec
      image: REGISTRY/agnhost:2.6-linux-ARCH
      args: [netexec, --http-port=8080]
      ports: [{containerPort: 8080}]
      readinessProbe:
        httpGet: {path: /hostname, port: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: netexec
spec:
  selector: {app: netexec}
  ports: [{port: 8080, targetPort: 8080}]
"""
