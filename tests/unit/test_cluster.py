"""The local cluster's pure logic: address plan, kubeadm/CNI/kubelet configuration, clean-up
plans parsed from iptables-save and mountinfo, readiness, and conformance results."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from kubemips import cluster, config, dockerrelay, e2erun, manifests, netplan
from kubemips.arch import parse_arch
from kubemips.catalog import load_catalog
from kubemips.errors import ClusterError, ConfigError

REPO = Path(__file__).resolve().parents[2]
LAYOUT = cluster.Layout(Path("/srv/kubemips/.cache/cluster"))
AMD64 = parse_arch("amd64")


# -- address plan ------------------------------------------------------------------------------


def test_default_plan_is_one_reserved_block_split_three_ways() -> None:
    plan = netplan.default()
    assert str(plan.node_address) == "198.18.0.1"
    assert str(plan.node_pod_cidr) == "198.18.128.0/24"
    assert str(plan.pod_gateway) == "198.18.128.1"
    assert str(plan.api_service_address) == "198.18.16.1"
    assert str(plan.dns_address) == "198.18.16.10"
    block = ipaddress.ip_network("198.18.0.0/15")
    assert all(net.subnet_of(block) for net in plan.ranges().values())  # type: ignore[arg-type]
    assert netplan.check(plan) == []


@pytest.mark.parametrize(
    ("node", "services", "pods", "problem"),
    [
        ("8.8.8.8", "198.18.16.0/20", "198.18.128.0/17", "node range 8.8.8.8/32 must be a private"),
        ("198.18.0.1", "198.18.0.0/20", "198.18.128.0/17", "node range 198.18.0.1/32 overlaps services"),
        ("198.18.0.1", "198.18.16.0/20", "198.18.16.0/21", "overlaps pods range 198.18.16.0/21"),
        ("198.18.0.1", "100.64.0.0/10", "198.18.128.0/17", "larger than Kubernetes allows"),
        ("198.18.0.1", "198.18.16.0/20", "198.18.128.0/25", "smaller than one node's /24"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(node: str, services: str, pods: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("/", ".").replace("(", ".")):
        netplan.parse(node, services, pods)


def test_a_plan_clashing_with_the_host_network_is_named() -> None:
    plan = netplan.default()
    routes = ["default", "192.0.2.0/24", "198.18.16.0/24"]
    addresses = ["192.0.2.2/24", "198.18.130.5/24", "fd00::2/64"]
    problems = netplan.conflicts(plan, routes, addresses)
    assert problems == [
        "the host already routes 198.18.16.0/24, which overlaps the services range 198.18.16.0/20",
        "the host already has 198.18.130.5/24 on an interface, inside the pods range 198.18.128.0/17",
    ]
    assert netplan.conflicts(plan, ["default", "192.0.2.0/24"], ["192.0.2.2/24", "127.0.0.1/8"]) == []


def test_cluster_settings_come_from_kubemips_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "kubemips.toml"
    cfg.write_text('[cluster]\nnode-address = "198.19.0.1"\nservice-subnet = "198.19.16.0/20"\n'
                   'pod-subnet = "198.19.128.0/17"\ntimeout = 120\n')  # fmt: skip
    s = config.load(root=tmp_path, env={})
    assert str(s.cluster_plan.dns_address) == "198.19.16.10" and s.cluster_timeout == 120
    cfg.write_text('[cluster]\npod-subnet = "198.18.0.0/16"\n')
    with pytest.raises(ConfigError, match=r"\[cluster\].*overlaps"):
        config.load(root=tmp_path, env={})
    cfg.write_text('[cluster]\nnode-adress = "198.19.0.1"\n')
    with pytest.raises(ConfigError, match="node-address"):
        config.load(root=tmp_path, env={})


# -- configuration rendering -----------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return manifests.render(REPO, "127.0.0.1:5000", "v1.16.2", load_catalog(REPO), netplan.default())


def test_manifests_carry_the_plan_and_coredns_forwards_nowhere(rendered: dict[str, str]) -> None:
    kubeadm = {d["kind"]: d for d in yaml.safe_load_all(rendered["kubeadm.yaml"]) if d}
    assert kubeadm["ClusterConfiguration"]["networking"] == {
        "podSubnet": "198.18.128.0/17",
        "serviceSubnet": "198.18.16.0/20",
    }
    coredns = [d for d in yaml.safe_load_all(rendered["coredns.yaml"]) if d]
    service = next(d for d in coredns if d["kind"] == "Service")
    assert service["spec"]["clusterIP"] == "198.18.16.10"
    corefile = next(d for d in coredns if d["kind"] == "ConfigMap")["data"]["Corefile"]
    assert "forward" not in corefile and "proxy" not in corefile
    assert "198.18.128.0/17" in rendered["calico.yaml"]


def test_kubeadm_config_for_this_node(rendered: dict[str, str]) -> None:
    text = cluster.kubeadm_config(
        rendered["kubeadm.yaml"], plan=netplan.default(), node_name="vm", lay=LAYOUT, arch=AMD64,
        docker_endpoint="unix:///srv/kubemips/.cache/cluster/docker.sock",
    )  # fmt: skip
    docs = {d["kind"]: d for d in yaml.safe_load_all(text) if d}
    assert set(docs) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"}
    init, clus = docs["InitConfiguration"], docs["ClusterConfiguration"]
    assert init["localAPIEndpoint"] == {"advertiseAddress": "198.18.0.1", "bindPort": 6443}
    reg = init["nodeRegistration"]
    assert reg["name"] == "vm" and reg["taints"] == [] and reg["criSocket"] == "/var/run/dockershim.sock"
    assert reg["kubeletExtraArgs"] == {
        "pod-infra-container-image": "127.0.0.1:5000/pause:3.1-linux-amd64",
        "node-ip": "198.18.0.1",
        "cni-conf-dir": "/srv/kubemips/.cache/cluster/cni/net.d",
        "cni-bin-dir": "/srv/kubemips/.cache/cluster/cni/bin",
        "docker-endpoint": "unix:///srv/kubemips/.cache/cluster/docker.sock",
    }
    # Per-arch tags: hyperkube's comes from kubernetesVersion (a semver pre-release).
    assert clus["useHyperKubeImage"] is True and clus["imageRepository"] == "127.0.0.1:5000"
    assert clus["kubernetesVersion"] == "v1.16.2-linux-amd64"
    assert clus["dns"]["imageTag"] == "1.6.2-linux-amd64"
    assert clus["etcd"]["local"] == {
        "imageRepository": "127.0.0.1:5000",
        "imageTag": "3.4.23-linux-amd64",
        "dataDir": "/srv/kubemips/.cache/cluster/etcd",
    }
    assert clus["apiServer"]["extraArgs"] == {"bind-address": "198.18.0.1"}
    kubelet, proxy = docs["KubeletConfiguration"], docs["KubeProxyConfiguration"]
    assert kubelet["cgroupDriver"] == "cgroupfs" and kubelet["address"] == "198.18.0.1"
    assert kubelet["resolvConf"] == "/srv/kubemips/.cache/cluster/resolv.conf"
    assert kubelet["clusterDNS"] == ["198.18.16.10"] and kubelet["imageGCHighThresholdPercent"] == 100
    assert kubelet["evictionHard"]["imagefs.available"] == "2Gi"
    assert proxy["clusterCIDR"] == "198.18.128.0/17" and proxy["nodePortAddresses"] == ["198.18.0.1/32"]
    assert proxy["conntrack"]["maxPerCore"] == 0
    # What the project keeps of kubeadm's schema still accepts the node's documents.
    from kubemips import k8sschema

    assert k8sschema.validate(init, "init") == [] and k8sschema.validate(clus, "cluster") == []


def test_kubeadm_config_with_foreign_workloads_keeps_the_node_native(rendered: dict[str, str]) -> None:
    """`cluster-up --arch mips64el` on amd64: control plane and etcd stay amd64, the pod
    sandbox and CoreDNS (workloads) are mips64le."""
    text = cluster.kubeadm_config(
        rendered["kubeadm.yaml"], plan=netplan.default(), node_name="vm", lay=LAYOUT, arch=AMD64,
        workloads=parse_arch("mips64el"),
    )  # fmt: skip
    docs = {d["kind"]: d for d in yaml.safe_load_all(text) if d}
    init, clus = docs["InitConfiguration"], docs["ClusterConfiguration"]
    extra = init["nodeRegistration"]["kubeletExtraArgs"]
    assert extra["pod-infra-container-image"] == "127.0.0.1:5000/pause:3.1-linux-mips64le"
    assert clus["dns"]["imageTag"] == "1.6.2-linux-mips64le"
    assert clus["kubernetesVersion"] == "v1.16.2-linux-amd64"
    assert clus["etcd"]["local"]["imageTag"] == "3.4.23-linux-amd64"


def test_metrics_server_manifest_trusts_the_kubelets_self_signed_certificate(rendered: dict[str, str]) -> None:
    text = cluster.per_arch_images(rendered["metrics-server.yaml"], parse_arch("mips64el"))
    deployment = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "127.0.0.1:5000/metrics-server:v0.3.6-5fcf6956-linux-mips64le"
    assert "--kubelet-insecure-tls" in container["args"]
    assert "--kubelet-preferred-address-types=InternalIP,Hostname" in container["args"]


def test_kubeadm_config_refuses_a_template_with_other_ranges(rendered: dict[str, str]) -> None:
    other = netplan.parse("198.19.0.1", "198.19.16.0/20", "198.19.128.0/17")
    with pytest.raises(ClusterError, match="renders networking"):
        cluster.kubeadm_config(rendered["kubeadm.yaml"], plan=other, node_name="vm", lay=LAYOUT, arch=AMD64)


def test_coredns_manifest_names_per_arch_tags(rendered: dict[str, str]) -> None:
    text = cluster.per_arch_images(rendered["coredns.yaml"], parse_arch("mips64el"))
    images = [line.split()[-1] for line in text.splitlines() if "image:" in line]
    assert images == ["127.0.0.1:5000/coredns:1.6.2-linux-mips64le"]


def test_cni_config_keeps_pods_on_the_bridge() -> None:
    conf = cluster.cni_config(netplan.default(), LAYOUT)
    bridge, portmap = conf["plugins"]
    assert bridge["bridge"] == "kubemips-cni0" and bridge["ipMasq"] is False and bridge["hairpinMode"] is True
    assert bridge["ipam"]["ranges"] == [[{"subnet": "198.18.128.0/24", "gateway": "198.18.128.1"}]]
    assert bridge["ipam"]["dataDir"] == "/srv/kubemips/.cache/cluster/cni/ipam"
    assert portmap["type"] == "portmap"
    assert cluster.resolv_conf(netplan.default()).splitlines()[-1] == "nameserver 198.18.16.10"


def test_containment_drops_pod_traffic_leaving_the_cluster_ranges() -> None:
    plan = netplan.default()
    assert cluster.contain_rules(plan) == [
        ["-A", "KUBEMIPS-CONTAIN", "-d", "198.18.0.1/32", "-j", "RETURN"],
        ["-A", "KUBEMIPS-CONTAIN", "-d", "198.18.16.0/20", "-j", "RETURN"],
        ["-A", "KUBEMIPS-CONTAIN", "-d", "198.18.128.0/17", "-j", "RETURN"],
        ["-A", "KUBEMIPS-CONTAIN", "-j", "DROP"],
    ]
    assert cluster.contain_jump(plan) == ["FORWARD", "-s", "198.18.128.0/17", "-j", "KUBEMIPS-CONTAIN"]


def test_kubelet_command_line_from_kubeadm_flags() -> None:
    env = (
        'KUBELET_KUBEADM_ARGS="--cgroup-driver=cgroupfs --network-plugin=cni '
        '--pod-infra-container-image=127.0.0.1:5000/pause:3.1 --node-ip=198.18.0.1"\n'
    )
    argv = cluster.kubelet_argv(Path("/s/bin/kubelet"), env)
    assert argv == [
        "/s/bin/kubelet",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
        "--cgroup-driver=cgroupfs",
        "--network-plugin=cni",
        "--pod-infra-container-image=127.0.0.1:5000/pause:3.1",
        "--node-ip=198.18.0.1",
    ]
    assert cluster.kubelet_argv(Path("/k"), 'KUBELET_KUBEADM_ARGS=""\n')[-1] == "--config=/var/lib/kubelet/config.yaml"


def test_preflight_ignores_only_what_cannot_pass() -> None:
    assert list(cluster.preflight_ignores(coredns=True)) == ["Service-Docker"]
    assert list(cluster.preflight_ignores(coredns=False)) == ["Service-Docker", "ImagePull"]


def test_host_names_from_etc_hosts() -> None:
    text = "127.0.0.1 localhost\n127.0.0.1 runsc vm # the VM\n# 198.19.0.1 commented\n::1 ip6-localhost\n"
    assert cluster.hosts_names(text) == {"localhost", "runsc", "vm", "ip6-localhost"}


# -- clean-up plans --------------------------------------------------------------------------

IPTABLES_SAVE = """\
# Generated by iptables-save v1.8.9 (nf_tables)
*mangle
:PREROUTING ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:KUBEMIPS-CONTAIN - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A FORWARD -s 198.18.128.0/17 -j KUBEMIPS-CONTAIN
-A KUBEMIPS-CONTAIN -d 198.18.0.1/32 -j RETURN
-A KUBEMIPS-CONTAIN -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-LIKE - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -j DOCKER-LIKE
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE
-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
"""


def test_iptables_cleanup_removes_only_the_cluster_chains_and_their_jumps() -> None:
    plan = cluster.iptables_cleanup(IPTABLES_SAVE)
    assert plan == [
        ["-t", "mangle", "-D", "FORWARD", "-s", "198.18.128.0/17", "-j", "KUBEMIPS-CONTAIN"],
        ["-t", "nat", "-D", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals",
         "-j", "KUBE-SERVICES"],
        ["-t", "nat", "-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"],
        ["-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "kubernetes postrouting rules",
         "-j", "KUBE-POSTROUTING"],
        ["-t", "mangle", "-F", "KUBEMIPS-CONTAIN"],
        ["-t", "mangle", "-F", "KUBE-KUBELET-CANARY"],
        ["-t", "nat", "-F", "KUBE-SERVICES"],
        ["-t", "nat", "-F", "KUBE-POSTROUTING"],
        ["-t", "nat", "-F", "CNI-HOSTPORT-DNAT"],
        ["-t", "mangle", "-X", "KUBEMIPS-CONTAIN"],
        ["-t", "mangle", "-X", "KUBE-KUBELET-CANARY"],
        ["-t", "nat", "-X", "KUBE-SERVICES"],
        ["-t", "nat", "-X", "KUBE-POSTROUTING"],
        ["-t", "nat", "-X", "CNI-HOSTPORT-DNAT"],
    ]  # fmt: skip
    assert cluster.iptables_cleanup("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n") == []
    assert len(cluster.leftover_lines(IPTABLES_SAVE)) == 12


def test_tables_left_empty_are_told_from_used_ones() -> None:
    assert cluster.saved_tables(IPTABLES_SAVE) == {"mangle": True, "nat": True}
    empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    assert cluster.saved_tables(empty) == {"filter": False, "nat": False}


def test_mounts_under_the_kubelet_dir_deepest_first() -> None:
    mountinfo = (
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "90 22 0:50 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~secret/tok rw - tmpfs tmpfs rw\n"
        "91 22 254:0 /var/lib/kubelet /var/lib/kubelet rw shared:1 - ext4 /dev/vda rw\n"
        "92 22 0:51 / /var/lib/kubelet-other rw - tmpfs tmpfs rw\n"
        "93 22 0:52 / /var/lib/kubelet/pods/u2/volumes/kubernetes.io~empty\\040dir/x rw - tmpfs tmpfs rw\n"
    )
    assert cluster.mounts_under(mountinfo, Path("/var/lib/kubelet")) == [
        "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~secret/tok",
        "/var/lib/kubelet/pods/u2/volumes/kubernetes.io~empty dir/x",
        "/var/lib/kubelet",
    ]


# -- readiness ---------------------------------------------------------------------------------


def test_readiness_of_nodes_and_pods() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert cluster.node_ready(ready) and not cluster.node_ready({"status": {"conditions": []}})
    pods = [
        {"metadata": {"name": "etcd-vm"}, "status": {"phase": "Running",
         "containerStatuses": [{"ready": True, "state": {"running": {}}}]}},
        {"metadata": {"name": "coredns-1"}, "status": {"phase": "Running",
         "containerStatuses": [{"ready": False, "state": {"running": {}}}]}},
        {"metadata": {"name": "kube-proxy-x"}, "status": {"phase": "Pending",
         "containerStatuses": [{"ready": False, "state": {"waiting": {"reason": "ErrImagePull"}}}]}},
        {"metadata": {"name": "job-1"}, "status": {"phase": "Succeeded"}},
    ]  # fmt: skip
    assert cluster.pod_problems(pods) == ["coredns-1: Running", "kube-proxy-x: ErrImagePull"]


# -- conformance results ---------------------------------------------------------------------

JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="Kubernetes e2e suite" tests="4" failures="1" errors="0" time="42.0">
  <testcase name="[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]"
            classname="Kubernetes e2e suite" time="12.1"></testcase>
  <testcase name="[sig-storage] ConfigMap should be consumable from pods in volume [NodeConformance] [Conformance]"
            classname="Kubernetes e2e suite" time="8.0">
    <failure type="Failure">/workspace/test/e2e/common/configmap_volume.go:45
Expected error to be nil
    </failure>
  </testcase>
  <testcase name="[sig-apps] Deployment should do a rolling update" classname="Kubernetes e2e suite" time="0">
    <skipped></skipped>
  </testcase>
  <testcase name="[sig-network] DNS should provide DNS for services" classname="Kubernetes e2e suite" time="0">
    <skipped></skipped>
  </testcase>
</testsuite>
"""


