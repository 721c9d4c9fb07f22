"""Cluster manifests rendered against a registry, and the check that they can be deployed.

Templates in ``manifests/*.yaml.in`` name images as ``{{image:NAME}}`` (a project image:
rendered as REGISTRY/repo:tag), ``{{tag:NAME}}``, ``{{registry}}``, ``{{kubernetes}}``, the
cluster's addresses as ``{{net:pod-subnet}}``, ``{{net:service-subnet}}``, ``{{net:dns}}``
(kubemips.toml [cluster]) and, alone on a line, ``{{repo_list}}`` (the KUBE_TEST_REPO_LIST
YAML, indented as the line).
``verify`` reads rendered files back and checks two things a user needs before
deploying: every image they reference is a manifest list in the registry holding every
configured arch, and every document is valid for its apiVersion/kind, offline (the
Kubernetes Python client's models; the kubeadm configuration against the fields the
project keeps for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import conformance, k8sschema, log, netplan
from .arch import Arch
from .catalog import Catalog
from .errors import ConfigError, KubemipsError
from .registry import Registry, split_ref

TEMPLATE_DIR = "manifests"
_PLACEHOLDER = re.compile(r"\{\{(\w+)(?::([\w./-]+))?\}\}")


def templates(root: Path) -> list[Path]:
    return sorted((root / TEMPLATE_DIR).glob("*.yaml.in"))


def render(
    root: Path, registry: str, k8s: str, catalog: Catalog, plan: netplan.AddressPlan | None = None
) -> dict[str, str]:
    """File name -> rendered text, for every template (addresses from ``plan``, default
    the [cluster] defaults)."""
    plan = plan or netplan.default()
    cc = conformance.load(root, k8s, catalog)
    repo_list = conformance.repo_list_yaml(cc, registry).rstrip("\n").splitlines()
    out: dict[str, str] = {}
    for path in templates(root):
        lines = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip() == "{{repo_list}}":
                indent = line[: len(line) - len(line.lstrip())]
                lines += [indent + item for item in repo_list]
                continue
            lines.append(_substitute(line, f"{path}:{n}", registry, k8s, catalog, plan))
        out[path.name.removesuffix(".in")] = "\n".join(lines) + "\n"
    return out


def _substitute(line: str, where: str, registry: str, k8s: str, catalog: Catalog, plan: netplan.AddressPlan) -> str:
    return _PLACEHOLDER.sub(lambda m: _value(m, where, registry, k8s, catalog, plan), line)


def _value(m: re.Match[str], where: str, registry: str, k8s: str, catalog: Catalog, plan: netplan.AddressPlan) -> str:
    kind, arg = m.group(1), m.group(2)
    if kind == "net" and arg:
        values = {**plan.as_dict(), "dns": str(plan.dns_address)}
        if arg not in values:
            raise ConfigError(f"{where}: {m.group(0)}: unknown address; known: {', '.join(sorted(values))}")
        return values[arg]
    if kind == "registry" and arg is None:
        return registry
    if kind == "kubernetes" and arg is None:
        return k8s
    if kind in ("image", "tag") and arg:
        if arg not in catalog.images:
            raise ConfigError(f"{where}: {m.group(0)} names '{arg}', which is not an image of this project")
        comp, image = catalog.image(arg)
        return f"{registry}/{image.repo}:{comp.tag}" if kind == "image" else comp.tag
    raise ConfigError(f"{where}: unknown placeholder {m.group(0)}")


def write(rendered: Mapping[str, str], out: Path) -> list[Path]:
    """Write each rendered file into ``out``, naming each as a result: these paths are
    what a user applies next."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered.items():
        path = out / name
        path.write_text(text)
        log.result(f"wrote {path}")
        paths.append(path)
    return paths


# -- reading back --------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    path: Path
    index: int
    body: dict[str, Any]

    @property
    def where(self) -> str:
        kind = self.body.get("kind", "?")
        name = (self.body.get("metadata") or {}).get("name", "")
        return f"{self.path} document {self.index + 1} ({kind}{' ' + name if name else ''})"


