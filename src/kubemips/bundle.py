"""Bundles: files an image keeps in one directory beside their ``SHA256SUMS`` (docker-ce's
.debs, kubernetes-node's binaries), exported per arch from the published images.

Read straight from the registry's layers, so exporting needs no daemon and no emulation,
and every file is checked against the sums the image carries before it is handed out.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import log
from .arch import Arch
from .builders import builder_for
from .catalog import Catalog
from .errors import ConfigError, KubemipsError
from .registry import Registry

SUMS = "SHA256SUMS"


def export_bundles(reg: Registry, catalog: Catalog, what: str, arches: Sequence[Arch], out: Path) -> list[Path]:
    """Export the bundle of each image in WHAT for each arch into ``out/REPO-TAG``."""
    written: list[Path] = []
    for entry in catalog.resolve(what, ()):
        comp, image = catalog.image(entry)
        name = image.repo
        inside = builder_for(comp).bundle(comp).strip("/")
        if not inside:
            raise ConfigError(f'{comp.file}: {name} keeps no bundle (needs [build] bundle = "/path")')
        for arch in arches:
            tag = arch.tag_for(comp.tag)
            manifest = reg.get_manifest(name, tag)
            if manifest is None or manifest.is_list:
                raise KubemipsError(f"{reg.ref(name, tag)} is not in the registry: build it first")
            dest = out / f"{name}-{tag}"
            dest.mkdir(parents=True, exist_ok=True)
            found = _extract(reg, name, manifest.doc["layers"], inside, dest)
            if not found or not (dest / SUMS).exists():
                raise KubemipsError(f"{reg.ref(name, tag)}: no bundle found at /{inside}")
            _check_sums(dest)
            log.result(f"{reg.ref(name, tag)}: {found - 1} files in {dest}, checksums verified")
            written.append(dest)
    return written


def _extract(reg: Registry, repo: str, layers: Sequence[Mapping[str, Any]], inside: str, dest: Path) -> int:
    """Write the regular files directly in ``inside`` (not below it) into ``dest``; how many."""
    found = 0
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(reg.get_blob(repo, layer["digest"])), mode="r:gz") as tar:
            for member in tar:
                path = member.name.removeprefix("./")
                if member.isreg() and path.startswith(inside + "/") and "/" not in path[len(inside) + 1 :]:
                    data = tar.extractfile(member)
                    if data is not None:
                        target = dest / Path(path).name
                        target.write_bytes(data.read())
                        target.chmod(member.mode & 0o755)
                        found += 1
    return found


def _check_sums(dest: Path) -> None:
    """Every file ``SHA256SUMS`` names hashes to its line (a bundle is handed out whole)."""
    for line in (dest / SUMS).read_text().splitlines():
        digest, _, filename = line.partition("  ")
        if hashlib.sha256((dest / filename).read_bytes()).hexdigest() != digest:
            raise KubemipsError(f"{dest / filename}: checksum does not match SHA256SUMS")