def test_junit_results_are_counted_and_failures_listed(tmp_path: Path) -> None:
    (tmp_path / "junit_01.xml").write_text(JUNIT)
    (tmp_path / "junit_02.xml").write_text(
        JUNIT.replace("<failure", "<skipped/><ignored").replace("</failure>", "</ignored>")
    )
    summary = e2erun.parse_junit(sorted(tmp_path.glob("junit_*.xml")))
    assert (summary.passed, summary.failed, summary.skipped) == (2, 1, 5)
    (failure,) = summary.failures
    assert failure.name.startswith("[sig-storage] ConfigMap should be consumable")
    assert failure.message == "Expected error to be nil"
    assert summary.render().splitlines()[0] == "passed 2, failed 1, skipped 5 (ran 3)"


def test_failure_gist_and_images_that_could_not_be_pulled() -> None:
    text = (
        "k8s.io/kubernetes/test/e2e/framework/framework.go:698\n"
        "Nov 28 00:04:29.709: Unexpected error:\n    <*errors.errorString | 0xc00010b070>: {\n"
        '        s: "timed out waiting for the condition",\n    }\n    timed out waiting for the condition\noccurred\n'
        "k8s.io/kubernetes/test/e2e/common/pods.go:280\n"
    )
    assert e2erun.failure_message(text) == (
        'Unexpected error: <*errors.errorString | 0xc00010b070>: { s: "timed out waiting for the condition", } '
        "timed out waiting for the condition occurred"
    )
    log = (
        'INFO: event for pod-1: {kubelet vm} Failed: Failed to pull image "127.0.0.1:5000/nginx:1.14-alpine": rpc\n'
        'INFO: event for pod-2: {kubelet vm} Failed: Failed to pull image "127.0.0.1:5000/nginx:1.14-alpine": rpc\n'
        'INFO: event for pod-3: {kubelet vm} Pulling: Pulling image "127.0.0.1:5000/busybox:1.29"\n'
    )
    assert e2erun.missing_images(log) == ["127.0.0.1:5000/nginx:1.14-alpine"]


