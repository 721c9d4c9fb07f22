"""The `kubemips` console command from a fresh virtualenv, and the progress modes as a
user sees them: on a terminal (a pseudo-terminal here) and in a pipe."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import site
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import BIN, REPO, Cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kubemips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the project installed editable, as `pip install -e .` does for a user.

    Its dependencies are this interpreter's (made visible with a .pth file), so only the
    build backend pyproject.toml names is fetched."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "outer-site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO)], check=True, timeout=300,
    )  # fmt: skip
    return venv / "bin" / "kubemips"


def test_console_command_from_any_directory(kubemips: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WHAT", "REGISTRY", "ALL_ARCH", "VERSION", "PYTHONPATH")}
    assert subprocess.run([kubemips, "--version"], capture_output=True, text=True, env=env).stdout == "kubemips 0.1.0\n"
    for cwd in (REPO, REPO / "components" / "pause", REPO / "src" / "kubemips"):
        listed = subprocess.run([kubemips, "--list"], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert "build-hyperkube" in listed.stdout and "registry-start" in listed.stdout
    plan = subprocess.run(
        [kubemips, "build", "--dry-run", "--json"], cwd=REPO / "components", capture_output=True, text=True,
        env={**env, "WHAT": "pause", "ALL_ARCH": "amd64"}, timeout=120,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert [s["id"] for s in json.loads(plan.stdout)["steps"]] == ["pause/amd64", "pause/list"]
    # invoke with the repo's tasks.py runs the same tasks.
    same = subprocess.run([BIN / "invoke", "--list"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert same.stdout.split("\n", 1)[1] == listed.stdout.split("\n", 1)[1]


def test_progress_in_a_pipe_and_on_a_terminal(cli: Cli) -> None:
    args = [str(BIN / "invoke"), "-r", str(REPO), "build", "--what", "pause", "--arch", "amd64", "--jobs", "1"]
    env = cli.environ({"NO_COLOR": "1"})
    # In a pipe: auto is plain, progress on stderr, results on stdout.
    piped = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    # Built, or up to date when an earlier test built it into the same registry.
    assert re.search(r"\[1/2\] pause/amd64: (built|cached)", piped.stderr), piped.stderr
    assert "[2/2] pause/list: " in piped.stderr
    assert "==> build pause" in piped.stderr and "==>" not in piped.stdout
    assert "report: " in piped.stdout and "manifest list" in piped.stdout
    quiet = subprocess.run([*args, "--progress", "quiet"], cwd=REPO, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr

    # On a terminal: the status line is drawn and wiped, the count lines stay.
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the pty closed with the process
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=300)
    os.close(master)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "[0/2] running: pause/amd64" in text and "\r\x1b[2K" in text
    assert "[2/2] pause/list: " in text and "\x1b[1m" not in text  # NO_COLOR
    assert "report: " in out and "\x1b" not in out
