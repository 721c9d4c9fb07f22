"""Image assembly without a daemon: deterministic layers, configs, manifests and lists.

Layers are tar streams written in a fixed order with owners, modes and mtimes pinned
(mtimes clamped to SOURCE_DATE_EPOCH) and gzip headers without a timestamp, so the same
inputs always give the same digests.  JSON documents are serialized canonically (sorted
keys, no spaces) for the same reason.  Media types are Docker's schema 2, which every
Docker engine, containerd and registry of the era understands, and which is also what
``docker push`` produces for images built with a Dockerfile: lists never mix the two.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Protocol, cast

from . import timing
from .arch import Arch
from .errors import file_error

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

GZIP_LEVEL = 1
"""Layers are compressed fast: measured on httpd's 106 MiB package layer, level 1 took
4.0 s and 37.2 MiB, level 6 (gzip's default) 13.0 s and 33.6 MiB.  Compression was a
sixth of a cold build's image time; 10% larger blobs on a local registry cost less.
Part of the digests: a change bumps ``ASSEMBLY_VERSION``."""
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ALL_MANIFEST_TYPES = (MANIFEST, MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
LIST_TYPES = (MANIFEST_LIST, OCI_INDEX)

LABEL_PREFIX = "org.kubemips"
INPUTS_LABEL = f"{LABEL_PREFIX}.inputs"
"""Config label holding the digest of every input of a build: the skip key."""


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def iso_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Blob:
    """A content-addressed file in the local blob store."""

    digest: str
    size: int
    path: Path
    media_type: str

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Layer:
    blob: Blob
    diff_id: str


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


class _HashingWriter:
    """File-like sink that hashes and counts what passes through to ``target``."""

    def __init__(self, target: _Sink | None) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.target is not None:
            self.target.write(data)
        return len(data)

    def flush(self) -> None:
        if self.target is not None:
            self.target.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class BlobStore:
    """Content-addressed local store: ``<root>/sha256/<hex>``; writes are atomic renames.

    A blob is written under ``tmp/`` and renamed into place only when complete, so a run
    killed mid-write leaves at most a file in ``tmp/`` that nothing trusts; such leftovers
    untouched for :attr:`STALE_AFTER` seconds are removed when a store is opened.  A write
    that fails (a full disk) removes its partial file and names it in the error.
    """

    STALE_AFTER = 3600.0
    """Seconds after which a temporary file cannot be a write still in progress."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            (root / "sha256").mkdir(parents=True, exist_ok=True)
            (root / "tmp").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise file_error(exc, root, doing="creating the blob cache") from None
        self._remove_stale()

    def _remove_stale(self) -> None:
        cutoff = time.time() - self.STALE_AFTER
        for leftover in (self.root / "tmp").iterdir():
            with contextlib.suppress(OSError):
                if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        return self.root / algo / hexpart

    def put_bytes(self, data: bytes, media_type: str) -> Blob:
        digest = sha256_digest(data)
        path = self.path(digest)
        if not path.exists():
            tmp = self.root / "tmp" / f"{digest[7:]}.{id(data)}"
            try:
                tmp.write_bytes(data)
                tmp.replace(path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise file_error(exc, tmp, doing="writing a blob to the cache") from None
        return Blob(digest, len(data), path, media_type)

    def gzip_stream(self, source: IO[bytes]) -> Layer:
        """Compress an existing (uncompressed) layer tar into the store."""
        return self._write(lambda sink: shutil.copyfileobj(source, cast(IO[bytes], sink), 1 << 20))

    def write_layer(self, fill: LayerFiller) -> Layer:
        """Stream a tar built by ``fill`` through gzip into the store."""

        def emit(sink: _HashingWriter) -> None:
            with tarfile.open(fileobj=cast(IO[bytes], sink), mode="w|", format=tarfile.PAX_FORMAT) as tar:
                fill(tar)

        with timing.phase("layers"):
            return self._write(emit)

    def _write(self, emit: Callable[[_HashingWriter], object]) -> Layer:
        tmp_path: Path | None = None
        try:
            with tempfile.NamedTemporaryFile(dir=self.root / "tmp", delete=False) as raw:
                tmp_path = Path(raw.name)
                compressed = _HashingWriter(raw)
                gzip_sink = cast(IO[bytes], compressed)
                with gzip.GzipFile(fileobj=gzip_sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0, filename="") as gz:
                    uncompressed = _HashingWriter(gz)
                    emit(uncompressed)
            path = self.path(compressed.digest)
            tmp_path.replace(path)
        except BaseException as exc:
            if tmp_path is not None:
                tmp_path.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.filename is None:
                # A failed write() names no file: name the one being written.
                raise file_error(exc, tmp_path or self.root / "tmp", doing="writing a layer to the cache") from None
            raise
        return Layer(Blob(compressed.digest, compressed.size, path, LAYER), uncompressed.digest)


class LayerFiller:
    """Protocol-ish base: something that writes entries into an open tar stream."""

    def __call__(self, tar: tarfile.TarFile) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class FileEntry:
    """One file to place in a synthetic layer."""

    path: str  # absolute path inside the image
    data: bytes
    mode: int = 0o644
    link: str = ""
    """A symbolic link to this target instead of a file (``data`` is then empty)."""


class FilesLayer(LayerFiller):
    """A layer from in-memory files: parent directories added, everything root-owned."""

    def __init__(self, files: Sequence[FileEntry], epoch: int) -> None:
        self.files = sorted(files, key=lambda f: f.path)
        self.epoch = epoch

    def __call__(self, tar: tarfile.TarFile) -> None:
        dirs: set[str] = set()
        for entry in self.files:
            parts = entry.path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    tar.addfile(self._info(d + "/", tarfile.DIRTYPE, 0o755, 0))
            if entry.link:
                info = self._info("/".join(parts), tarfile.SYMTYPE, 0o777, 0)
                info.linkname = entry.link
                tar.addfile(info)
                continue
            info = self._info("/".join(parts), tarfile.REGTYPE, entry.mode, len(entry.data))
            tar.addfile(info, io.BytesIO(entry.data))

    def _info(self, name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.size = size
        info.mtime = self.epoch
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info


class NormalizedTar(LayerFiller):
    """Re-emit an existing rootfs tar with metadata pinned.

    Keeps the source's entry order (mmdebstrap writes sorted archives, and hard links must
    follow their targets), strips the leading ``./``, drops the root entry and device
    nodes under /dev (the runtime provides /dev), and clamps mtimes to ``epoch``.
    """

    def __init__(self, source: Path, epoch: int) -> None:
        self.source = source
        self.epoch = epoch

    def __call__(self, tar: tarfile.TarFile) -> None:
        with tarfile.open(self.source, mode="r:*") as src:
            for member in src:
                name = member.name.removeprefix("./").rstrip("/")
                if name in ("", "."):
                    continue
                if name.startswith("dev/") and (member.ischr() or member.isblk() or member.isfifo()):
                    continue
                member.name = name
                member.mtime = min(int(member.mtime), self.epoch)
                member.pax_headers = {}
                member.uname = member.uname or ""
                member.gname = member.gname or ""
                if member.islnk():
                    member.linkname = member.linkname.removeprefix("./")
                fileobj = src.extractfile(member) if member.isreg() else None
                tar.addfile(member, fileobj)


@dataclass(frozen=True, kw_only=True)
class ImageSpec:
    """What goes into an image config besides its layers."""

    env: Sequence[str] = ()
    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    workdir: str = ""
    user: str = ""
    labels: Mapping[str, str] = ()  # type: ignore[assignment]
    exposed_ports: Sequence[str] = ()


def container_config(base_cfg: Mapping[str, Any], spec: ImageSpec) -> dict[str, Any]:
    """The ``config`` part of an image config: ``base_cfg`` with ``spec`` laid over it.

    Env entries replace the base's entry of the same name; entrypoint, cmd, workdir and
    user replace the base's when given (a new entrypoint drops the base's cmd, as a
    Dockerfile ENTRYPOINT does); labels and exposed ports add to the base's.
    """
    env = list(base_cfg.get("Env") or [])
    for item in spec.env:
        name = item.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != name] + [item]
    if not env:
        env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    cfg: dict[str, Any] = {k: v for k, v in base_cfg.items() if k not in ("Env", "Labels", "Entrypoint", "Cmd")}
    cfg["Env"] = env
    cfg["Labels"] = {**(base_cfg.get("Labels") or {}), **dict(spec.labels)}
    entrypoint = spec.entrypoint if spec.entrypoint is not None else base_cfg.get("Entrypoint")
    cmd = spec.cmd if spec.cmd is not None else (None if spec.entrypoint is not None else base_cfg.get("Cmd"))
    if entrypoint:
        cfg["Entrypoint"] = list(entrypoint)
    if cmd:
        cfg["Cmd"] = list(cmd)
    if spec.workdir:
        cfg["WorkingDir"] = spec.workdir
    if spec.user:
        cfg["User"] = spec.user
    ports = {**(base_cfg.get("ExposedPorts") or {}), **{p: {} for p in spec.exposed_ports}}
    if ports:
        cfg["ExposedPorts"] = ports
    return {k: v for k, v in cfg.items() if v not in (None, "", [], {}) or k in ("Env", "Labels")}


def image_config(
    arch: Arch,
    *,
    diff_ids: Sequence[str],
    spec: ImageSpec,
    epoch: int,
    history: Sequence[str],
    base_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Docker image config: base config (if any) overlaid with ``spec``."""
    cfg = container_config((base_config or {}).get("config") or {}, spec)
    base_diff_ids = list(((base_config or {}).get("rootfs") or {}).get("diff_ids") or [])
    base_history = list((base_config or {}).get("history") or [])
    doc: dict[str, Any] = {
        "architecture": arch.oci,
        "os": "linux",
        "created": iso_time(epoch),
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": base_diff_ids + list(diff_ids)},
        # Docker matches history entries to layers: entries past the new layers are empty.
        "history": base_history
        + [
            {"created": iso_time(epoch), "created_by": h, **({"empty_layer": True} if i >= len(diff_ids) else {})}
            for i, h in enumerate(history)
        ],
    }
    if arch.variant:
        doc["variant"] = arch.variant
    return doc


def image_manifest(config: Blob, layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A schema 2 manifest from the config blob and layer descriptors (base first)."""
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.descriptor(),
        "layers": [dict(layer) for layer in layers],
    }


@dataclass(frozen=True)
class ListEntry:
    arch: Arch
    digest: str
    size: int
    media_type: str = MANIFEST


def manifest_list(entries: Iterable[ListEntry]) -> dict[str, Any]:
    """A manifest list; entries sorted by platform so the digest does not depend on order."""
    manifests = []
    for entry in sorted(entries, key=lambda e: e.arch.platform):
        platform: dict[str, str] = {"architecture": entry.arch.oci, "os": "linux"}
        if entry.arch.variant:
            platform["variant"] = entry.arch.variant
        manifests.append(
            {"mediaType": entry.media_type, "digest": entry.digest, "size": entry.size, "platform": platform}
        )
    return {"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": manifests}