def test_broken_junit_and_bad_focus_are_reported(tmp_path: Path) -> None:
    (tmp_path / "junit_01.xml").write_text("<testsuite")
    with pytest.raises(ClusterError, match="junit_01.xml: not a junit XML file"):
        e2erun.parse_junit([tmp_path / "junit_01.xml"])
    with pytest.raises(ConfigError, match="--focus"):
        e2erun.check_regex("focus", "Pods [Conformance")


# -- the Docker relay -----------------------------------------------------------------------


def test_withheld_capabilities_from_the_bounding_set() -> None:
    status = "Name:\tpython3\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n"
    assert dockerrelay.withheld_capabilities(status, 40) == ["SYS_RESOURCE"]
    assert dockerrelay.withheld_capabilities("CapBnd:\t000001ffffffffff\n", 40) == []
    assert dockerrelay.withheld_capabilities("CapBnd:\t000000ffffffffff\n", 40) == ["CHECKPOINT_RESTORE"]


def test_relay_rewrites_only_what_cannot_start_here() -> None:
    import json

    sandbox = {"Image": "p", "HostConfig": {"OomScoreAdj": -998, "NetworkMode": "host", "CpuShares": 2}}
    body, changes = dockerrelay.rewrite_create(json.dumps(sandbox).encode(), 0, ["SYS_RESOURCE"])
    assert changes == ["OomScoreAdj -998 -> 0"]
    assert json.loads(body)["HostConfig"] == {"OomScoreAdj": 0, "NetworkMode": "host", "CpuShares": 2}
    proxy = {"HostConfig": {"Privileged": True, "SecurityOpt": ["seccomp=unconfined", "label=disable"]}}
    body, changes = dockerrelay.rewrite_create(json.dumps(proxy).encode(), 0, ["SYS_RESOURCE"])
    host = json.loads(body)["HostConfig"]
    assert changes == ["Privileged -> every capability but SYS_RESOURCE"]
    assert host["Privileged"] is False and host["CapAdd"] == ["ALL"] and host["CapDrop"] == ["SYS_RESOURCE"]
    assert host["SecurityOpt"] == ["label=disable", "seccomp=unconfined", "apparmor=unconfined"]
    assert host["MaskedPaths"] == [] and host["ReadonlyPaths"] == [] and host["DeviceCgroupRules"] == ["a *:* rwm"]
    plain = json.dumps({"HostConfig": {"OomScoreAdj": 1000, "Privileged": False}}).encode()
    assert dockerrelay.rewrite_create(plain, 0, ["SYS_RESOURCE"]) == (plain, [])
    assert dockerrelay.rewrite_create(b"not json", 0, []) == (b"not json", [])


