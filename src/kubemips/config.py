"""Settings: defaults, then ``kubemips.toml``, then environment, then flags.

The schema is closed: an unknown table or key is an error naming the file and, for a
typo, the key that was probably meant.  :data:`SCHEMA` is the one place a default is
written; the project's kubemips.toml shows every key with it (a unit test compares them).
Resolved settings are a frozen dataclass that the rest of the code receives explicitly;
nothing else reads the environment for settings.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import log, netplan
from .arch import Arch, parse_arch, parse_arches
from .e2e import E2E_DIR
from .errors import ConfigError
from .schema import check_table, read_toml, str_list, suggest

CONFIG_NAME = "kubemips.toml"

KUBERNETES_VERSION = "v1.16.2"
"""The Kubernetes release every task that takes ``--k8s`` defaults to (its conformance
catalog, the cluster's manifests and images): the hyperkube component's version, which a
unit test keeps equal to this."""

# Environment variables and the keys they override.  REGISTRY, ALL_ARCH and WHAT are the
# names upstream's image-util.sh and Makefiles use (`WHAT=pause invoke build`).
ENV_OVERRIDES: Mapping[str, str] = {
    "REGISTRY": "registry.address",
    "ALL_ARCH": "build.architectures",
    "WHAT": "build.default-what",
    "KUBEMIPS_JOBS": "build.jobs",
    "DEBIAN_MIRROR": "debian.mirror",
    "KUBEMIPS_CACHE": "paths.cache",
    "KUBEMIPS_GO_CACHE": "paths.go-cache",
    "KUBEMIPS_REGISTRY_CA": "registry.ca-file",
}

VERSION_VAR = "VERSION"
"""Upstream's image Makefiles take the version to build as VERSION (`make VERSION=...`):
here it is the default of `--version` for the building tasks that have that flag.  It is
no file setting (a version belongs to one component, and component files pin theirs)."""


@dataclass(frozen=True)
class _Key:
    kind: type
    default: Any
    doc: str


SCHEMA: Mapping[str, Mapping[str, _Key]] = {
    "registry": {
        "address": _Key(str, "", "registry[/namespace] to push to; empty means the embedded one"),
        "embedded-listen": _Key(str, "127.0.0.1:5000", "where the embedded registry listens"),
        "insecure": _Key(bool, False, "plain HTTP for a non-loopback registry"),
        "ca-file": _Key(str, "", "PEM CA file trusted for the registry, besides the system store"),
    },
    "build": {
        "architectures": _Key(list, ["amd64", "mips64el"], "architectures to build"),
        "jobs": _Key(int, 2, "nodes built at the same time"),
        "default-what": _Key(list, ["debian-base", "pause"], "what `invoke build` builds"),
        "engines": _Key(dict, {}, "arch -> Docker endpoint (unix://, tcp://, ssh://) of a native builder"),
    },
    "ci": {
        "runners": _Key(dict, {}, "arch -> GitHub Actions runs-on label for `invoke matrix`"),
    },
    "debian": {
        "suite": _Key(str, "bookworm", "Debian release for debian-base"),
        "mirror": _Key(str, "", "Debian archive URI; empty means the host's apt sources"),
        "security-mirror": _Key(str, "", "security archive URI; empty means the host's"),
        "source-date-epoch": _Key(int, 1700000000, "timestamp clamped into every image"),
    },
    "cluster": {
        "node-address": _Key(str, netplan.DEFAULT_NODE_ADDRESS, "the local cluster's node address (on kubemips0)"),
        "service-subnet": _Key(str, netplan.DEFAULT_SERVICE_SUBNET, "the local cluster's Service range"),
        "pod-subnet": _Key(str, netplan.DEFAULT_POD_SUBNET, "the local cluster's pod range"),
        "timeout": _Key(int, 600, "seconds cluster-up waits for the node and system pods"),
    },
    "paths": {
        "cache": _Key(str, ".cache", "work and cache directory, relative to the repo"),
        "go-cache": _Key(str, "", "Go module and build caches; empty means CACHE/go"),
    },
}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Resolved settings; build code receives one of these and reads nothing else."""

    root: Path
    config_path: Path | None
    registry: str
    embedded: bool
    embedded_listen: str
    insecure: bool
    arches: tuple[Arch, ...]
    jobs: int
    default_what: tuple[str, ...]
    debian_suite: str
    debian_mirror: str
    security_mirror: str
    source_date_epoch: int
    cache_dir: Path
    go_cache_dir: Path
    """GOMODCACHE and GOCACHE live here: shared by every arch, component and run."""
    engines: Mapping[Arch, str] = field(default_factory=dict)
    """Architectures built and run on another Docker engine (natively), by endpoint."""
    runners: Mapping[Arch, str] = field(default_factory=dict)
    ca_file: Path | None = None
    """A CA (PEM) trusted for the registry besides the system store and Docker's certs.d."""
    cluster_plan: netplan.AddressPlan = field(default_factory=netplan.default)
    """Addresses of the local cluster (`invoke cluster-up`)."""
    cluster_timeout: int = SCHEMA["cluster"]["timeout"].default
    version: str = ""
    """From $VERSION: the version of the one component a build names, unless --version is given."""
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    """Where each value came from ("default", file path, env var, "flag"), for `show-config`."""

    @property
    def registry_host(self) -> str:
        return self.registry.split("/", 1)[0]

    @property
    def plain_http(self) -> bool:
        """Loopback registries speak plain HTTP, as Docker assumes for them."""
        return self.insecure or is_loopback(self.registry_host)

    # The cache's shared directories, each named here once: several modules write or read them.
    @property
    def reports_dir(self) -> Path:
        """Where a command's reports and result files go when no path is given."""
        return self.cache_dir / "reports"

    @property
    def smoke_dir(self) -> Path:
        """A marker per image digest and smoke check that passed: a build skips a check it
        finds here, and the coverage report shows which images passed theirs."""
        return self.cache_dir / "smoke"

    @property
    def blob_dir(self) -> Path:
        """The content-addressed store that builds and mirror copies keep blobs in."""
        return self.cache_dir / "blobs"

    def describe(self) -> str:
        """What `show-config` prints: the resolved settings and where each came from."""
        rows = [[key, src] for key, src in sorted(self.sources.items())]
        return (
            f"config file : {self.config_path or '(none)'}\n"
            f"registry    : {self.registry} ({'embedded' if self.embedded else 'external'}, "
            f"{'http' if self.plain_http else 'https'})\n"
            f"arches      : {', '.join(f'{a.name} ({a.platform})' for a in self.arches)}\n"
            f"jobs        : {self.jobs}\n"
            + (f"version     : {self.version} ($VERSION: the one component a build names)\n" if self.version else "")
            + f"debian      : {self.debian_suite}, mirror {self.debian_mirror or '(host apt sources)'}\n"
            f"cache       : {self.cache_dir}\n\n" + log.table(["setting", "from"], rows)
        )


def is_loopback(hostport: str) -> bool:
    if hostport.startswith("["):
        host = hostport[1:].split("]", 1)[0]
    elif hostport.count(":") == 1:
        host = hostport.rsplit(":", 1)[0]
    else:
        host = hostport
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flatten_file(path: Path) -> dict[str, Any]:
    data = read_toml(path)
    flat: dict[str, Any] = {}
    for table, body in data.items():
        if table not in SCHEMA:
            raise ConfigError(
                f"{path}: unknown table [{table}]; known: {', '.join(SCHEMA)}." + suggest(table, list(SCHEMA))
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: '{table}' must be a table")
        types = {key: spec.kind for key, spec in SCHEMA[table].items()}
        for key, value in check_table(f"{path}: [{table}]", body, types).items():
            if isinstance(value, list):
                str_list(f"{path}: [{table}]", key, value)
            flat[f"{table}.{key}"] = value
    return flat


def _from_env(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    for var, dotted in ENV_OVERRIDES.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        table, key = dotted.split(".")
        spec = SCHEMA[table][key]
        value: Any
        if spec.kind is list:
            value = raw.replace(",", " ").split()
        elif spec.kind is int:
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"environment {var}={raw!r}: not an integer") from None
        else:
            value = raw
        out[dotted] = (value, f"${var}")
    return out


def find_root(start: Path | None = None) -> Path:
    """The project root: the directory holding kubemips.toml (or this checkout).  An e2e
    folder's old descriptor of that name (see :mod:`kubemips.e2e`) is passed over."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).is_file() and not _in_e2e_folder(candidate):
            return candidate
    return Path(__file__).resolve().parents[2]


def _in_e2e_folder(directory: Path) -> bool:
    return (directory / "VERSION").is_file() and E2E_DIR in directory.parent.parts


def load(
    *,
    root: Path | None = None,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings.  ``flags`` keys are dotted (``build.architectures``); None is unset."""
    env = os.environ if env is None else env
    root = root or find_root()
    if config_file is None and env.get("KUBEMIPS_CONFIG"):
        config_file = Path(env["KUBEMIPS_CONFIG"])
    path = config_file or root / CONFIG_NAME
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for table, keys in SCHEMA.items():
        for key, spec in keys.items():
            values[f"{table}.{key}"] = spec.default
            sources[f"{table}.{key}"] = "default"
    if path.is_file():
        for dotted, value in _flatten_file(path).items():
            values[dotted] = value
            sources[dotted] = str(path)
    elif config_file is not None:
        raise ConfigError(f"{path}: configuration file not found")
    for dotted, (value, src) in _from_env(env).items():
        values[dotted] = value
        sources[dotted] = src
    version = env.get(VERSION_VAR, "").strip()
    if version:
        sources["build.version"] = f"${VERSION_VAR}"
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        if dotted not in values:
            raise ConfigError(f"unknown setting '{dotted}'." + suggest(dotted, list(values)))
        values[dotted] = value
        sources[dotted] = "flag"

    def where(dotted: str) -> str:
        return f"{sources[dotted]}: '{dotted}'"

    try:
        arches = parse_arches(values["build.architectures"])
    except ConfigError as exc:
        raise ConfigError(f"{where('build.architectures')}: {exc}") from None
    jobs = values["build.jobs"]
    if not isinstance(jobs, int) or not 1 <= jobs <= 64:
        raise ConfigError(f"{where('build.jobs')} must be between 1 and 64, got {jobs!r}")
    embedded_listen = values["registry.embedded-listen"]
    if not is_loopback(embedded_listen) or ":" not in embedded_listen:
        raise ConfigError(f"{where('registry.embedded-listen')} must be a loopback host:port, got {embedded_listen!r}")
    address = values["registry.address"].strip().rstrip("/")
    embedded = address == "" or address == embedded_listen
    registry = embedded_listen if embedded else address
    _check_registry(registry, where("registry.address"))
    epoch = values["debian.source-date-epoch"]
    if epoch < 0:
        raise ConfigError(f"{where('debian.source-date-epoch')} must not be negative")
    suite = values["debian.suite"]
    if not suite.isalnum():
        raise ConfigError(f"{where('debian.suite')} must be a plain suite name, got {suite!r}")
    for dotted in ("debian.mirror", "debian.security-mirror"):
        uri = values[dotted]
        if uri and not uri.startswith(("http://", "https://", "file:/")):
            raise ConfigError(f"{where(dotted)} must be an http(s):// or file:/ URI, got {uri!r}")
    cache = Path(values["paths.cache"])
    cache_dir = cache if cache.is_absolute() else root / cache
    if values["paths.go-cache"] and not Path(values["paths.go-cache"]).is_absolute():
        raise ConfigError(f"{where('paths.go-cache')} must be an absolute path, got {values['paths.go-cache']!r}")
    engines = _arch_map(values["build.engines"], where("build.engines"))
    for arch, url in engines.items():
        if not url.startswith(("unix://", "tcp://", "ssh://", "npipe://")):
            raise ConfigError(
                f"{where('build.engines')}: {arch} endpoint must be unix://, tcp:// or ssh://, got {url!r}"
            )
    runners = _arch_map(values["ci.runners"], where("ci.runners"))
    ca_file = None
    if values["registry.ca-file"]:
        ca_file = Path(values["registry.ca-file"])
        ca_file = ca_file if ca_file.is_absolute() else root / ca_file
        if not ca_file.is_file():
            raise ConfigError(f"{where('registry.ca-file')}: no such file {ca_file}")
    plan = netplan.parse(
        values["cluster.node-address"],
        values["cluster.service-subnet"],
        values["cluster.pod-subnet"],
        where=f"{sources['cluster.node-address']}: [cluster]",
    )
    timeout = values["cluster.timeout"]
    if not isinstance(timeout, int) or timeout < 30:
        raise ConfigError(f"{where('cluster.timeout')} must be at least 30 seconds, got {timeout!r}")
    return Settings(
        root=root,
        config_path=path if path.is_file() else None,
        registry=registry,
        embedded=embedded,
        embedded_listen=embedded_listen,
        insecure=values["registry.insecure"],
        arches=arches,
        jobs=jobs,
        default_what=tuple(values["build.default-what"]),
        debian_suite=suite,
        debian_mirror=values["debian.mirror"].rstrip("/"),
        security_mirror=values["debian.security-mirror"].rstrip("/"),
        source_date_epoch=epoch,
        cache_dir=cache_dir,
        go_cache_dir=Path(values["paths.go-cache"]) if values["paths.go-cache"] else cache_dir / "go",
        engines=engines,
        runners=runners,
        ca_file=ca_file,
        cluster_plan=plan,
        cluster_timeout=timeout,
        version=version,
        sources=sources,
    )


def _arch_map(value: Mapping[str, Any], where: str) -> dict[Arch, str]:
    result: dict[Arch, str] = {}
    for key, item in value.items():
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{where}: value for '{key}' must be a non-empty string, got {item!r}")
        try:
            result[parse_arch(key)] = item
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return result


_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$"
)
_NAMESPACE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def _check_registry(registry: str, where: str) -> None:
    """HOST[:PORT][/NAMESPACE] as an image reference spells it (what the engine accepts)."""
    shape = f"{where}: registry must look like HOST[:PORT][/NAMESPACE], got {registry!r}"
    hostport, _, path = registry.partition("/")
    if not hostport or " " in registry or "://" in registry:
        raise ConfigError(shape)
    host, port = hostport, ""
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        host += "]"
        port = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else "?")
    elif ":" in hostport:
        host, _, port = hostport.partition(":")
    if not host or not _HOST.match(host):
        raise ConfigError(f"{shape}: '{host}' is not a host name or address")
    if hostport.count(":") and not hostport.startswith("[") and not port:
        raise ConfigError(f"{shape}: the port is empty")
    if port and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ConfigError(f"{shape}: port '{port}' must be a number from 1 to 65535")
    if "." not in host and not port and host not in ("localhost",) and not host.startswith("["):
        raise ConfigError(
            f"{shape}: '{host}' has no '.' and no port, so an image reference would take it for a "
            "Docker Hub namespace; write HOST:PORT or a dotted name"
        )
    if host != host.lower():
        raise ConfigError(f"{where}: registry host must be lowercase (image references are), got {host!r}")
    if path and not _NAMESPACE.match(path):
        raise ConfigError(
            f"{where}: registry namespace {path!r} must be lowercase letters, digits and separators (. _ -)"
        )
