"""The registry client against a real distribution registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubemips import oci
from kubemips.arch import parse_arch
from kubemips.errors import RegistryError, VerifyError
from kubemips.registry import Registry
from kubemips.verify import verify_image, verify_list

from .conftest import free_port


def _image(store: oci.BlobStore, reg: Registry, name: str, payload: bytes, arch: str) -> tuple[bytes, str]:
    a = parse_arch(arch)
    layer = store.write_layer(oci.FilesLayer([oci.FileEntry("/data", payload)], 0))
    config = store.put_bytes(
        oci.canonical_json(oci.image_config(a, diff_ids=[layer.diff_id], spec=oci.ImageSpec(), epoch=0, history=["t"])),
        oci.CONFIG,
    )
    assert reg.push_blob(name, layer.blob) is True
    assert reg.push_blob(name, layer.blob) is False  # HEAD finds it: no second upload
    reg.push_blob(name, config)
    raw = oci.canonical_json(oci.image_manifest(config, [layer.blob.descriptor()]))
    return raw, reg.put_manifest(name, oci.sha256_digest(raw), raw, oci.MANIFEST)


def test_push_verify_list_roundtrip(registry: Registry, tmp_path: Path) -> None:
    store = oci.BlobStore(tmp_path)
    raw_a, dig_a = _image(store, registry, "roundtrip", b"a", "amd64")
    raw_m, dig_m = _image(store, registry, "roundtrip", b"m", "mips64el")
    assert verify_image(registry, "roundtrip", dig_m, parse_arch("mips64el")) > 0
    with pytest.raises(VerifyError, match="config says linux/amd64, expected linux/mips64le"):
        verify_image(registry, "roundtrip", dig_a, parse_arch("mips64el"))
    lst = oci.canonical_json(
        oci.manifest_list(
            [
                oci.ListEntry(parse_arch("amd64"), dig_a, len(raw_a)),
                oci.ListEntry(parse_arch("mips64el"), dig_m, len(raw_m)),
            ]
        )
    )
    registry.put_manifest("roundtrip", "v1", lst, oci.MANIFEST_LIST)
    children = verify_list(registry, "roundtrip", "v1", [parse_arch("amd64"), parse_arch("mips64el")])
    assert children == {parse_arch("amd64"): dig_a, parse_arch("mips64el"): dig_m}
    assert "v1" in registry.tags("roundtrip")


def test_list_with_missing_child_is_refused_by_registry(registry: Registry) -> None:
    ghost = "sha256:" + "0" * 64
    lst = oci.canonical_json(oci.manifest_list([oci.ListEntry(parse_arch("amd64"), ghost, 10)]))
    with pytest.raises(RegistryError, match="400"):
        registry.put_manifest("orphan", "v1", lst, oci.MANIFEST_LIST)
    assert registry.get_manifest("orphan", "v1") is None


def test_cross_repository_mount(registry: Registry, tmp_path: Path) -> None:
    store = oci.BlobStore(tmp_path)
    blob = store.put_bytes(b"shared layer bytes", oci.LAYER)
    registry.push_blob("mount-src", blob)
    assert not registry.has_blob("mount-dst", blob.digest)
    registry.mount_blob("mount-dst", blob.digest, "mount-src")
    assert registry.has_blob("mount-dst", blob.digest)
    assert registry.get_blob("mount-dst", blob.digest) == b"shared layer bytes"


def test_namespace_prefix(registry_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(f"{registry_server.listen}/e2e-test-images", plain_http=True)
    blob = oci.BlobStore(tmp_path).put_bytes(b"x", oci.LAYER)
    reg.push_blob("agnhost", blob)
    assert "e2e-test-images/agnhost" in set(reg.catalog())
    assert reg.ref("agnhost", "2.6") == f"{registry_server.listen}/e2e-test-images/agnhost:2.6"


def test_unreachable_registry_is_a_clear_error() -> None:
    reg = Registry(f"127.0.0.1:{free_port()}", plain_http=True)
    with pytest.raises(RegistryError, match="not reachable"):
        reg.ping()
