"""The embedded registry: started on demand by a build, shown, stopped, and its data kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubemips.localregistry import RegistryServer

from .conftest import Cli, free_port

pytestmark = pytest.mark.integration


def test_build_starts_embedded_registry_then_stop(cli: Cli, tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    conf = tmp_path / "kubemips.toml"
    conf.write_text(f'[registry]\nembedded-listen = "{listen}"\n[paths]\ncache = "{tmp_path / "cache"}"\n')
    env = {"KUBEMIPS_CONFIG": str(conf), "REGISTRY": "", "KUBEMIPS_CACHE": ""}
    server = RegistryServer(listen, tmp_path / "cache" / "registry")
    try:
        status = cli.invoke("registry-status", env=env)
        assert "not answering" in status.stdout
        built = cli.build("--what", "pause", "--arch", "mips64el", env=env)
        assert f"started embedded registry on {listen}" in built.proc.stderr  # progress
        assert built.report["registry"] == listen
        assert server.answers()
        assert set(server.client().tags("pause")) == {"3.1", "3.1-linux-mips64le"}
        assert "answering (pid" in cli.invoke("registry-status", env=env).stdout
        assert "stopped" in cli.invoke("registry-stop", env=env).stdout
        assert not server.answers()
        # Data survives a restart.
        assert "started" in cli.invoke("registry-start", env=env).stdout
        assert "3.1" in server.client().tags("pause")
    finally:
        server.stop()


def test_task_and_session_listings(cli: Cli) -> None:
    tasks = cli.invoke("--list").stdout
    for name in ("build ", "build-pause", "build-debian-base", "registry-start", "verify", "show-config"):
        assert name in tasks
    import subprocess
    import sys

    nox = subprocess.run(
        [sys.executable, "-m", "nox", "-l"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "- pause [components]" in nox and "- debian-base [components]" in nox and "* tests" in nox


def test_verify_task(built_pause, cli: Cli) -> None:  # type: ignore[no-untyped-def]
    out = cli.invoke("verify", "--what", "pause").stdout
    assert f"{cli.registry}/pause:3.1" in out and "amd64, mips64el" in out and "ok" in out
    missing = cli.invoke(
        "verify",
        "--what",
        "debian-base",
        "--arch",
        "amd64",
        env={"REGISTRY": f"{cli.registry}/nothing-here"},
        check=False,
    )
    assert missing.returncode == 1 and "no manifest under this tag" in missing.stdout
