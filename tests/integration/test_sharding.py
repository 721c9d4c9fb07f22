"""What the images workflow runs, run here: plan, one process per matrix entry pushing by
digest, then merge; a merge with an arch missing; an arch on a second (native) engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubemips.localregistry import RegistryServer

from .conftest import Cli, free_port, skopeo_raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def shard_cli(prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A registry of its own: the merge test must see exactly what the shards pushed."""
    server = RegistryServer(f"127.0.0.1:{free_port()}", tmp_path_factory.mktemp("shard-registry"))
    server.start()
    yield Cli(server.listen, tmp_path_factory.mktemp("shard-cache"))
    server.stop()


def test_matrix_entries_then_merge(shard_cli: Cli, tmp_path: Path) -> None:
    plan = json.loads(shard_cli.invoke("matrix", "--what", "pause,etcd").stdout)
    entries = plan["include"]
    assert {(e["what"], e["arch"]) for e in entries} == {
        (w, a) for w in ("debian-base", "etcd", "pause") for a in ("amd64", "mips64el")
    }
    assert all(e["runner"] and e["id"] for e in entries)
    digests = tmp_path / "digests"
    for entry in sorted(entries, key=lambda e: e["stage"]):
        # Each entry in a process of its own, with the records of earlier stages only.
        shard_cli.invoke(
            "build", "--what", entry["what"], "--arch", entry["arch"], "--push-by-digest", "--digests-dir", str(digests)
        )
    records = sorted(p.name for p in digests.glob("*.json"))
    assert records == [f"{w}@{a}.json" for w in ("debian-base", "etcd", "pause") for a in ("amd64", "mips64el")]
    server = RegistryServer(shard_cli.registry, tmp_path)
    assert server.client().tags("etcd") == []  # sharded builds move no tag

    # One arch's records missing: nothing is published, and the message names what is missing.
    partial = tmp_path / "partial"
    shutil.copytree(digests, partial)
    (partial / "etcd@mips64el.json").unlink()
    proc = shard_cli.invoke("merge", "--digests-dir", str(partial), check=False)
    assert proc.returncode == 1
    assert "etcd lacks linux/mips64le" in proc.stderr and "nothing was published" in proc.stderr
    assert server.client().tags("etcd") == [] and server.client().tags("pause") == []

    merged = shard_cli.invoke("merge", "--digests-dir", str(digests))
    assert "unchanged" not in merged.stdout
    for name, tag in (("debian-base", "1.0.0"), ("etcd", "3.4.23"), ("pause", "3.1")):
        doc = json.loads(skopeo_raw(f"{shard_cli.registry}/{name}:{tag}"))
        assert {m["platform"]["architecture"] for m in doc["manifests"]} == {"amd64", "mips64le"}
    again = shard_cli.invoke("merge", "--digests-dir", str(digests))
    assert "published" not in again.stdout and again.stdout.count("unchanged") >= 3

    # A partial merge is possible when asked for, and says so.
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(digests / "pause@amd64.json", only)
    allowed = shard_cli.invoke("merge", "--digests-dir", str(only), "--allow-partial", "--arch", "amd64,mips64el")
    assert "partial list: pause lacks linux/mips64le" in allowed.stderr  # a warning


def test_sharded_child_without_its_base_is_refused(shard_cli: Cli, tmp_path: Path) -> None:
    proc = shard_cli.invoke(
        "build", "--what", "hyperkube-base", "--arch", "mips64el", "--push-by-digest", "--digests-dir", str(tmp_path),
        env={"REGISTRY": f"{shard_cli.registry}/empty"}, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "base debian-base for mips64el is neither in" in proc.stderr and "stage 0" in proc.stderr


@pytest.fixture
def second_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second dockerd on its own socket and data root (a stand-in for a MIPS machine)."""
    root = Path(tmp_path_factory.mktemp("dockerd2", numbered=True))
    sock = root / "docker.sock"
    log = (root / "dockerd.log").open("w")
    proc = subprocess.Popen(
        [
            "dockerd", "--host", f"unix://{sock}", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"), "--bridge=none", "--iptables=false",
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    import docker

    for _ in range(120):
        try:
            docker.DockerClient(base_url=f"unix://{sock}").ping()
            break
        except Exception:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"second dockerd did not start: {(root / 'dockerd.log').read_text()[-2000:]}")
    yield f"unix://{sock}"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()
    # dockerd leaves its network namespace's bind mount behind; without it the directory
    # can be removed like the rest of the test's files.
    subprocess.run(["umount", str(root / "exec" / "netns" / "default")], capture_output=True, check=False)


def test_arch_on_a_native_engine(shard_cli: Cli, second_engine: str, tmp_path: Path) -> None:
    import docker

    conf = tmp_path / "kubemips.toml"
    conf.write_text(f'[build]\nengines = {{ mips64el = "{second_engine}" }}\n')
    built = shard_cli.build("--what", "etcd", "--arch", "mips64el", "--force", env={"KUBEMIPS_CONFIG": str(conf)})
    etcd = built.image("etcd", "mips64el")
    assert (etcd["status"], etcd["smoke"]) == ("built", "pass")
    remote = docker.DockerClient(base_url=second_engine)
    local = docker.from_env()
    ref = f"{shard_cli.registry}/etcd@{etcd['digest']}"
    # Built, pulled and run on the second engine; the local one never saw it.
    assert any(ref in (img.attrs.get("RepoDigests") or []) for img in remote.images.list())
    assert not any(ref in (img.attrs.get("RepoDigests") or []) for img in local.images.list())
