"""Declarative components: ``components/<name>/component.toml`` loaded into frozen data.

A component names its version, where its source comes from (pinned), how its per-arch
content is built (``[build] kind`` picks a builder; the builder checks its own keys), the
images that come out, and a smoke check per image that proves it works on its
architecture.  Adding a component needs no Python.

A single-image component writes ``[image]`` and ``[smoke]``; a component with several
images (calico) writes ``[[images]]`` tables, each with its own ``[images.smoke]``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import placeholders, versions
from .arch import ARCHES, Arch, parse_arch
from .errors import ConfigError
from .schema import check_table, read_toml, str_list, str_map, suggest

COMPONENT_FILE = "component.toml"

_TOP = {
    "name": str,
    "description": str,
    "version": str,
    "version-scheme": str,
    "tag": str,
    "source": dict,
    "sources": dict,
    "versions": dict,
    "build": dict,
    "image": dict,
    "images": list,
    "smoke": dict,
}
_IMAGE = {
    "name": str,
    "base": str,
    "entrypoint": list,
    "cmd": list,
    "env": list,
    "labels": dict,
    "workdir": str,
    "user": str,
    "expose": list,
    "files": dict,
    "links": dict,
    "copy": list,
    "smoke": dict,
}
_COPY = {"from": str, "path": str}
_VERSION = {"source": dict, "sources": dict}
_SMOKE = {
    "command": list,
    "expect": str,
    "timeout": int,
    "env": list,
    "entrypoint": list,
    "files": dict,
    "client": str,
    "client-command": list,
    "exit-code": int,
}
_SOURCE = {
    "kind": str,
    "url": str,
    "ref": str,
    "commit": str,
    "sha256": str,
    "strip": int,
    "patches": list,
    "module": str,
    "version": str,
    "sum": str,
    "replace": list,
    "require": list,
    "drop": list,
    "go-sum": str,
    "generate": list,
    "layout": str,
}
_PATCH = {"file": str, "arches": list, "versions": str, "components": list}
_REPLACE = {"module": str, "with": str, "version": str, "sum": str, "go-mod-sum": str, "why": str}
_REQUIRE = {"module": str, "version": str, "sum": str, "go-mod-sum": str, "why": str}
_DROP = {"module": str, "why": str}
SOURCE_KINDS = ("git", "tarball", "go-module")
GENERATORS = ("openapi", "e2e-bindata")
"""Files upstream's ``make generated_files`` writes and its module does not carry."""
_H1 = re.compile(r"^h1:[A-Za-z0-9+/]{43}=$")
_GO_SUM_LINE = re.compile(r"^\S+ v\S+ h1:[A-Za-z0-9+/]{43}=$")


