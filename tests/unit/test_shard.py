import json
from pathlib import Path

import pytest

from kubemips import shard
from kubemips.arch import parse_arches
from kubemips.catalog import load_catalog
from kubemips.errors import ConfigError

from .helpers import simple, write_component

REPO = Path(__file__).resolve().parents[2]


def test_matrix_stages_follow_the_from_graph() -> None:
    catalog = load_catalog(REPO)
    m = shard.matrix(catalog, ["hyperkube", "pause"], parse_arches("amd64,mips64el"))
    entries = {(e["what"], e["arch"]): e for e in m["include"]}
    assert set(entries) == {
        (name, arch)
        for name in ("debian-base", "hyperkube-base", "hyperkube", "pause")
        for arch in ("amd64", "mips64el")
    }
    assert entries[("debian-base", "mips64el")]["stage"] == 0
    assert entries[("pause", "amd64")]["stage"] == 0
    assert entries[("hyperkube-base", "amd64")]["stage"] == 1
    assert entries[("hyperkube", "mips64el")]["stage"] == 2
    assert entries[("hyperkube", "mips64el")]["platform"] == "linux/mips64le"
    assert [e["stage"] for e in m["include"]] == sorted(e["stage"] for e in m["include"])
    only = shard.matrix(catalog, ["hyperkube"], parse_arches("mips64el"), stage=1)
    assert [(e["what"], e["arch"]) for e in only["include"]] == [("hyperkube-base", "mips64el")]
    assert entries[("pause", "amd64")]["runner"] == shard.DEFAULT_RUNNER
    assert entries[("pause", "amd64")]["id"] == "pause-amd64"
    (mips,) = parse_arches("mips64el")
    native = shard.matrix(catalog, ["pause"], parse_arches("amd64,mips64el"), runners={mips: "mips-box"})
    assert {e["arch"]: e["runner"] for e in native["include"]} == {
        "amd64": shard.DEFAULT_RUNNER,
        "mips64el": "mips-box",
    }


def test_github_output_has_a_line_per_stage(tmp_path: Path) -> None:
    full = shard.matrix(load_catalog(REPO), ["hyperkube"], parse_arches("amd64"))
    out = tmp_path / "github-output"
    shard.write_github_output(out, full, 3)
    lines = out.read_text().splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["stage0", "stage1", "stage2"]
    assert json.loads(lines[2].split("=", 1)[1])["include"][0]["what"] == "hyperkube"
    with pytest.raises(ConfigError, match="needs 3 stages but the workflow has 2"):
        shard.write_github_output(out, full, 2)


def test_records_roundtrip_and_reject_garbage(tmp_path: Path) -> None:
    rec = shard.Record("volume/nfs", "mips64el", "linux/mips64le", "sha256:" + "a" * 64, 10, "1.0", "127.0.0.1:5000")
    path = shard.write_record(tmp_path, rec)
    assert path.name == "volume_nfs@mips64el.json"
    assert shard.read_records(tmp_path) == [rec]
    (tmp_path / "bad.json").write_text(json.dumps({"image": "x"}))
    with pytest.raises(ConfigError, match="bad.json: not a digest record"):
        shard.read_records(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        shard.read_records(tmp_path / "nope")


def test_stages_of_a_chain(tmp_path: Path) -> None:
    write_component(tmp_path, "a", simple("a"))
    write_component(tmp_path, "b", simple("b", base="a"))
    write_component(tmp_path, "c", simple("c", base="b"))
    catalog = load_catalog(tmp_path)
    assert shard.stages(catalog, ["c"]) == {"a": 0, "b": 1, "c": 2}


def test_incomplete_images_are_named_with_the_missing_platforms() -> None:
    amd64, mips = parse_arches("amd64,mips64el")

    def rec(image: str, arch: str) -> shard.Record:
        return shard.Record(image, arch, "", "sha256:" + "a" * 64, 1, "1.0", "r:5000")

    by_image = {
        "pause": {amd64: rec("pause", "amd64"), mips: rec("pause", "mips64el")},
        "etcd": {amd64: rec("etcd", "amd64")},
    }
    assert shard.incomplete(by_image, (amd64, mips)) == {"etcd": "etcd lacks linux/mips64le"}
    assert shard.incomplete(by_image, (amd64,)) == {}