def _record(**over: object) -> e2erun.RunRecord:
    fields: dict[str, object] = dict(
        kubernetes="v1.16.2", node=AMD64, workloads=parse_arch("mips64el"), focus=r"\[Conformance\]", skip="",
        parallel=1, started="2026-11-28T02:00:00Z", seconds=5400.0,
        images={"127.0.0.1:5000/linux-mips64le/agnhost:2.6": "sha256:" + "a" * 64},
    )  # fmt: skip
    fields.update(over)
    return e2erun.RunRecord(**fields)  # type: ignore[arg-type]


def test_results_page_has_the_counts_failures_and_digests() -> None:
    summary = e2erun.Summary(passed=200, failed=1, skipped=4000)
    summary.failures.append(e2erun.Failure("[sig-network] DNS should provide DNS for services", "timed out <a>"))
    md = e2erun.report_markdown(summary, _record())
    assert "# Conformance run: Kubernetes v1.16.2, node amd64, workloads mips64el (QEMU)" in md
    assert "| mips64el | 200 | 1 | 4000 | 201 | 90.0 min |" in md
    assert "- **[sig-network] DNS should provide DNS for services**: timed out <a>" in md
    assert "| `127.0.0.1:5000/linux-mips64le/agnhost:2.6` | `sha256:" + "a" * 64 + "` |" in md
    page = e2erun.report_html(md)
    assert "<td>200</td>" in page and "timed out &lt;a&gt;" in page and "<h2>Failures</h2>" in page
    assert "http" not in page.replace("127.0.0.1:5000", "")  # self-contained: nothing fetched


def test_submission_layout_and_its_caveats(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "e2e.log").write_text("Ran 1 of 4000 Specs\n")
    junit = results / "junit_01.xml"
    junit.write_text('<testsuite><testcase name="a"/></testsuite>')
    summary = e2erun.parse_junit([junit])
    files = e2erun.write_submission(tmp_path / "sub", results, summary, _record(focus="Pods"))
    assert sorted(f.name for f in files) == ["PRODUCT.yaml", "README.md", "e2e.log", "junit_01.xml"]
    assert yaml.safe_load((tmp_path / "sub" / "PRODUCT.yaml").read_text())["version"] == "v1.16.2"
    readme = (tmp_path / "sub" / "README.md").read_text()
    assert "invoke cluster-up --arch mips64el" in readme and "not the whole suite" in readme
    two = e2erun.Summary(junit_files=[junit, results / "junit_02.xml"])
    with pytest.raises(ClusterError, match="one junit file"):
        e2erun.write_submission(tmp_path / "sub2", results, two, _record())