@dataclass(frozen=True, kw_only=True)
class SmokeDef:
    """Run ``command`` in the image on its arch; the output must match ``expect``.

    ``expect`` is a regular expression searched in the output, after filling in the
    version's and the arch's placeholders (:mod:`kubemips.placeholders`), escaped.
    """

    command: tuple[str, ...]
    expect: str
    timeout: int
    env: tuple[str, ...]
    entrypoint: tuple[str, ...] | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    """Files written into the container before it starts (a server's configuration)."""
    client: str = ""
    """A project image (same arch) run with ``client_command`` in the network namespace of
    the image under test, which then runs ``command`` in the background: for images with
    no shell (CoreDNS is FROM scratch) the client asks the server, and its output is what
    ``expect`` must match.  It shares the server's PID namespace too: the server is PID 1,
    and ``/proc/1/root`` its filesystem (the files and binaries the image carries)."""
    client_command: tuple[str, ...] = ()
    exit_code: int = 0
    """The exit status ``command`` (or the client) must end with: a server started
    without what it needs fails on purpose, with its own message (metrics-server with no
    API server to delegate authentication to exits 2)."""

    where: str = field(default="", compare=False)
    """The file and table it was read from, for errors."""

    def pattern(self, version: str, arch: Arch) -> re.Pattern[str]:
        """``expect`` with the placeholders of ``version`` and ``arch`` filled in, escaped."""
        text = placeholders.fill(
            self.expect, placeholders.values(version, arch), where=f"{self.where} expect", escape=re.escape
        )
        return re.compile(text, re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class CopyFrom:
    """``path`` from the image ``image`` (same arch), copied into another image."""

    image: str
    path: str


@dataclass(frozen=True, kw_only=True)
class ImageDef:
    name: str
    """Unique id in the catalog (what WHAT names and plan nodes use)."""
    base: str  # "scratch" or the name of another project image
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    env: tuple[str, ...]
    labels: Mapping[str, str]
    workdir: str
    user: str
    expose: tuple[str, ...]
    files: Mapping[str, str]
    """Image path -> build artifact name, for builders that produce named artifacts."""
    smoke: SmokeDef
    links: Mapping[str, str] = field(default_factory=dict)
    """Image path -> symlink target (kubeadm runs /usr/local/bin/kube-apiserver, which
    v1.16's one-binary hyperkube answers to by the name it is called with)."""
    copies: tuple[CopyFrom, ...] = ()
    """Files taken from other project images of the same arch, in a layer of their own
    under the builder's (upstream's multi-stage ``COPY --from``: CoreDNS's CA bundle)."""
    repo: str = ""
    """Registry repository; defaults to ``name``.  Two catalog entries may share a repository
    with different tags (the e2e suite's etcd:3.3.15 beside the cluster's etcd:3.4.23)."""

    def __post_init__(self) -> None:
        if not self.repo:
            object.__setattr__(self, "repo", self.name)

    def env_for(self, arch: Arch) -> tuple[str, ...]:
        """Env with the arch's placeholders filled in (etcd needs ETCD_UNSUPPORTED_ARCH=mips64le)."""
        where = f"image '{self.name}' env"
        return tuple(placeholders.fill(e, arch.placeholders(), where=where) for e in self.env)


@dataclass(frozen=True, kw_only=True)
class Patch:
    file: Path
    arches: tuple[str, ...]  # canonical arch names; empty = every arch
    versions: str  # semver range such as ">=1.16.0,<1.18.0"; empty = every version
    components: tuple[str, ...] = ()
    """Only when building these components (empty: every component building from the
    source).  A fix to the product alone then leaves the e2e images that share the source
    (and their input digests) alone."""

    def applies(self, arch: Arch, version: str, component: str = "") -> bool:
        if self.arches and arch.name not in self.arches:
            return False
        if self.components and component not in self.components:
            return False
        return versions.in_range(version, self.versions) if self.versions else True


@dataclass(frozen=True, kw_only=True)
class GoReplace:
    """One go.mod ``replace`` the project adds, pinned like a go.sum line.

    ``module`` is replaced by ``with_`` (the same path unless a module moved, as
    vbom.ml/util did) at ``version``; ``sum`` and ``go_mod_sum`` are its go.sum hashes,
    written into go.sum so the go command verifies the download against them.
    """

    module: str
    with_: str
    version: str
    sum: str
    go_mod_sum: str
    why: str


@dataclass(frozen=True, kw_only=True)
class GoRequire:
    """One requirement the project adds to go.mod (``go mod edit -require``), pinned by
    its go.sum hashes like a replacement: a published module that provides a package
    upstream's go.mod found somewhere a module zip does not carry."""

    module: str
    version: str
    sum: str
    go_mod_sum: str
    why: str


@dataclass(frozen=True, kw_only=True)
class GoDrop:
    """A module path whose requirement and replacement the project removes from go.mod
    (upstream pointed it at a directory the module zip does not carry)."""

    module: str
    why: str


@dataclass(frozen=True, kw_only=True)
class Source:
    """A pinned upstream source: a git commit, a tarball with its sha256, or a Go module
    version with its go.sum hash (plus the go.mod replacements the project makes)."""

    name: str
    kind: str  # git | tarball | go-module
    url: str
    ref: str
    commit: str
    sha256: str
    strip: int
    patches: tuple[Patch, ...]
    module: str = ""
    version: str = ""
    sum: str = ""
    replaces: tuple[GoReplace, ...] = ()
    requires: tuple[GoRequire, ...] = ()
    drops: tuple[GoDrop, ...] = ()
    go_sum: tuple[str, ...] = ()
    """Further go.sum lines (from the component's ``go-sum`` file): the go.mod hashes of
    the module graph an added requirement brings, so the go command verifies every go.mod
    it reads against a pin, offline too."""
    generate: tuple[str, ...] = ()
    gopath: bool = False
    """Vendor the dependencies and build in GOPATH mode under the module path, as
    Kubernetes' own Makefile did up to v1.16 (its code generators need that layout)."""

    @property
    def pin(self) -> str:
        if self.kind == "git":
            return self.commit
        if self.kind == "tarball":
            return self.sha256
        doc: list[object] = [
            self.module,
            self.version,
            self.sum,
            [[r.module, r.with_, r.version, r.sum, r.go_mod_sum] for r in self.replaces],
            list(self.generate),
            self.gopath,
        ]
        if self.requires or self.drops or self.go_sum:  # absent: the pins made before them stay
            doc += [
                [[r.module, r.version, r.sum, r.go_mod_sum] for r in self.requires],
                [d.module for d in self.drops],
                list(self.go_sum),
            ]
        return "gomod-" + hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:24]

    @property
    def label(self) -> str:
        """What a user recognises: ``k8s.io/kubernetes@v1.16.2``, a URL and ref, ..."""
        if self.kind == "go-module":
            return f"{self.module}@{self.version}"
        return f"{self.url} {self.ref or self.commit or self.sha256[:12]}"


