"""The benchmark's pure parts: case selection, the tables, comparing two result files."""

import pytest

from kubemips import bench
from kubemips.errors import ConfigError


def _case(wall: float, statuses: list[str], digest: str = "sha256:a") -> dict[str, object]:
    images = [
        {"name": "pause", "arch": arch, "status": status, "digest": digest, "seconds": 2.0,
         "phases": {"emulated": 1.5, "push": 0.5}}
        for arch, status in zip(["amd64", "mips64el"], statuses, strict=True)
    ]  # fmt: skip
    return {"wall": wall, "seconds": wall, "fetch_seconds": 0.25, "images": images}


def test_cases_run_in_table_order_and_warm_needs_cold() -> None:
    assert [c.name for c in bench.parse_cases("serial,cold")] == ["cold", "serial"]
    assert [c.name for c in bench.parse_cases("")] == ["cold", "warm", "incremental", "serial"]
    assert bench.parse_cases("cold")[0].force and bench.parse_cases("serial")[-1].jobs == 1
    with pytest.raises(ConfigError, match="unknown case hot"):
        bench.parse_cases("cold,hot")
    with pytest.raises(ConfigError, match="include cold"):
        bench.parse_cases("warm")


def test_table_sums_phases_and_names_what_the_incremental_case_rebuilt() -> None:
    doc = {
        "machine": {"cores": 2},
        "touched": "components/pause/pause.c",
        "cases": {"cold": _case(10.0, ["built", "built"]), "incremental": _case(3.0, ["built", "cached"])},
    }
    text = bench.table(doc)
    cold = next(line for line in text.splitlines() if line.startswith("cold "))
    assert cold.split()[:6] == ["cold", "10.0s", "2", "0", "0.2s", "3.0s"]  # fetch 0.25, emulated 2 x 1.5
    assert "rebuilt: pause/amd64\n" in text + "\n"


def test_compare_reports_speed_up_and_digest_changes() -> None:
    before = {"cases": {"cold": _case(20.0, ["built", "built"]), "warm": _case(2.0, ["cached", "cached"])}}
    after = {"cases": {"cold": _case(10.0, ["built", "built"]), "warm": _case(2.0, ["cached", "cached"])}}
    text = bench.compare(before, after)
    assert "2.00x" in text and "cold digests: identical" in text
    changed = {"cases": {"cold": _case(10.0, ["built", "built"], digest="sha256:b")}}
    assert "differ for pause/amd64, pause/mips64el" in bench.compare(before, changed)
