"""`kubemips bench` as a user runs it: real builds into its own throwaway registry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import BIN, REPO, Cli

pytestmark = pytest.mark.integration


def test_bench_cold_warm_incremental_on_pause(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cache = tmp_path / "cache"
    argv = [str(BIN / "kubemips"), "bench", "--what", "pause", "--arch", "amd64,mips64el", "--out", str(out)]
    argv += ["--cases", "cold,warm,incremental"]
    proc = subprocess.run(
        argv, cwd=REPO, env=cli.environ({"KUBEMIPS_CACHE": str(cache)}), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    statuses = {name: [i["status"] for i in case["images"]] for name, case in doc["cases"].items()}
    assert statuses == {"cold": ["built", "built"], "warm": ["cached", "cached"], "incremental": ["built", "built"]}
    cold = {i["arch"]: i for i in doc["cases"]["cold"]["images"]}
    # The phases add up to each image's time; cross-compiled C is native work, and it ran.
    for img in cold.values():
        assert abs(sum(img["phases"].values()) - img["seconds"]) < 0.05
        assert img["phases"]["native"] > 0 and img["phases"]["smoke"] > 0 and "emulated" not in img["phases"]
    # The changed source gave new digests; the checkout itself was not touched.
    incremental = {i["arch"]: i["digest"] for i in doc["cases"]["incremental"]["images"]}
    assert all(incremental[a] != cold[a]["digest"] for a in cold)
    assert "changed by the benchmark" not in (REPO / "components" / "pause" / "pause.c").read_text()
    assert "incremental (components/pause/pause.c changed) rebuilt: pause/amd64, pause/mips64el" in proc.stdout
    # Nothing of the run is left: its registry stopped, its directory gone.
    assert list((cache / "bench").iterdir()) == []