@dataclass(frozen=True)
class BaseRef:
    """One BASEIMAGE line of an e2e-images folder: the parent for one arch, as written.

    Defined beside :class:`Component` because an e2e component carries its lines
    (``e2e_bases``); :mod:`kubemips.e2e` reads them, the e2e builder checks them."""

    arch: Arch
    value: str  # e.g. REGISTRY/debian-base:1.0.0 or alpine:3.8

    def project_ref(self) -> tuple[str, str] | None:
        """(repo, tag) when the parent is an image of this registry (REGISTRY/...)."""
        if not self.value.startswith("REGISTRY/"):
            return None
        repo, _, tag = self.value.removeprefix("REGISTRY/").rpartition(":")
        tag = tag.removesuffix(f"-{self.arch.tag_suffix}")
        return repo, tag


@dataclass(frozen=True, kw_only=True)
class Component:
    name: str
    description: str
    version: str
    tag: str
    directory: Path
    file: Path
    kind: str
    build: Mapping[str, Any]
    sources: Mapping[str, Source]
    images: tuple[ImageDef, ...]
    raw: str = field(repr=False)
    """The file's text: an input of every build of this component."""
    e2e_bases: Mapping[Arch, BaseRef] = field(default_factory=dict)
    """For e2e-images folders: the BASEIMAGE line per arch (see kubemips.e2e)."""
    e2e: bool = False
    """True for an e2e-images folder, False for a cluster component."""
    pinned: Mapping[str, Mapping[str, Source]] = field(default_factory=dict)
    """Further versions with their own pinned sources (``[versions."X".source]``), which
    ``--version X`` builds without a local tree."""
    provider: Component | None = field(default=None, repr=False)
    """For an e2e image whose Go binaries or files come from another component's source
    (the Kubernetes tree of hyperkube): that component, whose pinned sources (also this
    one's ``sources``), version and ldflags its build uses."""

    @property
    def pinned_versions(self) -> tuple[str, ...]:
        """Every version this file pins a source for: its own first, then the others."""
        return (self.version, *self.pinned) if self.sources else tuple(self.pinned)

    def where(self, key: str = "") -> str:
        return f"{self.file}" + (f": [{key}]" if key else "")


def load_smoke(where: str, data: Mapping[str, Any], version: str) -> SmokeDef:
    smoke = check_table(where, data, _SMOKE, required=("command", "expect"))
    result = SmokeDef(
        command=str_list(where, "command", smoke["command"]),
        expect=smoke["expect"],
        timeout=smoke.get("timeout", 120),
        env=str_list(where, "env", smoke.get("env", [])),
        entrypoint=str_list(where, "entrypoint", smoke["entrypoint"]) if "entrypoint" in smoke else None,
        files=str_map(where, "files", smoke.get("files", {})),
        client=smoke.get("client", ""),
        client_command=str_list(where, "client-command", smoke.get("client-command", [])),
        exit_code=smoke.get("exit-code", 0),
        where=where,
    )
    if not 0 <= result.exit_code <= 255:
        raise ConfigError(f"{where}: exit-code must be 0 to 255, got {result.exit_code}")
    if bool(result.client) != bool(result.client_command):
        raise ConfigError(f"{where}: client and client-command go together")
    for path in result.files:
        if not path.startswith("/"):
            raise ConfigError(f"{where}: files: '{path}' must be an absolute path")
    placeholders.check(
        result.expect, where=f"{where} expect", available=(*placeholders.VERSION_KEYS, *placeholders.ARCH_KEYS)
    )
    try:
        result.pattern(version, ARCHES[0])
    except re.error as exc:
        raise ConfigError(f"{where}: expect is not a valid regular expression: {exc}") from None
    return result


