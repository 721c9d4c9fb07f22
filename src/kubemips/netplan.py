"""The addresses of the local cluster: one block routed nowhere, split into node, services and pods.

Every address a cluster uses lives on interfaces the project creates on this machine:

- the node address sits on ``kubemips0``, a Linux bridge with no ports (this kernel has no
  ``dummy`` driver; a portless bridge is the same thing: an address that exists only here,
  and a device that drops whatever is routed into it);
- the node's pod range is routed to the CNI bridge ``kubemips-cni0``; the rest of the pod
  range is a blackhole route;
- the service range is routed into ``kubemips0`` (where kube-proxy's DNAT turns service
  addresses into pod addresses first; what it does not translate is dropped there), with a
  blackhole route under it that takes over whenever ``kubemips0`` is gone.  A blackhole
  alone would make ``connect()`` fail on the host before kube-proxy's rules are consulted.

The default block is 198.18.0.0/16 (RFC 2544, reserved for benchmarking and never routed
on the Internet).  Nothing here touches the machine: this module is pure data and checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigError

NODE_INTERFACE = "kubemips0"
CNI_BRIDGE = "kubemips-cni0"
NODE_CIDR_MASK = 24
"""The controller-manager's default --node-cidr-mask-size: the first node gets the first /24."""

DEFAULT_NODE_ADDRESS = "198.18.0.1"
DEFAULT_SERVICE_SUBNET = "198.18.16.0/20"
DEFAULT_POD_SUBNET = "198.18.128.0/17"


@dataclass(frozen=True, kw_only=True)
class AddressPlan:
    node_address: ipaddress.IPv4Address
    service_subnet: ipaddress.IPv4Network
    pod_subnet: ipaddress.IPv4Network

    @property
    def node_pod_cidr(self) -> ipaddress.IPv4Network:
        """The range the controller-manager allocates to the first (only) node."""
        return next(self.pod_subnet.subnets(new_prefix=NODE_CIDR_MASK))

    @property
    def pod_gateway(self) -> ipaddress.IPv4Address:
        """The CNI bridge's address: the first of the node's pod range."""
        return self.node_pod_cidr.network_address + 1

    @property
    def api_service_address(self) -> ipaddress.IPv4Address:
        """The `kubernetes` Service: the API server's first service address."""
        return self.service_subnet.network_address + 1

    @property
    def dns_address(self) -> ipaddress.IPv4Address:
        """The cluster DNS Service: the tenth service address, as kubeadm chooses it."""
        return self.service_subnet.network_address + 10

    @property
    def node_cidr(self) -> str:
        return f"{self.node_address}/32"

    def ranges(self) -> dict[str, ipaddress.IPv4Network]:
        return {
            "node": ipaddress.IPv4Network(self.node_cidr),
            "services": self.service_subnet,
            "pods": self.pod_subnet,
        }

    def as_dict(self) -> dict[str, str]:
        return {
            "node-address": str(self.node_address),
            "service-subnet": str(self.service_subnet),
            "pod-subnet": str(self.pod_subnet),
        }

    def describe(self) -> list[tuple[str, str, str]]:
        """(what, address, where) rows for the user."""
        return [
            ("node address", self.node_cidr, f"on {NODE_INTERFACE} (bridge with no ports)"),
            ("service range", str(self.service_subnet), f"routed into {NODE_INTERFACE}; blackhole below it"),
            ("  kubernetes Service", str(self.api_service_address), "kube-proxy DNAT to the node address"),
            ("  cluster DNS Service", str(self.dns_address), "CoreDNS (when deployed)"),
            ("pod range", str(self.pod_subnet), "blackhole route"),
            ("  this node's pods", str(self.node_pod_cidr), f"on {CNI_BRIDGE} (gateway {self.pod_gateway})"),
        ]


def parse(node_address: str, service_subnet: str, pod_subnet: str, *, where: str = "cluster") -> AddressPlan:
    """Build and check a plan: IPv4, non-overlapping, not public, big enough."""
    try:
        node = ipaddress.IPv4Address(node_address)
    except ValueError:
        raise ConfigError(f"{where}: node-address must be an IPv4 address, got {node_address!r}") from None
    nets: dict[str, ipaddress.IPv4Network] = {}
    for key, text in (("service-subnet", service_subnet), ("pod-subnet", pod_subnet)):
        try:
            nets[key] = ipaddress.IPv4Network(text, strict=True)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: {key} must be an IPv4 network like 198.18.16.0/20, got {text!r} ({exc})"
            ) from None
    plan = AddressPlan(node_address=node, service_subnet=nets["service-subnet"], pod_subnet=nets["pod-subnet"])
    problems = check(plan)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return plan


def default() -> AddressPlan:
    return parse(DEFAULT_NODE_ADDRESS, DEFAULT_SERVICE_SUBNET, DEFAULT_POD_SUBNET)


def check(plan: AddressPlan) -> list[str]:
    """Problems with a plan on its own (empty when it is usable)."""
    problems = []
    for name, net in plan.ranges().items():
        if net.is_global or net.is_loopback or net.is_link_local or net.is_multicast:
            problems.append(f"{name} range {net} must be a private or reserved range, not routed on the Internet")
    if plan.service_subnet.prefixlen < 12:
        problems.append(f"service range {plan.service_subnet} is larger than Kubernetes allows (/12)")
    if plan.service_subnet.num_addresses < 16:
        problems.append(f"service range {plan.service_subnet} is too small (needs at least 16 addresses)")
    if plan.pod_subnet.prefixlen > NODE_CIDR_MASK:
        problems.append(f"pod range {plan.pod_subnet} is smaller than one node's /{NODE_CIDR_MASK}")
    items = list(plan.ranges().items())
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1 :]:
            if a.overlaps(b):
                problems.append(f"{name_a} range {a} overlaps {name_b} range {b}")
    return problems


def conflicts(plan: AddressPlan, host_routes: Iterable[str], host_addresses: Iterable[str]) -> list[str]:
    """Clashes with what the machine already has: a route more specific than the default
    into one of the plan's ranges, or an address inside them on an interface not ours.

    ``host_routes`` are route destinations (``192.0.2.0/24``, ``default``) not made by the
    project; ``host_addresses`` are ``address/prefix`` strings on interfaces not ours."""
    problems = []
    ranges = plan.ranges()
    for dst in host_routes:
        if dst in ("default", "0.0.0.0/0"):
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if not isinstance(net, ipaddress.IPv4Network):
            continue
        for name, ours in ranges.items():
            if net.overlaps(ours):
                problems.append(f"the host already routes {net}, which overlaps the {name} range {ours}")
    for text in host_addresses:
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            continue
        if not isinstance(iface, ipaddress.IPv4Interface):
            continue
        for name, ours in ranges.items():
            if iface.ip in ours or iface.network.overlaps(ours):
                problems.append(f"the host already has {iface} on an interface, inside the {name} range {ours}")
    return problems
