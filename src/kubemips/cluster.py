"""A single-node Kubernetes cluster on this machine, made of the project's artifacts.

``up`` brings one up with kubeadm: the control plane as static pods from the registry's
hyperkube image, etcd from its etcd image, kube-proxy as kubeadm's DaemonSet, CoreDNS
from the project's manifest when its image exists, and the kubelet from the node bundle,
run and supervised by the project (no init system: a detached process whose PID and log
live in the state directory).  Pods are wired by Debian's CNI plugins (bridge,
host-local, portmap, loopback) with configuration the project owns.

Containment: every address is on an interface the project creates, in ranges routed
nowhere else (see :mod:`kubemips.netplan`); a ``KUBEMIPS-CONTAIN`` chain drops anything a
pod sends to an address outside the cluster's ranges; CoreDNS forwards nowhere; the
kubelet hands pods a resolv.conf naming only the cluster DNS; the API server, etcd and
the kubelet listen on the node address or loopback only.

``down`` removes all of it, by record (the state file written before anything is made)
and by name, and checks that nothing is left.  The pure parts (configuration rendering,
kubelet command line, iptables and mount clean-up plans) are unit tested; the rest talks
to the machine through :mod:`kubemips.cmd` and the Docker engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import cmd, dockerrelay, e2erun, interrupt, log, netplan
from .arch import Arch, host_arch
from .engine import Engine
from .errors import ClusterError, CommandError, Interrupted, KubemipsError, PrerequisiteError
from .host import pid_alive
from .netplan import CNI_BRIDGE, NODE_INTERFACE, AddressPlan, conflicts

# -- where things live ---------------------------------------------------------------------

KUBERNETES_DIR = Path("/etc/kubernetes")
KUBELET_DIR = Path("/var/lib/kubelet")
ADMIN_CONF = KUBERNETES_DIR / "admin.conf"
KUBELET_CONF = KUBERNETES_DIR / "kubelet.conf"
BOOTSTRAP_KUBELET_CONF = KUBERNETES_DIR / "bootstrap-kubelet.conf"
KUBELET_CONFIG = KUBELET_DIR / "config.yaml"
KUBEADM_FLAGS = KUBELET_DIR / "kubeadm-flags.env"
CRI_SOCKET = "/var/run/dockershim.sock"

HOST_PATHS: tuple[Path, ...] = (
    KUBERNETES_DIR,
    KUBELET_DIR,
    Path("/var/lib/dockershim"),
    Path("/var/run/dockershim.sock"),
    Path("/var/log/pods"),
    Path("/var/log/containers"),
    Path("/var/lib/cni"),
    Path("/run/xtables.lock"),
)
"""Paths outside the state directory that kubeadm, the kubelet or libcni create.  Removed
by cluster-down unless they existed before the first cluster-up."""

SYSCTLS: tuple[str, ...] = (
    # The kubelet sets these (protectKernelDefaults=false).
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    # kube-proxy (iptables mode) sets route_localnet; the CNI bridge plugin ip_forward.
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
)
"""Kernel settings the cluster's components may change; recorded before and restored after."""

ADDON_NOTES: Mapping[str, str] = {
    "coredns": "answers for the cluster's names, forwards nowhere outside the cluster",
    "metrics-server": "resource metrics from the kubelet's summary API: `kubectl top`",
}

METRICS_API = "v1beta1.metrics.k8s.io"

CHAIN_PREFIXES = ("KUBE-", "CNI-", "KUBEMIPS-")
CONTAIN_CHAIN = "KUBEMIPS-CONTAIN"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "kubepods"
NODE_BINARIES = ("kubeadm", "kubelet", "kubectl")
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
CNI_PLUGIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
K8S_CONTAINER_LABEL = "io.kubernetes.docker.type"
CONFORMANCE_CONTAINER = e2erun.CONTAINER_NAME

PREFLIGHT_IGNORED: Mapping[str, str] = {
    "Service-Docker": "dockerd runs without an init system (systemctl is installed but nothing answers it)",
}
"""kubeadm preflight checks that cannot pass here, by name, and why (kept to the minimum
seen failing; every other check still stops kubeadm)."""
IMAGE_PULL_WITHOUT_COREDNS = (
    "ImagePull",
    "kubeadm pulls every image it knows of, CoreDNS's included, even with its addon skipped",
)


