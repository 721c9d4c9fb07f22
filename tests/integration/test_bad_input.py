"""Bad input ends in one clear message, a non-zero exit and nothing half-published."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from kubemips.localregistry import RegistryServer
from kubemips.registry import Registry

from .conftest import BIN, REPO, Cli, free_port

pytestmark = pytest.mark.integration


def test_unknown_what(cli: Cli) -> None:
    proc = cli.invoke("build", "--what", "pause,pase", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown image 'pase' in WHAT; `invoke images` lists them. Perhaps you meant 'pause'?"
    ]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_unknown_arch(cli: Cli) -> None:
    proc = cli.invoke("build", "--what", "pause", "--arch", "amd64,mips", check=False)
    assert proc.returncode == 2
    assert "unknown architecture 'mips'; known: amd64, mips64el" in proc.stderr


def test_malformed_config(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[build]\njobs = 2\nlanguage = 'c'\n")
    proc = cli.invoke("build", "--what", "pause", env={"KUBEMIPS_CONFIG": str(bad)}, check=False)
    assert proc.returncode == 2
    assert f"error: {bad}: [build]: unknown key 'language'." in proc.stderr


def test_registry_down(cli: Cli) -> None:
    port = free_port()
    proc = cli.invoke("build", "--what", "pause", env={"REGISTRY": f"127.0.0.1:{port}"}, check=False)
    assert proc.returncode == 1
    assert f"registry 127.0.0.1:{port} is not reachable" in proc.stderr
    assert "Traceback" not in proc.stderr


GOOD = '#include <stdio.h>\nint main(void) { puts("ok"); return 0; }\n'


def component(root: Path, name: str, source: str, *, expect: str = "^ok$", base: str = "scratch") -> None:
    d = root / "components" / name
    d.mkdir(parents=True)
    (d / "main.c").write_text(source)
    (d / "component.toml").write_text(
        f'name = "{name}"\nversion = "1.0.0"\n'
        f'[build]\nkind = "c-static"\nsources = ["main.c"]\noutput = "/bin/{name}"\n'
        f'[image]\nbase = "{base}"\nentrypoint = ["/bin/{name}"]\n'
        f"[smoke]\ncommand = []\nexpect = '{expect}'\n"
    )


def test_failures_publish_nothing_and_spare_independent_images(cli: Cli, registry: Registry, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "components").mkdir(parents=True)
    (project / "kubemips.toml").write_text("[build]\njobs = 2\n")
    component(project, "good", GOOD)
    component(project, "broken", "int main(void) { return 0 }\n")
    component(project, "liar", GOOD, expect="^not what it prints$")
    component(project, "child", GOOD, base="broken")
    built = cli.build("--what", "good,broken,liar,child", "--arch", "amd64,mips64el", cwd=project, check=False)
    out = built.proc.stdout + built.proc.stderr
    assert built.proc.returncode == 1
    assert "error: " in built.proc.stderr and "did not complete" in built.proc.stderr

    # The independent image finished and is published.
    assert built.list("good")["status"] == "published"
    assert set(registry.tags("good")) == {"1.0.0", "1.0.0-linux-amd64", "1.0.0-linux-mips64le"}

    # A failing build step names image, arch and file; nothing of it is in the registry.
    assert built.image("broken", "mips64el")["status"] == "failed"
    assert "compile broken 1.0.0 mips64el" in out and "main.c" in out
    assert registry.tags("broken") == []

    # A smoke failure leaves the image pushed by digest only: no tag moved, no list.
    liar = built.image("liar", "amd64")
    assert (liar["status"], liar["smoke"]) == ("failed", "fail")
    assert "smoke check failed" in liar["error"]
    assert registry.tags("liar") == []
    assert built.list("liar")["status"] == "not published"

    # Images FROM a failed one are not attempted.
    assert built.image("child", "amd64")["status"] == "blocked"
    assert registry.tags("child") == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_after_a_push_moves_no_tag(cli: Cli, tmp_path: Path, signum: signal.Signals) -> None:
    """A signal after the first push: no per-arch tag, no list, "interrupted", exit 130."""
    server = RegistryServer(f"127.0.0.1:{free_port()}", tmp_path / "registry")
    server.start()
    try:
        env = cli.environ({"REGISTRY": server.listen, "KUBEMIPS_CACHE": str(tmp_path / "cache")})
        argv = [str(BIN / "invoke"), "-r", str(REPO), "build", "--what", "pause", "--arch", "amd64,mips64el"]
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # progress
            seen.append(line)
            if "] pushed pause@" in line:
                proc.send_signal(signum)
                break
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 130, "".join(seen) + out + err
        assert err.strip().splitlines()[-1].startswith("interrupted"), "".join(seen) + err
        assert "Traceback" not in out + err
        reg = server.client()
        for tag in ("3.1", "3.1-linux-amd64", "3.1-linux-mips64le"):
            assert reg.get_manifest("pause", tag) is None, tag
        # A rerun completes and verifies.
        rerun = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr
        assert reg.get_manifest("pause", "3.1") is not None
    finally:
        server.stop()


def test_engine_unreachable_is_found_before_any_push(cli: Cli, tmp_path: Path) -> None:
    server = RegistryServer(f"127.0.0.1:{free_port()}", tmp_path / "registry")
    server.start()
    try:
        sock = f"unix://{tmp_path}/no-docker.sock"
        proc = cli.invoke(
            "build", "--what", "pause", "--arch", "amd64", check=False,
            env={"REGISTRY": server.listen, "KUBEMIPS_CACHE": str(tmp_path / "cache"), "DOCKER_HOST": sock},
        )  # fmt: skip
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert f"no Docker daemon answers at {sock}" in proc.stderr
        assert server.client().get_manifest("pause", "3.1-linux-amd64") is None
        assert not (tmp_path / "registry" / "data" / "docker" / "registry" / "v2" / "blobs").exists()
    finally:
        server.stop()
