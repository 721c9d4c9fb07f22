"""Registry-to-registry copy of images the target lacks (``invoke mirror``).

A cluster can start from images another registry already holds.  Each is copied as it
is, by digest (every blob checked on download, each child manifest pushed by digest
before the list that names it, the tag last), so a copied list is byte-identical to its
source and verified like one the project published.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import oci
from .errors import KubemipsError
from .registry import Registry, split_ref
from .verify import verify_list


def copy_missing(
    dest: Registry,
    src: Registry,
    source: str,
    registry: str,
    refs: Sequence[str],
    store: oci.BlobStore,
    *,
    only: Sequence[str] = (),
) -> list[list[str]]:
    """Copy each of ``refs`` (named in ``registry``; with ``only``, those of these
    repositories) that ``dest`` lacks from ``src``; one row (reference, what happened)
    per reference."""
    rows = []
    for ref in refs:
        repo, tag = split_ref(ref, registry)
        if only and repo not in only:
            continue
        if dest.get_manifest(repo, tag) is not None:
            rows.append([ref, "present"])
            continue
        lst = src.get_manifest(repo, tag)
        if lst is None:
            rows.append([ref, f"not in {source} either"])
            continue
        children = [m["digest"] for m in lst.doc.get("manifests", [])] if lst.is_list else []
        for digest in children or [lst.digest]:
            child = src.get_manifest(repo, digest)
            if child is None:
                raise KubemipsError(f"{source}/{repo}@{digest} is listed but missing: not copied")
            for desc in [child.doc["config"], *child.doc.get("layers", [])]:
                if not dest.has_blob(repo, desc["digest"]):
                    data = src.get_blob(repo, desc["digest"])  # checks the digest
                    dest.push_blob(repo, store.put_bytes(data, desc.get("mediaType", oci.LAYER)))
            dest.put_manifest(repo, digest, child.raw, child.media_type)
        dest.put_manifest(repo, lst.digest, lst.raw, lst.media_type)
        dest.put_manifest(repo, tag, lst.raw, lst.media_type)
        if lst.is_list:
            verify_list(dest, repo, tag, [], expected=lst.digest)
        rows.append([ref, f"copied from {source} ({lst.digest[:19]}), verified"])
    return rows
