"""debian-base and pause, built for both arches through `invoke build`, read back with
skopeo, run with the docker CLI under QEMU, rebuilt for reproducibility, re-run warm."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from .conftest import Built, Cli, docker, skopeo_raw

pytestmark = pytest.mark.integration


def platforms(raw_list: str) -> dict[str, str]:
    doc = json.loads(raw_list)
    return {m["platform"]["architecture"]: m["digest"] for m in doc["manifests"]}


def test_pause_list_holds_both_arches(built_pause: Built, cli: Cli) -> None:
    # Another test module may have built it first in this session: then it is cached.
    for arch in ("amd64", "mips64el"):
        image = built_pause.image("pause", arch)
        assert (image["status"], image["smoke"]) in (("built", "pass"), ("cached", "cached"))
    assert built_pause.list("pause")["status"] in ("published", "unchanged")
    assert "manifest list" in built_pause.proc.stdout and f"{cli.registry}/pause:3.1" in built_pause.proc.stdout
    ref = f"{cli.registry}/pause:3.1"
    children = platforms(skopeo_raw(ref))
    assert children == {
        "amd64": built_pause.image("pause", "amd64")["digest"],
        "mips64le": built_pause.image("pause", "mips64el")["digest"],
    }
    for oci_arch, digest in children.items():
        config = json.loads(skopeo_raw(f"{cli.registry}/pause@{digest}", config=True))
        assert (config["os"], config["architecture"]) == ("linux", oci_arch)
        assert config["config"]["Entrypoint"] == ["/pause"]
        assert config["config"]["Labels"]["org.kubemips.inputs"].startswith("sha256:")
    # the per-arch tag is the list's child
    per_arch = skopeo_raw(f"{cli.registry}/pause:3.1-linux-mips64le")
    assert "sha256:" + __import__("hashlib").sha256(per_arch.encode()).hexdigest() == children["mips64le"]


@pytest.mark.parametrize("platform", ["linux/mips64le", "linux/amd64"])
def test_pause_prints_version_on_each_arch(built_pause: Built, cli: Cli, platform: str) -> None:
    out = docker("run", "--rm", "--pull", "always", "--platform", platform, f"{cli.registry}/pause:3.1", "-v")
    assert out.stdout.strip() == "pause.c v3.1"


@pytest.mark.parametrize("platform", ["linux/mips64le", "linux/amd64"])
def test_pause_exits_cleanly_on_sigterm(built_pause: Built, cli: Cli, platform: str) -> None:
    cid = docker("run", "-d", "--network", "host", "--platform", platform, f"{cli.registry}/pause:3.1").stdout.strip()
    try:
        time.sleep(1)
        assert docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
        began = time.monotonic()
        docker("kill", "--signal", "TERM", cid)
        assert docker("wait", cid, timeout=30).stdout.strip() == "0"
        assert time.monotonic() - began < 10
        assert "shutting down" in docker("logs", cid).stderr
    finally:
        docker("rm", "-f", cid, check=False)


def test_pause_reaps_orphans(built_pause: Built, built_base: Built, cli: Cli) -> None:
    """An orphan reparented to pause (PID 1) must not stay a zombie."""
    cid = docker("run", "-d", "--network", "host", f"{cli.registry}/pause:3.1").stdout.strip()
    try:
        base = f"{cli.registry}/debian-base:1.0.0"
        # `sh` exits at once; its background `sleep` is orphaned and reparented to PID 1.
        docker("run", "--rm", "--pid", f"container:{cid}", base, "sh", "-c", "sleep 1 & exit 0")
        time.sleep(3)
        states = docker(
            "run", "--rm", "--pid", f"container:{cid}", base, "sh", "-c",
            'for f in /proc/[0-9]*/stat; do read -r line < $f && echo "$line"; done',
        ).stdout  # fmt: skip
        procs = [re.match(r"(\d+) \((.*)\) (\S)", line) for line in states.splitlines()]
        table = [(m.group(1), m.group(2), m.group(3)) for m in procs if m]
        assert ("1", "pause", "S") in table
        assert not [p for p in table if p[2] == "Z"], table
    finally:
        docker("rm", "-f", cid, check=False)


def test_debian_base_both_arches(built_base: Built, cli: Cli) -> None:
    for arch in ("amd64", "mips64el"):
        image = built_base.image("debian-base", arch)
        assert (image["status"], image["smoke"]) in (("built", "pass"), ("cached", "cached"))
        assert 10 * 2**20 < image["size"] < 80 * 2**20
    assert set(platforms(skopeo_raw(f"{cli.registry}/debian-base:1.0.0"))) == {"amd64", "mips64le"}
    out = docker(
        "run", "--rm", "--platform", "linux/mips64le", f"{cli.registry}/debian-base:1.0.0",
        "sh", "-c", "uname -m; dpkg --print-architecture; ls /usr/share/man 2>/dev/null | wc -l; "
        "find /usr/share/doc -type f ! -name copyright | wc -l; apt-get --version | head -n1 | cut -d' ' -f1; "
        "readlink /bin; dpkg-query -W -f '${db:Status-Status}\\n' usr-is-merged; "
        "dpkg -l | grep -c '^ii  \\(usrmerge\\|perl\\) ' || true",
    ).stdout.split()  # fmt: skip
    # merged /usr from the usr-is-merged package, not usrmerge (which pulls in perl)
    assert out == ["mips64", "mips64el", "0", "0", "apt", "usr/bin", "installed", "0"]


def test_warm_run_is_a_noop_in_seconds(built_pause: Built, built_base: Built, cli: Cli) -> None:
    warm = cli.build("--what", "debian-base,pause")
    assert {(i["status"], i["smoke"]) for i in warm.report["images"]} == {("cached", "cached")}
    assert [entry["status"] for entry in warm.report["lists"]] == ["unchanged", "unchanged"]
    assert warm.elapsed < 15, f"warm run took {warm.elapsed:.1f}s"


def test_rebuild_gives_identical_digests(built_pause: Built, built_base: Built, cli: Cli, tmp_path: Path) -> None:
    """Same inputs, a fresh cache, --force: the very same digests."""
    again = cli.build(
        "--what", "pause,debian-base", "--arch", "amd64", "--force", "--no-smoke",
        env={"KUBEMIPS_CACHE": str(tmp_path / "fresh-cache")},
    )  # fmt: skip
    for name, first in (("pause", built_pause), ("debian-base", built_base)):
        assert again.image(name, "amd64")["status"] == "built"
        assert again.image(name, "amd64")["digest"] == first.image(name, "amd64")["digest"]


def test_dry_run_prints_plan_and_touches_nothing(cli: Cli) -> None:
    proc = cli.invoke(
        "build", "--dry-run", "--what", "pause,debian-base", "--arch", "mips64le", env={"REGISTRY": "127.0.0.1:1"}
    )
    lines = [line for line in proc.stdout.splitlines() if re.match(r"\s+\d+\.", line)]
    assert [line.split()[2] for line in lines] == [
        "127.0.0.1:1/pause:3.1-linux-mips64le",
        "127.0.0.1:1/pause:3.1",
        "127.0.0.1:1/debian-base:1.0.0-linux-mips64le",
        "127.0.0.1:1/debian-base:1.0.0",
    ]
    assert "nothing built" in proc.stdout


def test_arch_view_names_one_arch_and_runs_it_without_platform(built_pause: Built, cli: Cli) -> None:
    """The registry's per-arch view (what a mips64el cluster's test pods pull): the view's
    tag is the very manifest of the per-arch tag, and an amd64 engine pulling it by name
    alone, as the kubelet does, gets and runs the mips64le image."""
    from kubemips import archview
    from kubemips.arch import parse_arch
    from kubemips.registry import Registry

    reg = Registry(cli.registry, plain_http=True)
    mips = parse_arch("mips64el")
    first = archview.publish(reg, [("pause", "3.1"), ("pause", "0.0-never-built")], mips)
    assert first.missing == ["pause:0.0-never-built"]
    assert first.published + first.current == ["pause:3.1"]
    again = archview.publish(reg, [("pause", "3.1")], mips)
    assert again.current == ["pause:3.1"] and not again.published
    view = f"{archview.registry_of(cli.registry, mips)}/pause:3.1"
    assert skopeo_raw(view) == skopeo_raw(f"{cli.registry}/pause:3.1-linux-mips64le")
    docker("pull", view)
    assert docker("image", "inspect", "-f", "{{.Architecture}}", view).stdout.strip() == "mips64le"
    assert docker("run", "--rm", view, "-v").stdout.strip() == "pause.c v3.1"
