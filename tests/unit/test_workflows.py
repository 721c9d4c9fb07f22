"""The workflows: third-party actions only at a pinned commit (a moved tag cannot change
what CI executes), credentials and write permissions only where they are used, and the
images workflow's registry step run as written, by bash, against the values it must refuse."""

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubemips import config

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
IMAGES = ROOT / ".github" / "workflows" / "images.yml"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job.get("steps", [])]


def test_every_action_is_pinned_to_a_commit() -> None:
    uses = []
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            found = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)", line)
            if found and not found.group(1).startswith("./"):
                uses.append((workflow.name, found.group(1), line))
    assert uses, "no workflow uses an action: the pattern is wrong"
    unpinned = [(name, ref) for name, ref, _ in uses if not re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref)]
    assert unpinned == []
    # The tag each commit stands for is written beside it, for whoever updates it.
    assert all(re.search(r"#\s*v\d", line) for _, _, line in uses)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_in_shell_text_and_secrets_only_in_step_env(path: Path) -> None:
    """``${{ }}`` reaches a script through env: only; a secret only the step that needs it."""
    workflow = load(path)
    for job, step in steps(workflow):
        assert "${{" not in step.get("run", ""), f"{path.name}: job {job}: an expression in run: text"
    outside = [workflow.get("env", {}), *(job.get("env", {}) for job in workflow["jobs"].values())]
    assert not any("secrets." in str(value) for env in outside for value in env.values())


def test_only_the_pushing_jobs_may_write_packages() -> None:
    workflow = load(IMAGES)
    assert workflow["permissions"] == {"contents": "read"}
    writers = {name for name, job in workflow["jobs"].items() if job.get("permissions", {}).get("packages") == "write"}
    assert writers == {"stage0", "stage1", "stage2", "stage3", "merge"}
    with_secrets = {
        job for job, step in steps(workflow) if any("secrets." in str(v) for v in step.get("env", {}).values())
    }
    assert with_secrets == writers


# -- the plan's registry step, run by bash as GitHub runs it -------------------------------------


def run_registry_step(
    tmp_path: Path, registry: str, owner: str = "Some-Org"
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    workflow = load(IMAGES)
    assert workflow["defaults"]["run"]["shell"] == "bash"
    [step] = [s for s in workflow["jobs"]["plan"]["steps"] if s.get("id") == "registry"]
    assert set(step["env"]) == {"REGISTRY", "OWNER"}
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    output = tmp_path / "github_output"
    output.touch()
    env = {"PATH": os.environ["PATH"], "REGISTRY": registry, "OWNER": owner, "GITHUB_OUTPUT": str(output)}
    # GitHub's `shell: bash` is `bash --noprofile --norc -eo pipefail {0}`.
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return proc, outputs


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1:5000",
        "127.0.0.1:5000/kubemips",
        "localhost",
        "localhost:5000",
        "LocalHost:5000/ns",
        "localhost/ns",
        "[::1]:5000",
        "registry.localhost:5000",
        "0.0.0.0:5000",
        " 127.0.0.1:5000 ",
    ],
)
def test_the_plan_refuses_a_loopback_registry(tmp_path: Path, value: str) -> None:
    proc, outputs = run_registry_step(tmp_path, value)
    assert proc.returncode == 1
    assert f"::error::REGISTRY={value.strip()} is loopback: each job would push into its own machine" in proc.stdout
    assert outputs == {}
    # The project's own notion agrees where it has one (it knows nothing of *.localhost, 0.0.0.0).
    host = value.strip().split("/", 1)[0].lower()
    if host.startswith(("127.", "localhost", "[")):
        assert config.is_loopback(host)


@pytest.mark.parametrize("value", ["", "   "])
def test_the_plan_refuses_an_empty_registry_with_no_owner_to_default_to(tmp_path: Path, value: str) -> None:
    proc, outputs = run_registry_step(tmp_path, value, owner="")
    assert proc.returncode == 1
    assert "::error::REGISTRY is empty: set the REGISTRY variable or the registry input" in proc.stdout
    assert outputs == {}


def test_the_plan_refuses_a_registry_of_several_lines(tmp_path: Path) -> None:
    """A newline could otherwise add a line of its own to the step's outputs."""
    proc, outputs = run_registry_step(tmp_path, "registry.example.com\nlogin=github-token")
    assert proc.returncode == 1
    assert "::error::REGISTRY must be one HOST[:PORT][/NAMESPACE], without spaces" in proc.stdout
    assert outputs == {}


def test_no_registry_set_means_ghcr_under_the_lower_cased_owner(tmp_path: Path) -> None:
    proc, outputs = run_registry_step(tmp_path, "", owner="Some-Org")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs == {"registry": "ghcr.io/some-org", "login": "github-token"}
    assert config.load(root=ROOT, env={"REGISTRY": outputs["registry"]}).registry == "ghcr.io/some-org"


@pytest.mark.parametrize("value", ["registry.example.com:5000/kubemips", "ghcr.io/some-org", " quay.io/team "])
def test_a_registry_that_is_set_is_used_with_the_secrets(tmp_path: Path, value: str) -> None:
    proc, outputs = run_registry_step(tmp_path, value)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs == {"registry": value.strip(), "login": "secrets"}
    assert "::error::" not in proc.stdout
    assert config.load(root=ROOT, env={"REGISTRY": outputs["registry"]}).registry == value.strip()
