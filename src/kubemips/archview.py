"""Per-arch views of the registry: ``REGISTRY/linux-ARCH/NAME:TAG`` is NAME:TAG for one arch.

The e2e suite names its images ``{registry}/NAME:TAG`` (the registry from
KUBE_TEST_REPO_LIST) and the kubelet hands that reference to the Docker engine, which picks
its own platform from a manifest list and keeps one local tag per name.  So on an amd64
machine a list can only ever give amd64 workloads, and a smoke check of another arch on the
same engine can swap a local tag under a running test.  In a view each tag is the single
manifest of one arch (the very bytes of the per-arch tag ``NAME:TAG-linux-ARCH``, so the same
digest): the reference itself says the arch.  An amd64 engine pulling
``REGISTRY/linux-mips64le/agnhost:2.6`` gets the mips64le image and runs it under QEMU.

Views are made inside the registry (blobs mounted across repositories, nothing downloaded),
only from per-arch tags, which the build moves only to verified images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .arch import Arch
from .errors import RegistryError
from .registry import Registry


def prefix(arch: Arch) -> str:
    """The repository prefix of the arch's view (``linux-mips64le``)."""
    return arch.tag_suffix


def registry_of(registry: str, arch: Arch) -> str:
    """What KUBE_TEST_REPO_LIST names as the registry of the arch's view."""
    return f"{registry}/{prefix(arch)}"


@dataclass
class ViewResult:
    published: list[str] = field(default_factory=list)
    """NAME:TAG newly pointed (or re-pointed) at the arch's image."""
    current: list[str] = field(default_factory=list)
    """NAME:TAG already right."""
    missing: list[str] = field(default_factory=list)
    """NAME:TAG whose per-arch tag the registry lacks (not built for the arch)."""


def publish(reg: Registry, images: Iterable[tuple[str, str]], arch: Arch) -> ViewResult:
    """Point ``linux-ARCH/NAME:TAG`` at ``NAME:TAG-linux-ARCH`` for every (NAME, TAG)."""
    result = ViewResult()
    for repo, tag in dict.fromkeys(images):
        ref = f"{repo}:{tag}"
        source = reg.get_manifest(repo, arch.tag_for(tag))
        if source is None or source.is_list:
            result.missing.append(ref)
            continue
        dest = f"{prefix(arch)}/{repo}"
        present = reg.get_manifest(dest, tag)
        if present is not None and present.digest == source.digest:
            result.current.append(ref)
            continue
        doc = source.doc
        for desc in [doc["config"], *doc.get("layers", [])]:
            reg.mount_blob(dest, desc["digest"], repo)
        got = reg.put_manifest(dest, tag, source.raw, source.media_type)
        if got != source.digest:
            raise RegistryError(f"{reg.ref(dest, tag)}: the registry stored {got}, not {source.digest}")
        result.published.append(ref)
    return result