def _image(where: str, data: Mapping[str, Any], default_name: str, smoke: SmokeDef) -> ImageDef:
    img = check_table(where, data, _IMAGE)
    name = img.get("name", default_name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*", name):
        raise ConfigError(f"{where}: image name '{name}' must be lowercase letters, digits, '.', '_', '-' or '/'")
    env = str_list(where, "env", img.get("env", []))
    placeholders.check(env, where=f"{where} env", available=placeholders.ARCH_KEYS)
    return ImageDef(
        name=name,
        base=img.get("base", "scratch"),
        entrypoint=str_list(where, "entrypoint", img["entrypoint"]) if "entrypoint" in img else None,
        cmd=str_list(where, "cmd", img["cmd"]) if "cmd" in img else None,
        env=env,
        labels=str_map(where, "labels", img.get("labels", {})),
        workdir=img.get("workdir", ""),
        user=img.get("user", ""),
        expose=str_list(where, "expose", img.get("expose", [])),
        files=str_map(where, "files", img.get("files", {})),
        links=str_map(where, "links", img.get("links", {})),
        copies=tuple(_copy(f"{where} copy[{i}]", e) for i, e in enumerate(img.get("copy", []))),
        smoke=smoke,
    )


def _copy(where: str, entry: Any) -> CopyFrom:
    if not isinstance(entry, dict):
        raise ConfigError(f'{where}: must be a table {{ from = "IMAGE", path = "/path/in/it" }}')
    c = check_table(where, entry, _COPY, required=("from", "path"))
    if not c["path"].startswith("/") or c["path"].endswith("/"):
        raise ConfigError(f"{where}: path '{c['path']}' must be the absolute path of a file")
    return CopyFrom(image=c["from"], path=c["path"])


def _replace(where: str, entry: Any) -> GoReplace:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table {{ module = ..., version = ..., sum = ..., go-mod-sum = ... }}")
    r = check_table(where, entry, _REPLACE, required=("module", "version", "sum", "go-mod-sum"))
    for key in ("sum", "go-mod-sum"):
        if not _H1.match(r[key]):
            raise ConfigError(f'{where}: {key} must be a go.sum hash "h1:<base64 sha256>", got {r[key]!r}')
    return GoReplace(
        module=r["module"],
        with_=r.get("with", r["module"]),
        version=r["version"],
        sum=r["sum"],
        go_mod_sum=r["go-mod-sum"],
        why=r.get("why", ""),
    )


def _require(where: str, entry: Any) -> GoRequire:
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{where}: must be a table {{ module = ..., version = ..., sum = ..., go-mod-sum = ..., why = ... }}"
        )
    r = check_table(where, entry, _REQUIRE, required=("module", "version", "sum", "go-mod-sum", "why"))
    for key in ("sum", "go-mod-sum"):
        if not _H1.match(r[key]):
            raise ConfigError(f'{where}: {key} must be a go.sum hash "h1:<base64 sha256>", got {r[key]!r}')
    return GoRequire(module=r["module"], version=r["version"], sum=r["sum"], go_mod_sum=r["go-mod-sum"], why=r["why"])


def _drop(where: str, entry: Any) -> GoDrop:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table {{ module = ..., why = ... }}")
    d = check_table(where, entry, _DROP, required=("module", "why"))
    return GoDrop(module=d["module"], why=d["why"])


