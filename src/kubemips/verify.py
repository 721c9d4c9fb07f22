"""Read back what was published and check it, independently of how it was pushed.

A per-arch image passes when its manifest hashes to its digest, its config blob says the
right os/architecture and has a diff_id per layer, and every blob is present.  A list
passes when its tag resolves to the expected digest, it holds exactly the expected
platforms, and every child passes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from . import log
from .arch import Arch, from_oci
from .errors import KubemipsError, VerifyError
from .plan import Plan
from .registry import Registry


def verify_image(reg: Registry, name: str, digest: str, arch: Arch) -> int:
    """Verify one per-arch image; returns its size (manifest + config + layers)."""
    where = reg.ref(name, digest)
    manifest = reg.get_manifest(name, digest)
    if manifest is None:
        raise VerifyError(f"{where}: manifest missing from the registry")
    if manifest.is_list:
        raise VerifyError(f"{where}: expected an image manifest, found a list")
    doc = manifest.doc
    config = json.loads(reg.get_blob(name, doc["config"]["digest"]))
    got = (config.get("os"), config.get("architecture"), config.get("variant"))
    want = ("linux", arch.oci, arch.variant)
    if got != want:
        raise VerifyError(
            f"{where}: config says {got[0]}/{got[1]}{'/' + got[2] if got[2] else ''}, expected {arch.platform}"
        )
    layers = doc.get("layers", [])
    diff_ids = (config.get("rootfs") or {}).get("diff_ids", [])
    if len(diff_ids) != len(layers):
        raise VerifyError(f"{where}: {len(layers)} layers but {len(diff_ids)} diff_ids in the config")
    size = len(manifest.raw) + int(doc["config"]["size"])
    for layer in layers:
        if not reg.has_blob(name, layer["digest"]):
            raise VerifyError(f"{where}: layer blob {layer['digest']} is missing")
        size += int(layer["size"])
    return size


def child_for(doc: dict[str, Any], arch: Arch) -> str | None:
    """The digest of a manifest list's linux child for ``arch``, if it has one; other
    platforms (a mirror's list may carry more) are passed over, not rejected."""
    for entry in doc.get("manifests", []):
        platform = entry.get("platform") or {}
        found = from_oci(platform.get("architecture", ""), platform.get("variant"))
        if platform.get("os") == "linux" and found == arch:
            return str(entry["digest"])
    return None


def verify_list(
    reg: Registry,
    name: str,
    tag: str,
    arches: Sequence[Arch],
    *,
    expected: str | None = None,
    verified: Collection[str] = (),
) -> dict[Arch, str]:
    """Verify a manifest list by tag; returns arch -> child digest.  A child in
    ``verified`` (read back and checked by the caller in this run) is not read again."""
    where = reg.ref(name, tag)
    manifest = reg.get_manifest(name, tag)
    if manifest is None:
        raise VerifyError(f"{where}: no manifest under this tag")
    if expected is not None and manifest.digest != expected:
        raise VerifyError(f"{where}: tag points at {manifest.digest}, expected {expected}")
    if not manifest.is_list:
        raise VerifyError(f"{where}: expected a manifest list, found {manifest.media_type}")
    children: dict[Arch, str] = {}
    for entry in manifest.doc.get("manifests", []):
        platform = entry.get("platform", {})
        arch = from_oci(platform.get("architecture", ""), platform.get("variant"))
        if arch is None or platform.get("os") != "linux":
            raise VerifyError(f"{where}: unexpected platform {platform}")
        if arch in children:
            raise VerifyError(f"{where}: platform {arch.platform} listed twice")
        children[arch] = entry["digest"]
    missing = [a.platform for a in arches if a not in children]
    if missing:
        raise VerifyError(f"{where}: list lacks {', '.join(missing)}")
    for arch, digest in children.items():
        if digest not in verified:
            verify_image(reg, name, digest, arch)
    return children


def verify_published(reg: Registry, plan: Plan, arches: Sequence[Arch], *, as_json: bool = False) -> None:
    """Verify the published list of every list node of ``plan`` and print a table (or
    JSON); fails naming how many did not pass."""
    rows = []
    records: list[dict[str, Any]] = []
    failed = 0
    for node in plan.nodes:
        if node.id.endswith("/list"):
            name, tag = node.image.repo, node.comp.tag
            try:
                children = verify_list(reg, name, tag, arches)
                rows.append([reg.ref(name, tag), ", ".join(a.name for a in children), "ok"])
                records.append({"ref": reg.ref(name, tag), "arches": [a.name for a in children], "ok": True})
            except KubemipsError as exc:
                failed += 1
                rows.append([reg.ref(name, tag), "-", f"FAILED: {exc}"])
                records.append({"ref": reg.ref(name, tag), "arches": [], "ok": False, "error": str(exc)})
    if as_json:
        log.print_json({"registry": reg.address, "lists": records, "failed": failed})
    else:
        log.print_block(log.table(["manifest list", "arches", "result"], rows))
    if failed:
        raise KubemipsError(f"{failed} list(s) failed verification")