@dataclass(frozen=True)
class Layout:
    """The state directory: everything of the cluster that is not a fixed host path."""

    state: Path

    @property
    def bin(self) -> Path:
        return self.state / "bin"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def cni_conf(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_bin(self) -> Path:
        return self.state / "cni" / "bin"

    @property
    def cni_ipam(self) -> Path:
        return self.state / "cni" / "ipam"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def kubeadm_config(self) -> Path:
        return self.state / "kubeadm.yaml"

    def addon_manifest(self, addon: str) -> Path:
        return self.state / f"{addon}.yaml"

    @property
    def resolv_conf(self) -> Path:
        return self.state / "resolv.conf"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.conf"

    @property
    def state_file(self) -> Path:
        return self.state / "state.json"

    @property
    def kubelet_pid(self) -> Path:
        return self.state / "kubelet.pid"

    @property
    def kubelet_log(self) -> Path:
        return self.logs / "kubelet.log"

    @property
    def kubeadm_log(self) -> Path:
        return self.logs / "kubeadm.log"

    @property
    def containers_logs(self) -> Path:
        return self.logs / "containers"

    @property
    def docker_socket(self) -> Path:
        return self.state / "docker.sock"

    @property
    def relay_pid(self) -> Path:
        return self.state / "docker-relay.pid"

    @property
    def relay_log(self) -> Path:
        return self.logs / "docker-relay.log"


def layout_for(cache_dir: Path) -> Layout:
    return Layout(cache_dir / "cluster")


@dataclass(frozen=True, kw_only=True)
class Images:
    """The images the cluster runs, as REGISTRY/repo:tag."""

    hyperkube: str
    etcd: str
    pause: str
    coredns: str
    metrics_server: str
    kube_proxy: str = ""
    """This machine's hyperkube: kube-proxy's image on an emulated node."""


@dataclass(frozen=True)
class Addon:
    """A cluster add-on cluster-up applies once the control plane is up."""

    name: str
    """Also the prefix of its pods' names in kube-system."""
    manifest: str
    """As `invoke manifests` renders it (cluster-up turns its images into per-arch tags)."""


@dataclass(kw_only=True)
class State:
    """What cluster-up recorded: enough for cluster-down to undo it on its own."""

    arch: str
    """The node's arch: kubelet, control plane, etcd, kube-proxy (this machine's)."""
    workloads: str = ""
    """The pods' arch (sandbox, add-ons, test pods); empty in states of older versions: arch."""
    node_name: str
    kubernetes: str
    registry: str
    plan: dict[str, str]
    stage: str = "starting"
    """starting -> initialized (kubeadm init done) -> ready (node Ready, system pods running)."""
    coredns: bool = False
    addons: list[str] = field(default_factory=list)
    existing_paths: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    cgroups: list[str] = field(default_factory=list)
    """Controllers that had a kubepods cgroup before (left alone)."""
    oom_scores: dict[str, str] = field(default_factory=dict)
    """PID -> oom_score_adj of dockerd and containerd (dockershim lowers them to -999)."""
    relay: bool = False
    """Whether the kubelet reaches Docker through the relay (no CAP_SYS_RESOURCE here)."""
    tables: list[str] = field(default_factory=list)
    """Netfilter tables that existed before, as 'ip nat', 'ip6 filter' (others are removed when empty)."""
    started: float = 0.0

    def save(self, lay: Layout) -> None:
        lay.state.mkdir(parents=True, exist_ok=True)
        tmp = lay.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")
        tmp.replace(lay.state_file)

    @classmethod
    def load(cls, lay: Layout) -> State | None:
        try:
            data = json.loads(lay.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ClusterError(f"{lay.state_file}: unreadable cluster state ({exc}); remove it by hand") from None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# -- rendering (pure) ------------------------------------------------------------------------


def kubeadm_config(
    template: str,
    *,
    plan: AddressPlan,
    node_name: str,
    lay: Layout,
    arch: Arch,
    workloads: Arch | None = None,
    docker_endpoint: str = "",
) -> str:
    """The kubeadm configuration for this machine: the project's template (images and
    ranges, from `invoke manifests`) plus what is local to this node.

    Images are named by their per-arch tags (``hyperkube:v1.16.2-linux-amd64``): the
    Docker engine keeps one local tag per name, and a smoke check of another arch on the
    same engine pulling ``hyperkube:v1.16.2`` would otherwise swap the image under the
    cluster.  kubeadm derives hyperkube's tag from ``kubernetesVersion``, which takes the
    suffix as a semver pre-release.  The node's own parts (control plane, etcd) are of
    ``arch``; the pod sandbox and CoreDNS are workloads, of ``workloads`` (default: arch)."""
    docs = [d for d in yaml.safe_load_all(template) if d]
    by_kind = {d.get("kind"): d for d in docs}
    init = by_kind.get("InitConfiguration")
    clus = by_kind.get("ClusterConfiguration")
    if init is None or clus is None:
        raise ClusterError("manifests/kubeadm.yaml.in must hold an InitConfiguration and a ClusterConfiguration")
    node = str(plan.node_address)
    init["localAPIEndpoint"] = {"advertiseAddress": node, "bindPort": 6443}
    reg = init.setdefault("nodeRegistration", {})
    reg["name"] = node_name
    reg["criSocket"] = CRI_SOCKET
    reg["taints"] = []  # one node: workloads run on the control plane
    extra = reg.setdefault("kubeletExtraArgs", {})
    extra.update(
        {
            "node-ip": node,
            "cni-conf-dir": str(lay.cni_conf),
            "cni-bin-dir": str(lay.cni_bin),
        }
    )
    if docker_endpoint:
        extra["docker-endpoint"] = docker_endpoint
    pods = workloads or arch
    if "pod-infra-container-image" in extra:
        extra["pod-infra-container-image"] = pods.tag_for(extra["pod-infra-container-image"])
    net = clus.setdefault("networking", {})
    if net.get("podSubnet") != str(plan.pod_subnet) or net.get("serviceSubnet") != str(plan.service_subnet):
        raise ClusterError(
            f"manifests/kubeadm.yaml.in renders networking {net} but the cluster's ranges are "
            f"pods {plan.pod_subnet}, services {plan.service_subnet}"
        )
    clus["kubernetesVersion"] = arch.tag_for(str(clus["kubernetesVersion"]))
    etcd = clus.setdefault("etcd", {}).setdefault("local", {})
    etcd["dataDir"] = str(lay.etcd_data)
    if "imageTag" in etcd:
        etcd["imageTag"] = arch.tag_for(str(etcd["imageTag"]))
    dns = clus.setdefault("dns", {})
    if "imageTag" in dns:
        dns["imageTag"] = pods.tag_for(str(dns["imageTag"]))
    api = clus.setdefault("apiServer", {})
    api.setdefault("extraArgs", {})["bind-address"] = node  # not on the machine's other interfaces
    api["certSANs"] = sorted({node, str(plan.api_service_address), "127.0.0.1", "localhost"})
    if arch != host_arch():
        # An emulated API server and etcd start in minutes, not seconds: kubeadm's default
        # four-minute wait was measured too short with the machine busy.
        api["timeoutForControlPlane"] = "20m0s"
    clus.setdefault("controllerManager", {}).setdefault("extraArgs", {})["node-cidr-mask-size"] = str(
        plan.node_pod_cidr.prefixlen
    )
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "address": node,
        "healthzBindAddress": "127.0.0.1",
        "readOnlyPort": 0,
        # Pods with dnsPolicy Default get this, not the host's resolvers.
        "resolvConf": str(lay.resolv_conf),
        "clusterDNS": [str(plan.dns_address)],
        # The Docker engine is shared with builds: never garbage-collect its images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # The disk is shared with builds and caches: evict for absolute space left, not
        # for a share of a large disk (the defaults, 10-15%, taint a machine with tens of
        # GiB free as under disk pressure).
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2Gi",
            "imagefs.available": "2Gi",
            "nodefs.inodesFree": "5%",
        },
        "failSwapOn": False,
    }
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "bindAddress": node,
        "clusterCIDR": str(plan.pod_subnet),
        "healthzBindAddress": f"{node}:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # NodePorts only on the node address, not on the machine's other interfaces.
        "nodePortAddresses": [plan.node_cidr],
        # 0: leave the host's conntrack settings as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    header = (
        "# kubeadm configuration of the local cluster, written by `invoke cluster-up`:\n"
        "# manifests/kubeadm.yaml.in plus this node's addresses, kubelet and kube-proxy settings.\n"
    )
    return header + yaml.safe_dump_all([init, clus, kubelet, proxy], sort_keys=False)


def per_arch_images(manifest: str, arch: Arch) -> str:
    """A manifest's ``image:`` references turned into per-arch tags (see kubeadm_config)."""
    return re.sub(r"^(\s*(?:- )?image: \S+:[\w.-]+)$", rf"\1-{arch.tag_suffix}", manifest, flags=re.M)