def go_sum_lines(where: str, text: str) -> tuple[str, ...]:
    """The lines of a go.sum fragment, each checked (``MODULE VERSION[/go.mod] h1:HASH``);
    blank lines and ``#`` comments are skipped."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _GO_SUM_LINE.match(line):
            raise ConfigError(f'{where}:{number}: not a go.sum line "MODULE VERSION[/go.mod] h1:HASH": {line!r}')
        lines.append(line)
    return tuple(lines)


def _go_module(
    where: str, name: str, src: Mapping[str, Any], patches: tuple[Patch, ...], version: str, directory: Path
) -> Source:
    for key in ("module", "sum"):
        if key not in src:
            raise ConfigError(f"{where}: a go-module source needs {key} = ... (pinned by its go.sum hash)")
    if not _H1.match(src["sum"]):
        raise ConfigError(f'{where}: sum must be the module\'s go.sum hash "h1:<base64 sha256>" (unpinned: refused)')
    generate = str_list(where, "generate", src.get("generate", []))
    for g in generate:
        if g not in GENERATORS:
            raise ConfigError(
                f"{where}: generate '{g}' is unknown; known: {', '.join(GENERATORS)}." + suggest(g, list(GENERATORS))
            )
    layout = src.get("layout", "module")
    if layout not in ("module", "gopath"):
        raise ConfigError(f"{where}: layout must be 'module' or 'gopath', got {layout!r}")
    replaces = tuple(_replace(f"{where} replace[{i}]", e) for i, e in enumerate(src.get("replace", [])))
    requires = tuple(_require(f"{where} require[{i}]", e) for i, e in enumerate(src.get("require", [])))
    drops = tuple(_drop(f"{where} drop[{i}]", e) for i, e in enumerate(src.get("drop", [])))
    go_sum: tuple[str, ...] = ()
    if "go-sum" in src:
        path = directory / src["go-sum"]
        if not path.is_file():
            raise ConfigError(f"{where}: go-sum file {path} not found")
        go_sum = go_sum_lines(str(path), path.read_text())
    return Source(
        name=name,
        kind="go-module",
        url="",
        ref="",
        commit=src.get("commit", ""),
        sha256="",
        strip=0,
        patches=patches,
        module=src["module"],
        version=src.get("version", version),
        sum=src["sum"],
        replaces=replaces,
        requires=requires,
        drops=drops,
        go_sum=go_sum,
        generate=tuple(generate),
        gopath=layout == "gopath",
    )


def _source(where: str, name: str, data: Mapping[str, Any], directory: Path, version: str) -> Source:
    src = check_table(where, data, _SOURCE, required=("kind",))
    kind = src["kind"]
    if kind not in SOURCE_KINDS:
        raise ConfigError(
            f"{where}: kind '{kind}' is unknown; known: {', '.join(SOURCE_KINDS)}." + suggest(kind, list(SOURCE_KINDS))
        )
    patches = _patches(where, src, directory)
    if kind == "go-module":
        return _go_module(where, name, src, patches, version, directory)
    if "url" not in src:
        raise ConfigError(f"{where}: missing required key 'url'")
    commit, sha256 = src.get("commit", ""), src.get("sha256", "")
    if kind == "git" and not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise ConfigError(f'{where}: a git source must be pinned with commit = "<40 hex digits>" (unpinned: refused)')
    if kind == "tarball" and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ConfigError(
            f'{where}: a tarball source must be pinned with sha256 = "<64 hex digits>" (unpinned: refused)'
        )
    if not src["url"].startswith(("https://", "http://", "file:/")):
        raise ConfigError(f"{where}: url must be http(s):// or file:/, got {src['url']!r}")
    return Source(
        name=name,
        kind=kind,
        url=src["url"],
        ref=src.get("ref", ""),
        commit=commit,
        sha256=sha256,
        strip=src.get("strip", 1 if kind == "tarball" else 0),
        patches=patches,
    )


def _patches(where: str, src: Mapping[str, Any], directory: Path) -> tuple[Patch, ...]:
    patches = []
    for i, entry in enumerate(src.get("patches", [])):
        pwhere = f"{where} patches[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{pwhere}: must be a table {{ file = ..., arches = [...], versions = ... }}")
        p = check_table(pwhere, entry, _PATCH, required=("file",))
        path = directory / p["file"]
        if not path.is_file():
            raise ConfigError(f"{pwhere}: patch file {path} not found")
        arches = tuple(_canonical_arch(pwhere, a) for a in str_list(pwhere, "arches", p.get("arches", [])))
        vrange = p.get("versions", "")
        if vrange:
            versions.check_range(vrange, where=pwhere)
        only = tuple(str_list(pwhere, "components", p.get("components", [])))
        patches.append(Patch(file=path, arches=arches, versions=vrange, components=only))
    return tuple(patches)


def _canonical_arch(where: str, text: str) -> str:
    try:
        return parse_arch(text).name
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_component(path: Path) -> Component:
    where = str(path)
    data = check_table(where, read_toml(path), _TOP, required=("name", "version", "build"))
    name = data["name"]
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ConfigError(f"{where}: name '{name}' must be lowercase letters, digits and dashes")
    if name != path.parent.name:
        raise ConfigError(f"{where}: name '{name}' does not match its directory '{path.parent.name}'")
    scheme = data.get("version-scheme", "semver")
    version = versions.validate(data["version"], scheme, where=where)
    build = dict(data["build"])
    kind = build.pop("kind", None)
    if not isinstance(kind, str):
        raise ConfigError(f'{where}: [build] needs kind = "..."')
    tag = data.get("tag", version)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", tag):
        raise ConfigError(f"{where}: tag '{tag}' is not a valid image tag")

    images: list[ImageDef] = []
    if "images" in data:
        if "image" in data or "smoke" in data:
            raise ConfigError(
                f"{where}: use either [image] + [smoke] or [[images]] (each with [images.smoke]), not both"
            )
        for i, entry in enumerate(data["images"]):
            iwhere = f"{where}: [[images]] #{i + 1}"
            if not isinstance(entry, dict) or "name" not in entry or "smoke" not in entry:
                raise ConfigError(f"{iwhere}: needs name = ... and an [images.smoke] table")
            images.append(_image(iwhere, entry, name, load_smoke(f"{iwhere} smoke", entry["smoke"], version)))
    else:
        if "smoke" not in data:
            raise ConfigError(f"{where}: missing required key 'smoke'")
        img = dict(data.get("image", {}))
        if "smoke" in img:
            raise ConfigError(f"{where}: put the smoke check in a top-level [smoke] table")
        images.append(_image(f"{where}: [image]", img, name, load_smoke(f"{where}: [smoke]", data["smoke"], version)))

    sources = _sources(where, "", data, path.parent, version)
    pinned = _other_versions(where, data.get("versions", {}), path.parent, scheme, version, sources)

    return Component(
        name=name,
        description=data.get("description", ""),
        version=version,
        tag=tag,
        directory=path.parent,
        file=path,
        kind=kind,
        build=build,
        sources=sources,
        images=tuple(images),
        raw=path.read_text(),
        pinned=pinned,
    )


def _sources(where: str, prefix: str, data: Mapping[str, Any], directory: Path, version: str) -> dict[str, Source]:
    """``[PREFIXsource]`` (the source 'main') or ``[PREFIXsources.NAME]`` tables."""
    sources: dict[str, Source] = {}
    if "source" in data and "sources" in data:
        raise ConfigError(f"{where}: use either [{prefix}source] or [{prefix}sources.NAME], not both")
    if "source" in data:
        sources["main"] = _source(f"{where}: [{prefix}source]", "main", data["source"], directory, version)
    for sname, body in data.get("sources", {}).items():
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: [{prefix}sources.{sname}] must be a table")
        sources[sname] = _source(f"{where}: [{prefix}sources.{sname}]", sname, body, directory, version)
    return sources


def _other_versions(
    where: str, data: Mapping[str, Any], directory: Path, scheme: str, version: str, main: Mapping[str, Source]
) -> dict[str, dict[str, Source]]:
    """``[versions."X".source]``: another version's pinned source, for ``--version X``.

    Everything else (build, images, smoke) is the component's; only where the source
    comes from and how its go.mod is fixed differ between versions."""
    pinned: dict[str, dict[str, Source]] = {}
    for other, body in data.items():
        prefix = f'versions."{other}".'
        vwhere = f'{where}: [versions."{other}"]'
        versions.validate(other, scheme, where=vwhere)
        if other == version:
            raise ConfigError(f"{vwhere}: {other} is the component's own version; its source is [source]")
        if not isinstance(body, dict):
            raise ConfigError(f"{vwhere} must be a table")
        sources = _sources(where, prefix, check_table(vwhere, body, _VERSION), directory, other)
        if not sources:
            raise ConfigError(f"{vwhere}: needs a [{prefix}source] table pinning that version's source")
        if main and set(sources) != set(main):
            raise ConfigError(
                f"{vwhere}: pins the sources {', '.join(sorted(sources))}; the component builds from "
                f"{', '.join(sorted(main))}"
            )
        pinned[other] = sources
    return pinned


def load_each(root: Path) -> tuple[list[Component], dict[str, str]]:
    """Each cluster component on its own, and why each file that does not load failed
    (by directory name).

    One broken component file is then named once and does not take the others with it:
    the front ends still get their per-component tasks, and builds of the rest still run."""
    good: list[Component] = []
    broken: dict[str, str] = {}
    base = root / "components"
    for path in sorted(base.glob(f"*/{COMPONENT_FILE}")) if base.is_dir() else ():
        try:
            good.append(load_component(path))
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            broken[path.parent.name] = load_problem(path, exc)
    return good, broken


def load_problem(path: Path, exc: Exception) -> str:
    """What to say about a file that did not load: a ConfigError names its file already,
    anything else (unreadable, not UTF-8) gets the path put in front."""
    return str(exc) if isinstance(exc, ConfigError) else f"{path}: {exc}"
