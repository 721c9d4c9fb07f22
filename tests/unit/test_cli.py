"""The command line: one namespace for `invoke` (tasks.py) and `kubemips`, long flags only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubemips import cli

REPO = Path(__file__).resolve().parents[2]
DOCUMENTED = [
    "build", "bundle", "matrix", "merge", "verify", "e2e-images", "e2e-list", "e2e-repo-list", "e2e-coverage",
    "manifests", "verify-manifests", "images-for-cluster", "mirror", "registry-start", "registry-stop",
    "registry-status", "show-config", "images", "cluster-up", "cluster-down", "conformance", "build-hyperkube",
    "build-pause", "build-debian-base",
]  # fmt: skip


def test_every_documented_task_is_there() -> None:
    assert set(DOCUMENTED) <= set(cli.ns.task_names)


def test_tasks_py_hands_invoke_the_same_namespace() -> None:
    sys.path.insert(0, str(REPO))
    try:
        import tasks  # the repo's tasks.py
    finally:
        sys.path.remove(str(REPO))
    assert tasks.ns is cli.ns


def test_no_automatic_short_flags() -> None:
    for name in cli.ns.task_names:
        for arg in cli.ns[name].get_arguments():
            assert all(len(n) > 1 for n in arg.names), f"{name}: {arg.names}"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`kubemips ARGS` through the console entry point's function, in a fresh interpreter."""
    full = {k: v for k, v in os.environ.items() if k not in ("WHAT", "ALL_ARCH", "REGISTRY", "VERSION")}
    full.update({"PYTHONPATH": str(REPO / "src"), **(env or {})})
    argv = [sys.executable, "-c", "import sys; from kubemips.cli import main; sys.argv[0] = 'kubemips'; main()", *args]
    return subprocess.run(argv, cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


def test_help_and_list_from_a_subdirectory() -> None:
    helped = run("--help", cwd=REPO / "components")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: kubemips [--core-opts] <subcommand>")
    listed = run("--list", cwd=REPO / "components" / "pause")
    assert listed.returncode == 0, listed.stderr
    assert "build-hyperkube" in listed.stdout and "e2e-coverage" in listed.stdout
    task_help = run("--help", "build")
    assert "--progress=STRING" in task_help.stdout and "--json" in task_help.stdout
    assert "-v," not in task_help.stdout and "-r," not in task_help.stdout


def test_dry_run_json_is_all_of_stdout() -> None:
    proc = run("build", "--dry-run", "--json", "--what", "pause", "--arch", "amd64,mips64el", cwd=REPO / "src")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert [s["id"] for s in plan["steps"]] == ["pause/amd64", "pause/mips64el", "pause/list"]
    assert plan["steps"][2]["after"] == ["pause/amd64", "pause/mips64el"]


def test_environment_like_upstream_makefiles_and_flags_win() -> None:
    env = {"WHAT": "pause", "ALL_ARCH": "mips64le", "REGISTRY": "registry.example.test/k8s", "VERSION": "3.2"}
    plan = json.loads(run("build", "--dry-run", "--json", env=env).stdout)
    assert [s["ref"] for s in plan["steps"]] == [
        "registry.example.test/k8s/pause:3.2-linux-mips64le",
        "registry.example.test/k8s/pause:3.2",
    ]
    flags = ["--what", "debian-base", "--arch", "amd64", "--registry", "127.0.0.1:5999", "--version", "1.0.1"]
    plan = json.loads(run("build", "--dry-run", "--json", *flags, env=env).stdout)
    assert plan["steps"][0]["ref"] == "127.0.0.1:5999/debian-base:1.0.1-linux-amd64"


def test_version_from_the_environment_needs_one_component() -> None:
    proc = run("build", "--dry-run", "--what", "pause,debian-base", env={"VERSION": "3.2"})
    assert proc.returncode == 2, proc.stderr
    assert "--version (or $VERSION) apply to exactly one component, but WHAT names: debian-base, pause" in proc.stderr


def test_bad_progress_mode_is_one_error() -> None:
    proc = run("build", "--dry-run", "--progress", "fancy")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: --progress 'fancy': expected one of auto, tty, plain, quiet"
    )


@pytest.mark.parametrize("task", ["images", "build-pause"])
def test_json_flags(task: str) -> None:
    args = [task, "--json"] + (["--dry-run"] if task.startswith("build") else [])
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
