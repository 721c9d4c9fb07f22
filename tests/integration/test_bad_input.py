"""Bad input ends in one clear message, a non-zero exit and nothing half-published."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubemips.localregistry import RegistryServer
from kubemips.registry import Registry

from ..conftest import missing
from .conftest import BIN, REPO, Cli, free_port, own_registry

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


@pytest.fixture(scope="module")
def empty_registry(prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with own_registry(tmp_path_factory.mktemp("empty-registry")) as server:
        yield server


@pytest.fixture(scope="module")
def bad_places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory, a file, and (as root) a read-only mount to give as outputs."""
    base = tmp_path_factory.mktemp("outputs")
    (base / "a-dir").mkdir()
    (base / "a-file").write_text("keep me\n")
    read_only = base / "read-only"
    read_only.mkdir()
    if os.geteuid() != 0:
        missing("a read-only mount needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "kubemips-test", str(read_only)])
    if mounted.returncode != 0:
        missing(f"cannot mount a read-only tmpfs on {read_only}")
    yield base
    subprocess.run(["umount", str(read_only)], check=True)


BUILD = ("build", "--what", "pause", "--arch", "amd64")
BAD_OUTPUTS = [
    ((*BUILD, "--report"), "a-dir", "is a directory; give a file path"),
    ((*BUILD, "--report"), "a-file/report.json", "{base}/a-file is a file, not a directory"),
    ((*BUILD, "--report"), "/proc/kubemips-report.json", "is under /proc, which is not a place for files"),
    ((*BUILD, "--report"), "read-only/sub/report.json", "cannot write in {base}/read-only: Read-only file system"),
    ((*BUILD, "--push-by-digest", "--digests-dir"), "a-file", "is a file, not a directory"),
    (("manifests", "--out"), "a-file", "is a file, not a directory"),
    (("e2e-repo-list", "--out"), "a-dir", "is a directory; give a file path"),
    (("e2e-coverage", "--markdown"), "/proc/self/coverage.md", "is under /proc, which is not a place for files"),
    (("matrix", "--github-output"), "read-only/out", "cannot write in {base}/read-only: Read-only file system"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "where", "problem"), BAD_OUTPUTS, ids=[f"{a[0]} {a[-1]} {w}" for a, w, _ in BAD_OUTPUTS]
)
def test_bad_output_path_fails_before_any_work(
    cli: Cli, empty_registry: RegistryServer, bad_places: Path, args: tuple[str, ...], where: str, problem: str
) -> None:
    """An output that cannot be written: one message naming it, exit 2, nothing pushed."""
    path = where if where.startswith("/") else str(bad_places / where)
    proc = cli.invoke(
        *args, path, check=False,
        env={"REGISTRY": empty_registry.listen, "KUBEMIPS_CACHE": str(bad_places / "cache")},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {args[-1]} {path}: {problem.format(base=bad_places)}"]
    assert not (empty_registry.data_dir / "docker" / "registry" / "v2" / "blobs").exists()
    assert (bad_places / "a-file").read_text() == "keep me\n"


def test_an_unknown_package_names_it_and_publishes_nothing(cli: Cli, registry: Registry, tmp_path: Path) -> None:
    """The host's apt cannot find a package: the image and arch, apt's own words, exit 1,
    nothing of the image in the registry, no traceback."""
    project = tmp_path / "project"
    (project / "components").mkdir(parents=True)
    (project / "kubemips.toml").write_text("[build]\njobs = 1\n")
    shutil.copytree(REPO / "components" / "debian-base", project / "components" / "debian-base")
    broken = project / "components" / "broken"
    broken.mkdir()
    (broken / "component.toml").write_text(
        'name = "broken"\nversion = "1.0.0"\n'
        '[build]\nkind = "debian-packages"\npackages = ["kubemips-no-such-package"]\n'
        '[image]\nbase = "debian-base"\n'
        "[smoke]\ncommand = [\"true\"]\nexpect = 'never'\n"
    )
    built = cli.build("--what", "broken", "--arch", "mips64el", cwd=project, check=False)
    assert built.proc.returncode == 1, built.proc.stdout + built.proc.stderr
    error = built.image("broken", "mips64el")["error"]
    assert "[broken/mips64el] host apt for mips64el failed" in error, error
    assert "Unable to locate package kubemips-no-such-package" in error, error
    assert "READ_ONLY_HOST" not in error and "remount" not in error  # apt's words, not the sandbox's script
    assert "Traceback" not in built.proc.stderr
    assert registry.tags("broken") == []
