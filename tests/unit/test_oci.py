import gzip
import io
import json
import tarfile
from pathlib import Path

from kubemips import oci
from kubemips.arch import parse_arch
from kubemips.build import input_key


def layer(tmp_path: Path, files: list[oci.FileEntry], epoch: int = 1700000000) -> oci.Layer:
    return oci.BlobStore(tmp_path / "store").write_layer(oci.FilesLayer(files, epoch))


def test_files_layer_is_deterministic_and_order_independent(tmp_path: Path) -> None:
    a = oci.FileEntry("/usr/bin/tool", b"binary", 0o755)
    b = oci.FileEntry("/etc/tool.conf", b"conf")
    one = layer(tmp_path / "1", [a, b])
    two = layer(tmp_path / "2", [b, a])
    assert one.blob.digest == two.blob.digest and one.diff_id == two.diff_id
    assert one.blob.path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime field is zero
    assert layer(tmp_path / "3", [a, b], epoch=1).blob.digest != one.blob.digest


def test_files_layer_content(tmp_path: Path) -> None:
    lay = layer(tmp_path, [oci.FileEntry("/pause", b"x" * 10, 0o755)])
    raw = gzip.decompress(lay.blob.path.read_bytes())
    assert input_key({}) != lay.diff_id  # sanity: distinct things hash differently
    assert oci.sha256_digest(raw) == lay.diff_id
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode, member.uid, member.mtime) == ("pause", 0o755, 0, 1700000000)


def test_normalized_tar_clamps_and_drops_devices(tmp_path: Path) -> None:
    src = tmp_path / "src.tar"
    with tarfile.open(src, "w") as tar:
        for name, kind in (("./", tarfile.DIRTYPE), ("./dev/", tarfile.DIRTYPE), ("./dev/null", tarfile.CHRTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mtime = 2000000000
            tar.addfile(info)
        info = tarfile.TarInfo("./etc/hostname")
        info.size = 3
        info.mtime = 2000000000
        tar.addfile(info, io.BytesIO(b"abc"))
        link = tarfile.TarInfo("./etc/hostlink")
        link.type = tarfile.LNKTYPE
        link.linkname = "./etc/hostname"
        tar.addfile(link)
    lay = oci.BlobStore(tmp_path / "store").write_layer(oci.NormalizedTar(src, 1700000000))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(lay.blob.path.read_bytes()))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["dev", "etc/hostname", "etc/hostlink"]
    assert members["etc/hostname"].mtime == 1700000000  # clamped down
    assert members["etc/hostlink"].mtime == 0  # older times are kept
    assert members["etc/hostlink"].linkname == "etc/hostname"


def test_image_config_overlays_base(tmp_path: Path) -> None:
    arch = parse_arch("mips64le")
    base = oci.image_config(
        arch,
        diff_ids=["sha256:aa"],
        spec=oci.ImageSpec(env=["PATH=/bin", "A=1"], cmd=["/bin/sh"], labels={"x": "1"}),
        epoch=0,
        history=["base"],
    )
    child = oci.image_config(
        arch,
        diff_ids=["sha256:bb"],
        spec=oci.ImageSpec(env=["A=2"], entrypoint=["/app"], labels={"y": "2"}),
        epoch=0,
        history=["child"],
        base_config=base,
    )
    assert child["architecture"] == "mips64le" and "variant" not in child
    assert child["rootfs"]["diff_ids"] == ["sha256:aa", "sha256:bb"]
    assert child["config"]["Env"] == ["PATH=/bin", "A=2"]
    assert child["config"]["Entrypoint"] == ["/app"] and "Cmd" not in child["config"]
    assert child["config"]["Labels"] == {"x": "1", "y": "2"}
    assert [h["created_by"] for h in child["history"]] == ["base", "child"]


def test_manifest_list_sorted_and_canonical() -> None:
    amd, mips = parse_arch("amd64"), parse_arch("mips64el")
    one = oci.manifest_list([oci.ListEntry(mips, "sha256:m", 2), oci.ListEntry(amd, "sha256:a", 1)])
    two = oci.manifest_list([oci.ListEntry(amd, "sha256:a", 1), oci.ListEntry(mips, "sha256:m", 2)])
    assert oci.canonical_json(one) == oci.canonical_json(two)
    assert one["mediaType"] == oci.MANIFEST_LIST
    assert [m["platform"] for m in one["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "mips64le", "os": "linux"},
    ]
    assert json.loads(oci.canonical_json(one)) == one


def test_input_key_is_stable_and_sensitive() -> None:
    doc = {"b": [1, 2], "a": {"z": "1", "y": "2"}}
    assert input_key(doc) == input_key({"a": {"y": "2", "z": "1"}, "b": [1, 2]})
    assert input_key(doc) != input_key({**doc, "b": [2, 1]})
    assert input_key(doc).startswith("sha256:") and len(input_key(doc)) == 71