def load_dir(directory: Path) -> list[Doc]:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(f"no *.yaml manifests in {directory} (render them with `invoke manifests`)")
    docs = []
    for path in files:
        try:
            bodies = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        for i, body in enumerate(bodies):
            if body is None:
                continue
            if not isinstance(body, dict):
                raise ConfigError(f"{path} document {i + 1}: not a mapping")
            docs.append(Doc(path, i, body))
    return docs


def _walk_images(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from _walk_images(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_images(item)


def images_of(doc: Doc) -> list[str]:
    """Images a document makes a cluster pull (kubeadm's derived from its settings)."""
    body = doc.body
    if str(body.get("apiVersion", "")).startswith("kubeadm.k8s.io/"):
        found = []
        if body.get("kind") == "InitConfiguration":
            args = (body.get("nodeRegistration") or {}).get("kubeletExtraArgs") or {}
            if "pod-infra-container-image" in args:
                found.append(args["pod-infra-container-image"])
        if body.get("kind") == "ClusterConfiguration":
            repo = body.get("imageRepository", "k8s.gcr.io")
            version = body.get("kubernetesVersion", "")
            if body.get("useHyperKubeImage"):
                found.append(f"{repo}/hyperkube:{version}")
            else:
                parts = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
                found += [f"{repo}/{c}:{version}" for c in parts]
            etcd = (body.get("etcd") or {}).get("local") or {}
            if etcd:
                found.append(f"{etcd.get('imageRepository', repo)}/etcd:{etcd.get('imageTag', '')}")
            dns = body.get("dns") or {}
            found.append(f"{dns.get('imageRepository', repo)}/coredns:{dns.get('imageTag', '')}")
        return found
    return list(_walk_images(body))


def check_images(docs: list[Doc], reg: Registry, registry: str, arches: tuple[Arch, ...]) -> list[str]:
    """Problems with the images the documents reference (empty when all is well)."""
    problems = []
    seen: dict[str, list[str]] = {}
    for doc in docs:
        for ref in images_of(doc):
            seen.setdefault(ref, []).append(doc.where)
    for ref, where in sorted(seen.items()):
        if not ref.startswith(registry + "/"):
            problems.append(f"{ref}: not in {registry} (used by {where[0]})")
            continue
        repo, tag = split_ref(ref, registry)
        try:
            manifest = reg.get_manifest(repo, tag)
        except KubemipsError as exc:
            problems.append(f"{ref}: {exc}")
            continue
        if manifest is None:
            problems.append(f"{ref}: missing for {', '.join(a.platform for a in arches)} (used by {where[0]})")
            continue
        if not manifest.is_list:
            problems.append(f"{ref}: a single-arch image, not a list: missing for the other arches")
            continue
        platforms = {(m.get("platform") or {}).get("architecture") for m in manifest.doc.get("manifests", [])}
        missing = [a.platform for a in arches if a.oci not in platforms]
        if missing:
            problems.append(f"{ref}: missing for {', '.join(missing)} (used by {where[0]})")
    return problems


def cluster_images(root: Path, registry: str, k8s: str, catalog: Catalog) -> list[str]:
    """Every image a cluster of that version needs, as the rendered manifests name them."""
    refs: list[str] = []
    for name, text in render(root, registry, k8s, catalog).items():
        for i, body in enumerate(yaml.safe_load_all(text)):
            if isinstance(body, dict):
                refs += images_of(Doc(Path(name), i, body))
    return sorted(set(refs))


def verify_dir(directory: Path, reg: Registry, registry: str, arches: tuple[Arch, ...]) -> None:
    """Schema-check every document and check every image it references is a full list;
    prints what it found, fails naming how many problems there were."""
    docs = load_dir(directory)
    problems = [p for doc in docs for p in k8sschema.validate(doc.body, doc.where)]
    image_problems = check_images(docs, reg, registry, arches)
    images = sorted({ref for doc in docs for ref in images_of(doc)})
    log.print_block(
        f"{len(docs)} documents in {directory}, {len(images)} images, arches {', '.join(a.name for a in arches)}"
    )
    for text in problems + image_problems:
        log.print_block(f"  - {text}")
    if problems or image_problems:
        raise KubemipsError(
            f"{len(problems)} schema problem(s) and {len(image_problems)} image problem(s) in {directory}"
        )
    log.print_block("all documents valid; every image is in the registry for every arch")
