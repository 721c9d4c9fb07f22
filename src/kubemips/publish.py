"""Publishing a manifest list: the one order every caller follows.

The list is built from its children (already pushed and verified), compared with what
the tag names now, and pushed by digest before its tag moves, so the tag never names a
list the registry does not hold; then it is read back and verified, children included.
Builds (:mod:`kubemips.build`) and sharded merges (:mod:`kubemips.shard`) both publish
through :func:`publish_list`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from . import oci
from .arch import Arch
from .registry import Manifest, Registry
from .verify import verify_list


def publish_list(
    reg: Registry,
    repo: str,
    tag: str,
    entries: Sequence[oci.ListEntry],
    arches: Sequence[Arch],
    existing: Manifest | None,
    *,
    verified: Collection[str] = (),
) -> tuple[str, str]:
    """Publish the list of ``entries`` as ``repo:tag`` unless ``existing`` (what the tag
        names now) is that list already; verify it holds ``arches``.  Returns (digest, status),
        status ``published`` or ``unchanged``.  ``verified``: children the caller has read back
    and checked in this run."""
    raw = oci.canonical_json(oci.manifest_list(entries))
    digest = oci.sha256_digest(raw)
    status = "unchanged" if existing is not None and existing.digest == digest else "published"
    if status == "published":
        reg.put_manifest(repo, digest, raw, oci.MANIFEST_LIST)
        reg.put_manifest(repo, tag, raw, oci.MANIFEST_LIST)
    verify_list(reg, repo, tag, arches, expected=digest, verified=verified)
    return digest, status