def cni_config(plan: AddressPlan, lay: Layout) -> dict[str, Any]:
    """The CNI network: a bridge with this node's pod range, no masquerading (pods never
    reach anything outside the cluster), hairpin for Services that loop back to a pod."""
    return {
        "cniVersion": "0.3.1",
        "name": "kubemips",
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(plan.node_pod_cidr), "gateway": str(plan.pod_gateway)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(lay.cni_ipam),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def resolv_conf(plan: AddressPlan) -> str:
    return (
        "# Given by the kubelet to pods with dnsPolicy Default: the cluster DNS only, so no\n"
        "# pod asks a resolver outside this machine.\n"
        f"nameserver {plan.dns_address}\n"
    )


def contain_rules(plan: AddressPlan) -> list[list[str]]:
    """iptables arguments (mangle table) of the chain that keeps pod traffic on this machine:
    packets forwarded from the pod range to anything but the cluster's ranges are dropped
    (mangle FORWARD runs before filter, so no later ACCEPT can let them through)."""
    rules = [["-A", CONTAIN_CHAIN, "-d", str(net), "-j", "RETURN"] for net in plan.ranges().values()]
    rules.append(["-A", CONTAIN_CHAIN, "-j", "DROP"])
    return rules


def contain_jump(plan: AddressPlan) -> list[str]:
    return ["FORWARD", "-s", str(plan.pod_subnet), "-j", CONTAIN_CHAIN]


def kubelet_argv(kubelet: Path, flags_env: str) -> list[str]:
    """The kubelet's command line, as kubeadm's systemd drop-in would build it: the fixed
    kubeconfig/config flags, then KUBELET_KUBEADM_ARGS from kubeadm-flags.env."""
    args: list[str] = []
    for line in flags_env.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == "KUBELET_KUBEADM_ARGS":
            args = shlex.split(shlex.split(value)[0] if value.strip() else "")
    return [
        str(kubelet),
        f"--bootstrap-kubeconfig={BOOTSTRAP_KUBELET_CONF}",
        f"--kubeconfig={KUBELET_CONF}",
        f"--config={KUBELET_CONFIG}",
        *args,
    ]


def preflight_ignores(*, coredns: bool) -> dict[str, str]:
    ignored = dict(PREFLIGHT_IGNORED)
    if not coredns:
        ignored[IMAGE_PULL_WITHOUT_COREDNS[0]] = IMAGE_PULL_WITHOUT_COREDNS[1]
    return ignored


def hosts_names(text: str) -> set[str]:
    """Names /etc/hosts resolves."""
    names: set[str] = set()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        names.update(n.lower() for n in fields[1:])
    return names


def iptables_cleanup(save_text: str, prefixes: Sequence[str] = CHAIN_PREFIXES) -> list[list[str]]:
    """``iptables`` argument lists that remove every chain named with ``prefixes`` and every
    rule that jumps to one, from ``iptables-save`` output: jumps out of other chains first,
    then flush, then delete."""
    table = ""
    ours: list[tuple[str, str]] = []
    jumps: list[list[str]] = []
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if chain.startswith(tuple(prefixes)):
                ours.append((table, chain))
        elif line.startswith("-A "):
            parts = shlex.split(line)
            chain = parts[1]
            target = _target(parts)
            if not chain.startswith(tuple(prefixes)) and target.startswith(tuple(prefixes)):
                jumps.append(["-t", table, "-D", chain, *parts[2:]])
    flush = [["-t", t, "-F", c] for t, c in ours]
    delete = [["-t", t, "-X", c] for t, c in ours]
    return jumps + flush + delete


def _target(parts: list[str]) -> str:
    for flag in ("-j", "--jump", "-g", "--goto"):
        if flag in parts:
            i = parts.index(flag)
            if i + 1 < len(parts):
                return parts[i + 1]
    return ""


def mounts_under(mountinfo: str, root: Path) -> list[str]:
    """Mount points at or below ``root`` from /proc/self/mountinfo, deepest first."""
    base = str(root).rstrip("/")
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        if point == base or point.startswith(base + "/"):
            points.append(point)
    return sorted(dict.fromkeys(points), key=lambda p: (-p.count("/"), p))


def leftover_lines(save_text: str, prefixes: Sequence[str] = CHAIN_PREFIXES) -> list[str]:
    return [line for line in save_text.splitlines() if any(p in line for p in prefixes)]


# -- junit / results live in conformance_run; cluster status (pure) ------------------------------


def node_ready(node: Mapping[str, Any]) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def pod_problems(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Pods that are not Running with every container ready, as 'name: why'."""
    problems = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        phase = status.get("phase", "?")
        if phase == "Succeeded":
            continue
        waiting = [
            ((c.get("state") or {}).get("waiting") or {}).get("reason", "")
            for c in status.get("containerStatuses") or []
            if not c.get("ready")
        ]
        if phase != "Running" or waiting or not status.get("containerStatuses"):
            why = ", ".join(w for w in waiting if w) or phase
            problems.append(f"{name}: {why}")
    return problems


# -- the machine ----------------------------------------------------------------------------


def _ip_json(*args: str) -> list[dict[str, Any]]:
    out = cmd.output(["ip", "-j", *args], what="ip")
    data = json.loads(out) if out else []
    return data if isinstance(data, list) else []


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _host_routes_and_addresses(plan: AddressPlan) -> tuple[list[str], list[str]]:
    """Routes and addresses of the machine, without those cluster-up makes."""
    ours = {NODE_INTERFACE, CNI_BRIDGE}
    own_blackholes = {str(plan.pod_subnet), str(plan.service_subnet)}
    routes = [
        r.get("dst", "")
        for r in _ip_json("-4", "route", "show", "table", "main")
        if r.get("dev") not in ours and not (r.get("type") == "blackhole" and r.get("dst") in own_blackholes)
    ]
    routes = [r for r in routes if r]
    addresses = []
    for link in _ip_json("-4", "addr", "show"):
        if link.get("ifname") in ours or link.get("master") == CNI_BRIDGE:
            continue
        for a in link.get("addr_info") or []:
            addresses.append(f"{a.get('local')}/{a.get('prefixlen')}")
    return routes, addresses


def _own_route_rows(plan: AddressPlan) -> list[tuple[str, ...]]:
    """``ip route`` arguments of the routes cluster-up adds (besides the devices' own)."""
    return [
        ("blackhole", str(plan.pod_subnet)),
        ("blackhole", str(plan.service_subnet), "metric", "4096"),
        (str(plan.service_subnet), "dev", NODE_INTERFACE, "metric", "0"),
    ]


def network_up(plan: AddressPlan) -> None:
    """kubemips0 with the node address, the routes, and the containment chain (idempotent)."""
    routes, addresses = _host_routes_and_addresses(plan)
    problems = conflicts(plan, routes, addresses)
    if problems:
        raise ClusterError(
            "the cluster's address ranges clash with this machine's network: "
            + "; ".join(problems)
            + " (choose other ranges in kubemips.toml [cluster])"
        )
    if not _link_exists(NODE_INTERFACE):
        # A bridge with no ports: this kernel has no dummy driver.
        cmd.run(["ip", "link", "add", NODE_INTERFACE, "type", "bridge"], what="network")
    cmd.run(["ip", "link", "set", NODE_INTERFACE, "up"], what="network")
    have = {f"{a.get('local')}/{a.get('prefixlen')}" for link in _ip_json("addr", "show", "dev", NODE_INTERFACE)
            for a in link.get("addr_info") or [] if a.get("family") == "inet"}  # fmt: skip
    if plan.node_cidr not in have:
        cmd.run(["ip", "addr", "add", plan.node_cidr, "dev", NODE_INTERFACE], what="network")
    for row in _own_route_rows(plan):
        cmd.run(["ip", "route", "replace", *row], what="network")
    save = cmd.output(["iptables-save", "-t", "mangle"], what="iptables")
    if f":{CONTAIN_CHAIN} " not in save:
        cmd.run(["iptables", "-t", "mangle", "-N", CONTAIN_CHAIN], what="iptables")
        for rule in contain_rules(plan):
            cmd.run(["iptables", "-t", "mangle", *rule], what="iptables")
    jump = contain_jump(plan)
    if cmd.run(["iptables", "-t", "mangle", "-C", *jump], check=False, echo=False).returncode != 0:
        cmd.run(["iptables", "-t", "mangle", "-I", *jump], what="iptables")


def network_down(plan: AddressPlan | None) -> list[str]:
    """Remove the bridges, their veths and routes; returns what was removed."""
    removed = []
    if _link_exists(CNI_BRIDGE):
        for link in _ip_json("link", "show", "master", CNI_BRIDGE):
            name = link.get("ifname", "")
            if name and cmd.run(["ip", "link", "del", name], check=False).returncode == 0:
                removed.append(f"link {name}")
    for name in (CNI_BRIDGE, NODE_INTERFACE):
        if _link_exists(name):
            cmd.run(["ip", "link", "del", name], what="network")
            removed.append(f"link {name}")
    if plan is not None:
        for row in _own_route_rows(plan):
            if row[0] == "blackhole" and cmd.run(["ip", "route", "del", *row], check=False, echo=False).returncode == 0:
                removed.append(f"route {' '.join(row)}")
    return removed


def _iptables_clean(binary: str) -> list[str]:
    save_bin = f"{binary}-save"
    if shutil.which(save_bin) is None or shutil.which(binary) is None:
        return []
    removed = []
    for args in iptables_cleanup(cmd.output([save_bin], what="iptables")):
        if cmd.run([binary, "-w", "5", *args], check=False, echo=False).returncode == 0 and args[2] == "-X":
            removed.append(f"{binary} {args[1]} chain {args[3]}")
    return removed


_FAMILIES = (("ip", "iptables-save"), ("ip6", "ip6tables-save"))


def saved_tables(save_text: str) -> dict[str, bool]:
    """Table name -> whether it holds anything beyond empty built-in chains (iptables-save)."""
    tables: dict[str, bool] = {}
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            tables[table] = False
        elif table and (line.startswith("-A ") or (line.startswith(":") and line.split()[1] == "-")):
            tables[table] = True  # a rule, or a user-defined chain (policy "-")
    return tables


def netfilter_tables() -> list[str]:
    found = []
    for family, save in _FAMILIES:
        if shutil.which(save):
            found += [f"{family} {t}" for t in saved_tables(cmd.output([save], what="iptables"))]
    return found


def remove_empty_tables(existed: Iterable[str]) -> list[str]:
    """Tables the cluster's iptables calls created and that are empty again (needs nft)."""
    keep = set(existed)
    removed, stuck = [], []
    for family, save in _FAMILIES:
        if not shutil.which(save):
            continue
        for table, used in saved_tables(cmd.output([save], what="iptables")).items():
            if f"{family} {table}" in keep or used:
                continue
            if shutil.which("nft") is None:
                stuck.append(f"{family} {table}")
            elif cmd.run(["nft", "delete", "table", family, table], check=False, echo=False).returncode == 0:
                removed.append(f"empty netfilter table {family} {table}")
    if stuck:
        log.warn(
            f"empty netfilter tables {', '.join(stuck)} remain (no rules; `nft` removes them: apt-get install nftables)"
        )
    return removed


def read_sysctls() -> dict[str, str]:
    values = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            values[key] = (Path("/proc/sys") / key).read_text().strip()
    return values


def restore_sysctls(recorded: Mapping[str, str]) -> list[str]:
    restored = []
    for key, value in recorded.items():
        path = Path("/proc/sys") / key
        try:
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
                restored.append(f"sysctl {key.replace('/', '.')}={value} restored")
        except OSError as exc:
            log.warn(f"could not restore {key.replace('/', '.')}={value}: {exc}")
    return restored


def engine_oom_scores() -> dict[str, str]:
    scores = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() in ("dockerd", "containerd"):
                scores[entry.name] = (entry / "oom_score_adj").read_text().strip()
    return scores


def restore_oom_scores(recorded: Mapping[str, str]) -> list[str]:
    restored = []
    for pid, value in recorded.items():
        path = Path("/proc", pid, "oom_score_adj")
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
                restored.append(f"oom_score_adj of pid {pid}={value} restored")
    return restored


def cgroups_with_kubepods() -> list[str]:
    if not CGROUP_ROOT.is_dir():
        return []
    return sorted(p.name for p in CGROUP_ROOT.iterdir() if (p / CGROUP_PARENT).is_dir())


def remove_cgroups(keep: Iterable[str]) -> list[str]:
    removed = []
    for controller in cgroups_with_kubepods():
        if controller in set(keep):
            continue
        top = CGROUP_ROOT / controller / CGROUP_PARENT
        for dirpath, _dirs, _files in sorted(os.walk(top, topdown=False), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        if not top.exists():
            removed.append(f"cgroup {controller}/{CGROUP_PARENT}")
    return removed


def _docker() -> Any:
    return Engine().client


def k8s_containers(client: Any) -> list[Any]:
    """Containers the kubelet's dockershim made (k8s_*), and the conformance runner."""
    made = client.containers.list(all=True, filters={"label": K8S_CONTAINER_LABEL})
    runner = client.containers.list(all=True, filters={"name": CONFORMANCE_CONTAINER})
    return [*made, *(c for c in runner if c.name == CONFORMANCE_CONTAINER)]


def save_container_logs(lay: Layout) -> Path:
    """Every cluster container's log into logs/containers/ (as `kind export logs` does)."""
    import docker.errors

    lay.containers_logs.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KubemipsError, docker.errors.DockerException):
        for c in _docker().containers.list(all=True, filters={"label": K8S_CONTAINER_LABEL}):
            if c.labels.get(K8S_CONTAINER_LABEL) != "container":
                continue
            pod = c.labels.get("io.kubernetes.pod.name", "pod")
            name = f"{pod}_{c.labels.get('io.kubernetes.container.name', c.name)}"
            with contextlib.suppress(docker.errors.DockerException):
                (lay.containers_logs / f"{name}-{c.short_id}.log").write_bytes(c.logs(timestamps=True))
    return lay.containers_logs


def component_log(lay: Layout, component: str) -> Path | None:
    """The saved log of a control-plane component's newest container."""
    found = sorted(lay.containers_logs.glob(f"*_{component}-*.log"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


# -- supervised processes: the kubelet (and the Docker relay where needed) -------------------


@dataclass(frozen=True)
class Supervised:
    """A long-running process the project starts detached and finds again by its PID file;
    ``marker`` is an argument only our instance has (its binary path, its socket)."""

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def _is_ours(self, pid: int) -> bool:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return self.marker.encode() in args

    def pid(self) -> int | None:
        """The running instance this state directory started, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and self._is_ours(pid) else None

    def start(self, argv: Sequence[str]) -> int:
        with self.log_file.open("a") as f:
            f.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n")
        proc = cmd.spawn(argv, log_path=self.log_file, detach=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        for _ in range(50):  # one that cannot start exits within seconds
            if proc.poll() is not None:
                tail = _tail(self.log_file)
                hint = next((h for needle, h in _HINTS.items() if needle in tail), "")
                raise ClusterError(
                    f"{self.name} exited with code {proc.returncode} right after starting; "
                    f"log {self.log_file}:\n{tail}" + (f"\nhint: {hint}" if hint else "")
                )
            time.sleep(0.1)
        log.info(f"{self.name} running (pid {proc.pid}, log {self.log_file})")
        return proc.pid

    def stop(self) -> list[str]:
        """Stop the recorded instance, and any other process that is ours by its marker."""
        recorded = self.pid()
        pids = {recorded} if recorded else set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_ours(int(entry.name)):
                pids.add(int(entry.name))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while pids and time.monotonic() < deadline:
            pids = {p for p in pids if pid_alive(p)}
            time.sleep(0.2)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return [f"{self.name} (pid {recorded})"] if recorded else []


_HINTS = {
    "cAdvisor is unsupported in this build": "this kubelet was built without cgo and without "
    "components/hyperkube/patches/kubelet-cadvisor-without-cgo.patch; rebuild it (`invoke build-hyperkube`) "
    "or give a fixed one with --node-binaries",
}


def kubelet(lay: Layout) -> Supervised:
    return Supervised("kubelet", lay.kubelet_pid, lay.kubelet_log, str(lay.bin / "kubelet"))


def relay(lay: Layout) -> Supervised:
    return Supervised("docker relay", lay.relay_pid, lay.relay_log, str(lay.docker_socket))


def withheld_capabilities() -> list[str]:
    """Capabilities this machine's bounding set lacks (see :mod:`kubemips.dockerrelay`)."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return dockerrelay.withheld_capabilities(Path("/proc/self/status").read_text(), last)


def needs_relay() -> bool:
    return bool(withheld_capabilities())


def start_relay(lay: Layout) -> int:
    if len(str(lay.docker_socket)) > 100:
        raise ClusterError(f"{lay.docker_socket}: too long for a unix socket; use a shorter cache path")
    withhold = ",".join(withheld_capabilities())
    argv = [sys.executable, "-m", "kubemips.dockerrelay", "--listen", str(lay.docker_socket), "--floor", "0",
            "--withhold", withhold]  # fmt: skip
    pid = relay(lay).start(argv)
    for _ in range(50):
        if lay.docker_socket.exists():
            break
        time.sleep(0.1)
    return pid


def start_kubelet(lay: Layout) -> int:
    try:
        flags = KUBEADM_FLAGS.read_text()
    except OSError:
        raise ClusterError(f"kubelet: {KUBEADM_FLAGS} is missing (kubeadm's kubelet-start phase writes it)") from None
    return kubelet(lay).start(kubelet_argv(lay.bin / "kubelet", flags))


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


# -- kubectl --------------------------------------------------------------------------------


def kubectl(lay: Layout, *args: str, timeout: float = 60) -> str:
    """kubectl against the cluster; its caches stay in the state directory (v1.16 keeps the
    discovery cache under $HOME whatever --cache-dir says)."""
    argv = [
        str(lay.bin / "kubectl"),
        f"--kubeconfig={lay.kubeconfig}",
        f"--cache-dir={lay.state / 'kube-cache'}",
        *args,
    ]
    return cmd.output(argv, what="kubectl", timeout=timeout, env={"HOME": str(lay.state)})


def kubectl_json(lay: Layout, *args: str) -> dict[str, Any]:
    data = json.loads(kubectl(lay, *args, "-o", "json"))
    return data if isinstance(data, dict) else {}


def api_answers(lay: Layout) -> bool:
    if not lay.kubeconfig.exists() or not (lay.bin / "kubectl").exists():
        return False
    try:
        return kubectl(lay, "get", "--raw", "/healthz", timeout=10) == "ok"
    except KubemipsError:
        return False


# -- up -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UpRequest:
    arch: Arch
    """The node's arch (this machine's)."""
    workloads: Arch
    """The pods' arch; another than ``arch`` runs under QEMU user-mode emulation."""
    plan: AddressPlan
    images: Images
    addons: tuple[Addon, ...]
    """The add-ons whose images the registry holds (without coredns the cluster has no DNS)."""
    kubernetes: str
    registry: str
    kubeadm_template: str
    node_binaries: Path
    timeout: int

    @property
    def coredns(self) -> bool:
        return any(a.name == "coredns" for a in self.addons)

    @property
    def emulated(self) -> bool:
        """The node itself runs under QEMU (``--node-arch``), not only its workloads."""
        return self.arch != host_arch()


def node_name() -> str:
    """The machine's host name, which kubeadm's preflight looks up: it must resolve from
    /etc/hosts, or the lookup would ask a DNS server off this machine."""
    name = socket.gethostname().lower()
    try:
        known = hosts_names(Path("/etc/hosts").read_text())
    except OSError:
        known = set()
    if name not in known:
        raise PrerequisiteError(
            f"the host name '{name}' is not in /etc/hosts: kubeadm looks the node name up, and that "
            f"lookup must not leave this machine; add a line such as '127.0.1.1 {name}' to /etc/hosts"
        )
    return name


def check_root() -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError("the local cluster needs root (it creates interfaces, routes and mounts)")


def cni_plugin_dir() -> Path:
    for d in CNI_PLUGIN_DIRS:
        if all((d / p).is_file() for p in CNI_PLUGINS):
            return d
    raise PrerequisiteError(
        f"CNI plugins {', '.join(CNI_PLUGINS)} not found in {' or '.join(map(str, CNI_PLUGIN_DIRS))}: "
        "apt-get install containernetworking-plugins (scripts/setup-host.sh installs it)"
    )


def status(lay: Layout) -> State | None:
    """The recorded state when the cluster answers, else None."""
    st = State.load(lay)
    if st is None or st.stage == "starting" or not api_answers(lay):
        return None
    return st


def up(req: UpRequest, lay: Layout) -> Path:
    """Bring the cluster up (or verify a running one); returns the kubeconfig path."""
    check_root()
    st = State.load(lay)
    if st is not None:
        if st.stage == "starting":
            raise ClusterError(
                f"an earlier cluster-up did not finish (logs in {lay.logs}); run `invoke cluster-down` first"
            )
        return _resume(req, lay, st)
    plugins = cni_plugin_dir()
    name = node_name()
    foreign = leftover_lines(cmd.output(["iptables-save"], what="iptables"))
    if foreign:
        raise ClusterError(
            f"this machine already has {len(foreign)} KUBE-/CNI-/KUBEMIPS- netfilter rules and chains (another "
            "cluster's, or a kubemips one without its state): cluster-down removes every such chain, so cluster-up "
            "does not start beside them; if they are left from a kubemips cluster, `invoke cluster-down` removes them"
        )
    began = time.monotonic()
    st = State(
        arch=req.arch.name,
        workloads=req.workloads.name,
        addons=[a.name for a in req.addons],
        node_name=name,
        kubernetes=req.kubernetes,
        registry=req.registry,
        plan=req.plan.as_dict(),
        coredns=req.coredns,
        existing_paths=[str(p) for p in HOST_PATHS if p.exists() or p.is_symlink()],
        sysctls=read_sysctls(),
        cgroups=cgroups_with_kubepods(),
        oom_scores=engine_oom_scores(),
        tables=netfilter_tables(),
        relay=needs_relay(),
        started=time.time(),
    )
    st.save(lay)  # first: cluster-down undoes by this record
    arches = str(req.arch) if req.workloads == req.arch else f"node {req.arch}, workloads {req.workloads}"
    with log.step(f"cluster-up: Kubernetes {req.kubernetes} ({arches}) from {req.registry}"):
        _prepare_files(req, lay, plugins, name, relay_needed=st.relay)
        with log.step("network: kubemips0, routes, containment"):
            network_up(req.plan)
            for what, addr, where in req.plan.describe():
                log.info(f"  {what:22} {addr:18} {where}")
        _kubeadm_init(req, lay, st)
        st.stage = "initialized"
        st.save(lay)
        if req.emulated:
            # An emulated node: qemu-user emulates no netfilter socket (iptables fails with
            # "Failed to initialize nft: Protocol not supported", iptables-legacy cannot
            # read a table), so kube-proxy runs natively; everything else stays emulated.
            kubectl(lay, "-n", "kube-system", "set", "image", "daemonset/kube-proxy",
                    f"kube-proxy={req.images.kube_proxy}")  # fmt: skip
            log.info(f"kube-proxy runs natively ({req.images.kube_proxy}): iptables cannot run under QEMU user-mode")
        for addon in req.addons:
            kubectl(lay, "apply", "-f", str(lay.addon_manifest(addon.name)))
            log.info(f"{addon.name} applied ({ADDON_NOTES.get(addon.name, req.workloads.name)})")
        if not req.coredns:
            log.warn(f"{req.images.coredns} is not in the registry: the cluster runs without DNS "
                     "(build it with `invoke build --what coredns`, then run cluster-down and cluster-up)")  # fmt: skip
        # An emulated node spends minutes in kubeadm alone: its pods get the whole window after it.
        start = time.monotonic() if req.emulated else began
        _wait_ready(req, lay, st, deadline=start + req.timeout)
        st.stage = "ready"
        st.save(lay)
    _print_ready(req, lay, st, time.monotonic() - began)
    return lay.kubeconfig


def _prepare_files(req: UpRequest, lay: Layout, plugins: Path, name: str, *, relay_needed: bool) -> None:
    lay.bin.mkdir(parents=True, exist_ok=True)
    lay.logs.mkdir(parents=True, exist_ok=True)
    for b in NODE_BINARIES:
        src = req.node_binaries / b
        if not src.is_file():
            raise ClusterError(f"{b}: not in the node binaries at {req.node_binaries}")
        shutil.copy2(src, lay.bin / b)
        (lay.bin / b).chmod(0o755)
    version = cmd.output([lay.bin / "kubelet", "--version"], what="kubelet")
    if version.split()[-1] != req.kubernetes:
        raise ClusterError(f"kubelet: {req.node_binaries / 'kubelet'} is {version!r}, not {req.kubernetes}")
    lay.cni_conf.mkdir(parents=True, exist_ok=True)
    lay.cni_bin.mkdir(parents=True, exist_ok=True)
    lay.cni_ipam.mkdir(parents=True, exist_ok=True)
    for p in CNI_PLUGINS:
        link = lay.cni_bin / p
        if not link.is_symlink():
            link.symlink_to(plugins / p)
    (lay.cni_conf / "10-kubemips.conflist").write_text(json.dumps(cni_config(req.plan, lay), indent=2) + "\n")
    lay.resolv_conf.write_text(resolv_conf(req.plan))
    endpoint = f"unix://{lay.docker_socket}" if relay_needed else ""
    lay.kubeadm_config.write_text(
        kubeadm_config(
            req.kubeadm_template,
            plan=req.plan,
            node_name=name,
            lay=lay,
            arch=req.arch,
            workloads=req.workloads,
            docker_endpoint=endpoint,
        )
    )
    for addon in req.addons:
        lay.addon_manifest(addon.name).write_text(per_arch_images(addon.manifest, req.workloads))
    log.info(f"node binaries {', '.join(NODE_BINARIES)} ({version}) in {lay.bin}; kubeadm config {lay.kubeadm_config}")


def _kubeadm_env(lay: Layout) -> dict[str, str]:
    return {"PATH": f"{lay.bin}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}


def _kubeadm(lay: Layout, *args: str, timeout: float = 300) -> None:
    argv = [str(lay.bin / "kubeadm"), *args]
    with lay.kubeadm_log.open("a") as f:
        f.write(f"\n==== {shlex.join(argv)}\n")
    try:
        proc = cmd.run(argv, env=_kubeadm_env(lay), timeout=timeout, what="kubeadm")
    except CommandError as exc:
        with lay.kubeadm_log.open("a") as f:
            f.write(exc.output)
        raise ClusterError(f"kubeadm {args[0]} {args[1] if len(args) > 1 else ''} failed (log {lay.kubeadm_log}):\n"
                           f"{_tail(lay.kubeadm_log, 25)}") from None  # fmt: skip
    with lay.kubeadm_log.open("a") as f:
        f.write(proc.stdout)


def _kubeadm_init(req: UpRequest, lay: Layout, st: State) -> None:
    ignored = preflight_ignores(coredns=req.coredns)
    for check, why in ignored.items():
        log.info(f"kubeadm preflight: ignoring {check}: {why}")
    config = f"--config={lay.kubeadm_config}"
    with log.step("kubeadm: preflight (pulls the images), kubelet configuration, certificates, kubeconfigs"):
        ignore = f"--ignore-preflight-errors={','.join(ignored)}"
        _kubeadm(lay, "init", "phase", "preflight", config, ignore, timeout=900)
        _kubeadm(lay, "init", "phase", "kubelet-start", config)
        _kubeadm(lay, "init", "phase", "certs", "all", config)
        _kubeadm(lay, "init", "phase", "kubeconfig", "all", config)
    if st.relay:
        log.info(f"this machine withholds {', '.join(withheld_capabilities())}: the kubelet reaches Docker through "
                 "the relay, which raises negative OOM scores to 0 and runs privileged containers with every "
                 "capability granted here (see kubemips/dockerrelay.py)")  # fmt: skip
        start_relay(lay)
    start_kubelet(lay)
    skip = "preflight,kubelet-start,certs,kubeconfig,addon/coredns"
    argv = [str(lay.bin / "kubeadm"), "init", config, f"--skip-phases={skip}"]
    with lay.kubeadm_log.open("a") as f:
        f.write(f"\n==== {shlex.join(argv)}\n")
    with log.step("kubeadm: control plane (static pods), etcd, kube-proxy"):
        proc = cmd.spawn(argv, log_path=lay.kubeadm_log, env=_kubeadm_env(lay))
        last = 0.0
        while proc.poll() is None:
            if interrupt.requested():
                proc.terminate()
                raise Interrupted(f"interrupted: cluster-up stopped while the control plane came up; {_UNDO}")
            if kubelet(lay).pid() is None:
                proc.kill()
                raise ClusterError(f"kubelet stopped while the control plane came up; log {lay.kubelet_log}:\n"
                                   f"{_tail(lay.kubelet_log)}")  # fmt: skip
            if time.monotonic() - last >= 15:
                last = time.monotonic()
                log.info(f"  kubeadm: {_tail(lay.kubeadm_log, 1)[:150]}; {_running_summary()}")
            time.sleep(1)
        if proc.returncode != 0:
            save_container_logs(lay)
            culprit = _control_plane_culprit(lay)
            raise ClusterError(
                f"kubeadm init failed (exit {proc.returncode}, log {lay.kubeadm_log}){culprit}:\n"
                f"{_tail(lay.kubeadm_log, 15)}"
            )
    shutil.copyfile(ADMIN_CONF, lay.kubeconfig)
    lay.kubeconfig.chmod(0o600)


_UNDO = "`invoke cluster-down` removes what was made"


def _workload_arches() -> str:
    """Which arch the images of the running pod containers are, e.g. ``mips64le: coredns,
    metrics-server, POD; amd64: etcd, ...``: what the engine really runs, not what was asked."""
    import docker.errors

    by_arch: dict[str, set[str]] = {}
    try:
        client = _docker()
        for c in client.containers.list(filters={"label": K8S_CONTAINER_LABEL}):
            name = c.labels.get("io.kubernetes.container.name", "?")
            arch = client.images.get(c.attrs["Image"]).attrs.get("Architecture", "?")
            by_arch.setdefault(arch, set()).add(name)
    except (KubemipsError, docker.errors.DockerException):
        return ""
    return "; ".join(f"{arch}: {', '.join(sorted(names))}" for arch, names in sorted(by_arch.items()))


def _running_summary() -> str:
    import docker.errors

    try:
        cs = _docker().containers.list(filters={"label": f"{K8S_CONTAINER_LABEL}=container"})
    except (KubemipsError, docker.errors.DockerException):
        return "containers: ?"
    names = sorted({c.labels.get("io.kubernetes.container.name", "?") for c in cs})
    return f"running: {', '.join(names) or 'none yet'}"


def _control_plane_culprit(lay: Layout) -> str:
    """Name the first control-plane component that is not running, with its log."""
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        path = component_log(lay, component)
        if path is None:
            return f"; {component} never started (kubelet log {lay.kubelet_log})"
    api = component_log(lay, "kube-apiserver")
    return f"; the API server did not become healthy (its log: {api})" if api else ""


def _wait_ready(req: UpRequest, lay: Layout, st: State, *, deadline: float) -> None:
    expected = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]
    expected += st.addons or (["coredns"] if st.coredns else [])
    with log.step(f"waiting for node {st.node_name} to be Ready and {', '.join(expected)} to run"):
        last = 0.0
        problems: list[str] = ["not asked yet"]
        while True:
            interrupt.check(f"cluster-up stopped while waiting for the node; the cluster keeps running ({_UNDO})")
            if kubelet(lay).pid() is None:
                raise ClusterError(f"kubelet stopped; log {lay.kubelet_log}:\n{_tail(lay.kubelet_log)}")
            try:
                problems = _readiness_problems(lay, st, expected)
            except KubemipsError as exc:
                problems = [f"API server: {str(exc).splitlines()[0]}"]
            if not problems:
                return
            if time.monotonic() > deadline:
                save_container_logs(lay)
                raise ClusterError(
                    "the cluster did not become ready in time:\n  "
                    + "\n  ".join(problems)
                    + f"\nlogs: kubelet {lay.kubelet_log}, containers {lay.containers_logs}/"
                )
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                log.info(f"  not yet: {'; '.join(problems)[:300]}")
            time.sleep(2)


def _readiness_problems(lay: Layout, st: State, expected: Sequence[str]) -> list[str]:
    problems = []
    nodes = kubectl_json(lay, "get", "nodes").get("items") or []
    node = next((n for n in nodes if n["metadata"]["name"] == st.node_name), None)
    if node is None:
        problems.append(f"node {st.node_name} not registered")
    elif not node_ready(node):
        conds = {c["type"]: c.get("message", "") for c in node["status"].get("conditions") or []}
        problems.append(f"node not Ready ({conds.get('Ready', '')[:120]})")
    pods = kubectl_json(lay, "get", "pods", "-n", "kube-system").get("items") or []
    for component in expected:
        mine = [p for p in pods if p["metadata"]["name"].startswith(component + "-")]
        if not mine:
            problems.append(f"{component}: no pod yet")
    problems += pod_problems(pods)
    if "metrics-server" in st.addons:
        # An aggregated API that does not answer breaks discovery, and with it namespace
        # deletion in every e2e test: the add-on counts only once the API server uses it.
        service = kubectl_json(lay, "get", "apiservice", METRICS_API)
        conds = {c["type"]: c for c in service.get("status", {}).get("conditions") or []}
        available = conds.get("Available", {})
        if available.get("status") != "True":
            problems.append(f"{METRICS_API}: not available ({available.get('message', 'no status yet')[:120]})")
    return problems


def _resume(req: UpRequest, lay: Layout, st: State) -> Path:
    """cluster-up on an existing cluster: make sure its pieces run, then verify."""
    began = time.monotonic()
    running = (st.arch, st.workloads or st.arch)
    if running != (req.arch.name, req.workloads.name):
        raise ClusterError(
            f"the running cluster is node {running[0]}, workloads {running[1]}, not node {req.arch}, workloads "
            f"{req.workloads}: `invoke cluster-down` first, then cluster-up with the arches you want"
        )
    with log.step(f"cluster-up: verifying the running cluster (node {st.node_name})"):
        network_up(plan_of(st))
        if st.relay and relay(lay).pid() is None:
            log.warn(f"the docker relay is not running: starting it again (log {lay.relay_log})")
            start_relay(lay)
        pid = kubelet(lay).pid()
        if pid is None:
            log.warn(f"the kubelet is not running: starting it again (log {lay.kubelet_log})")
            start_kubelet(lay)
        else:
            log.info(f"kubelet running (pid {pid})")
        _wait_ready(req, lay, st, deadline=began + req.timeout)
        if st.stage != "ready":
            st.stage = "ready"
            st.save(lay)
    _print_ready(req, lay, st, time.monotonic() - began)
    return lay.kubeconfig


def plan_of(st: State) -> AddressPlan:
    return netplan.parse(
        st.plan["node-address"], st.plan["service-subnet"], st.plan["pod-subnet"], where=str(st.node_name)
    )


def _print_ready(req: UpRequest, lay: Layout, st: State, took: float) -> None:
    pods = kubectl(lay, "get", "pods", "-A", "-o", "wide")
    node = kubectl(lay, "get", "nodes", "-o", "wide")
    dns = "CoreDNS" if st.coredns else "no DNS (coredns image missing)"
    workloads = _workload_arches()
    log.print_block(
        f"\n{node}\n\n{pods}\n\n"
        f"pods' images by arch: {workloads or 'no pod containers yet'}\n"
        f"cluster ready in {took:.0f}s: node {st.node_name} ({st.arch}) at {req.plan.node_address}, {dns}; "
        f"kubelet log {lay.kubelet_log}\n"
        f"KUBECONFIG={lay.kubeconfig}"
    )


# -- down -----------------------------------------------------------------------------------


def down(lay: Layout, default_plan: AddressPlan, *, keep_logs: Path | None = None) -> list[str]:
    """Remove everything cluster-up made; safe to run again.  Returns what was removed.

    ``keep_logs``: copy the logs (kubelet, kubeadm, relay, every container's) there first."""
    check_root()
    st = State.load(lay)
    if keep_logs is not None and lay.logs.is_dir():
        save_container_logs(lay)
        shutil.copytree(lay.logs, keep_logs, dirs_exist_ok=True)
        log.info(f"logs copied to {keep_logs}")
    plan = plan_of(st) if st else default_plan
    removed: list[str] = []
    problems: list[str] = []

    def attempt(what: str, fn: Any) -> None:
        try:
            removed.extend(fn())
        except KubemipsError as exc:
            problems.append(f"{what}: {exc}")
        except OSError as exc:
            problems.append(f"{what}: {exc}")

    with log.step("cluster-down"):
        attempt("kubelet", lambda: kubelet(lay).stop())
        attempt("docker relay", lambda: relay(lay).stop())
        attempt("containers", _remove_containers)
        attempt("mounts", lambda: _unmount(KUBELET_DIR))
        attempt("iptables", lambda: _iptables_clean("iptables") + _iptables_clean("ip6tables"))
        attempt("network", lambda: network_down(plan))
        if st is not None:
            existing = set(st.existing_paths)
            attempt("files", lambda: _remove_paths(p for p in HOST_PATHS if str(p) not in existing))
            attempt("cgroups", lambda: remove_cgroups(st.cgroups))
            attempt("sysctls", lambda: restore_sysctls(st.sysctls))
            attempt("oom scores", lambda: restore_oom_scores(st.oom_scores))
            attempt("netfilter tables", lambda: remove_empty_tables(st.tables))
        else:
            attempt("cgroups", lambda: remove_cgroups(()))
            present = [str(p) for p in HOST_PATHS if p.exists()]
            if present:
                log.warn(f"no cluster state in {lay.state}: left alone (not known to be ours): {', '.join(present)}")
        if lay.state.exists():
            attempt("state", lambda: _remove_paths([lay.state]))
        for item in removed:
            log.info(f"  {item if item.endswith(' restored') else 'removed ' + item}")
        mine = [p for p in HOST_PATHS if str(p) not in set(st.existing_paths)] if st else []
        left = leftovers(plan, lay, paths=mine)
        if problems or left:
            raise ClusterError("cluster-down could not remove everything:\n  " + "\n  ".join(problems + left))
        log.result("nothing of the cluster is left" if removed else "no cluster was here: nothing to remove")
    return removed


def _remove_containers() -> list[str]:
    import docker.errors

    removed = []
    try:
        client = _docker()
    except PrerequisiteError:
        return []
    for c in k8s_containers(client):
        try:
            c.remove(force=True, v=True)
            removed.append(f"container {c.name}")
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise ClusterError(f"docker could not remove {c.name}: {exc.explanation or exc}") from None
    return removed


def _unmount(root: Path) -> list[str]:
    removed = []
    for point in mounts_under(Path("/proc/self/mountinfo").read_text(), root):
        if cmd.run(["umount", point], check=False, echo=False).returncode != 0:
            cmd.run(["umount", "-l", point], what="umount")
        removed.append(f"mount {point}")
    return removed


def _remove_paths(paths: Iterable[Path]) -> list[str]:
    removed = []
    for p in paths:
        if p.is_symlink() or p.is_file() or p.is_socket():
            p.unlink()
        elif p.is_dir():
            if mounts_under(Path("/proc/self/mountinfo").read_text(), p):
                raise ClusterError(f"{p} still has mounts under it; not removed")
            shutil.rmtree(p)
        else:
            continue
        removed.append(f"{p}")
    return removed


def leftovers(plan: AddressPlan, lay: Layout, *, paths: Iterable[Path] = HOST_PATHS) -> list[str]:
    """Anything of a cluster still on the machine (empty when the machine is clean)."""
    left = []
    for name in (NODE_INTERFACE, CNI_BRIDGE):
        if _link_exists(name):
            left.append(f"interface {name}")
    for r in _ip_json("-4", "route", "show", "table", "main"):
        dst = r.get("dst", "")
        if dst in {str(n) for n in plan.ranges().values()} or r.get("dev") in (NODE_INTERFACE, CNI_BRIDGE):
            left.append(f"route {dst} {r.get('type', '')} {r.get('dev', '')}".strip())
    for binary in ("iptables-save", "ip6tables-save"):
        if shutil.which(binary):
            left += [f"{binary}: {line}" for line in leftover_lines(cmd.output([binary], what="iptables"))]
    left += [f"mount {p}" for p in mounts_under(Path("/proc/self/mountinfo").read_text(), KUBELET_DIR)]
    with contextlib.suppress(PrerequisiteError):
        left += [f"container {c.name}" for c in k8s_containers(_docker())]
    for proc in (kubelet(lay), relay(lay)):
        if proc.pid() is not None:
            left.append(f"{proc.name} process")
    left += [f"path {p}" for p in paths if p.exists() or p.is_symlink()]
    return left
