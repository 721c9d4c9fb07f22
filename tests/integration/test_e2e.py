"""The conformance e2e image catalog, for amd64 and mips64el (mips64el under QEMU).

Images from Debian's packages build for real; images whose Go sources live in the
Kubernetes tree build from the real k8s.io/kubernetes module (the rest of them, and the
conformance image, in `nox -s kubernetes`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kubemips.registry import Registry

from .conftest import BIN, REPO, Built, Cli, docker, skopeo_raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BOTH = "amd64,mips64el"
LIBRARY = {
    "busybox": ["1.29"],
    "redis": ["5.0.5-alpine"],
    "nginx": ["1.14-alpine", "1.15-alpine"],
    "httpd": ["2.4.38-alpine", "2.4.39-alpine"],
    "perl": ["5.26"],
}


def arches_of(cli: Cli, repo: str, tag: str) -> set[str]:
    doc = json.loads(skopeo_raw(f"{cli.registry}/{repo}:{tag}"))
    return {m["platform"]["architecture"] for m in doc["manifests"]}


@pytest.fixture(scope="module")
def library(cli: Cli) -> subprocess.CompletedProcess[str]:
    """The issue's own command: `nox -s e2e_images -- busybox redis nginx httpd perl`."""
    proc = subprocess.run(
        [str(BIN / "nox"), "-s", "e2e_images", "--", *LIBRARY],
        cwd=REPO,
        env=cli.environ(None),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    return proc


def test_library_images_hold_both_arches(library: subprocess.CompletedProcess[str], cli: Cli) -> None:
    for repo, tags in LIBRARY.items():
        for tag in tags:
            assert arches_of(cli, repo, tag) == {"amd64", "mips64le"}, f"{repo}:{tag}"
    config = json.loads(skopeo_raw(f"{cli.registry}/redis:5.0.5-alpine-linux-mips64le", config=True))
    labels = config["config"]["Labels"]
    assert "redis-server=5:7." in labels["org.kubemips.debian.packages"]  # what it really is
    assert labels["org.kubemips.content"].startswith("Debian's redis-server")


def test_mips64le_redis_answers_ping(library: subprocess.CompletedProcess[str], cli: Cli) -> None:
    script = "redis-server --daemonize yes >/dev/null; sleep 2; redis-cli ping"
    out = docker(
        "run", "--rm", "--network", "none", "--platform", "linux/mips64le",
        f"{cli.registry}/redis:5.0.5-alpine", "sh", "-c", script, timeout=300,
    )  # fmt: skip
    assert out.stdout.strip().endswith("PONG")
    which = docker(
        "run",
        "--rm",
        "--platform",
        "linux/mips64le",
        f"{cli.registry}/redis:5.0.5-alpine",
        "sh",
        "-c",
        "for c in redis-server redis-cli; do command -v $c; done",
    )
    assert which.stdout.split() == ["/usr/bin/redis-server", "/usr/bin/redis-cli"]


@pytest.mark.parametrize("arch", ["amd64", "mips64le"])
def test_packages_installed_by_the_host_are_configured(
    library: subprocess.CompletedProcess[str], cli: Cli, arch: str
) -> None:
    """For mips64el httpd's packages were resolved, downloaded and unpacked by the host and
    configured by the image's own dpkg; for amd64 (the host's arch) apt ran in the build.
    Both give the same state: every package installed and configured, apt knows which
    came in as dependencies, and apache's own configuration step ran (a2enmod's links)."""
    ref = f"{cli.registry}/httpd:2.4.38-alpine-linux-{arch}"
    config = json.loads(skopeo_raw(ref, config=True))
    steps = [h.get("created_by", "") for h in config["history"]]
    by_host = [s for s in steps if s.startswith("apt-get install --no-install-recommends apache2 (host apt and dpkg")]
    assert len(by_host) == (1 if arch == "mips64le" else 0), steps
    # apache2's postinst runs a2enmod (perl) for each module: with the host's perl there.
    assert all("host tools" in s for s in by_host), by_host
    script = (
        "dpkg --audit; dpkg-query -W -f='${db:Status-Abbrev}${Package}\\n' | grep -vc '^ii '; "
        "apt-mark showauto | grep -cx 'apache2-bin\\|perl'; apt-mark showmanual | grep -x apache2; "
        "readlink /etc/apache2/mods-enabled/mpm_event.load; ls /etc/apache2/mods-enabled | wc -l; "
        "perl -MConfig -e 'print $Config{archname}, qq(\\n)'"
    )
    out = docker("run", "--rm", "--platform", f"linux/{arch}", "--entrypoint", "sh", ref, "-c", script, check=False)
    triplet = {"amd64": "x86_64-linux-gnu", "mips64le": "mips64el-linux-gnuabi64"}[arch]
    # The same modules enabled either way; the image's perl is still its own.
    assert out.stdout.split("\n") == [
        "0",
        "2",
        "apache2",
        "../mods-available/mpm_event.load",
        "29",
        f"{triplet}-thread-multi",
        "",
    ], out.stdout


@pytest.fixture(scope="module")
def from_kubernetes_module(cli: Cli) -> Built:
    """Go test images from the real k8s.io/kubernetes@v1.16.2 module (no --source): fetched
    through the go command, vendored, generated, cross-compiled for both arches."""
    what = "agnhost,test-webserver,kitten,mounttest,mounttest-user"
    return cli.invoke_build_task("e2e-images", "--what", what, "--arch", BOTH)


def test_go_images_from_the_kubernetes_module(from_kubernetes_module: Built, cli: Cli) -> None:
    names = {"agnhost": "2.6", "test-webserver": "1.0", "kitten": "1.0", "mounttest": "1.0", "mounttest-user": "1.0"}
    for name, tag in names.items():
        for arch in ("amd64", "mips64el"):
            image = from_kubernetes_module.image(name, arch)
            assert image["smoke"] in ("pass", "cached"), image
        assert arches_of(cli, name, tag) == {"amd64", "mips64le"}
    run = ("run", "--rm", "--platform", "linux/mips64le")
    # Upstream agnhost 2.6's own subcommands, under QEMU.
    usage = docker(*run, f"{cli.registry}/agnhost:2.6", "--help").stdout
    for sub in ("crd-conversion-webhook", "netexec", "serve-hostname", "porter", "webhook", "liveness"):
        assert f"  {sub} " in usage, usage
    serve = docker(*run, f"{cli.registry}/agnhost:2.6", "serve-hostname", "--help").stdout
    assert "--port int   Port number. (default 9376)" in serve
    out = docker(*run, f"{cli.registry}/mounttest-user:1.0", "--file_owner=/mounttest")
    assert out.stdout.splitlines()[:2] == ['owner UID of "/mounttest": 0', 'owner GID of "/mounttest": 0']
    user = json.loads(skopeo_raw(f"{cli.registry}/mounttest-user:1.0-linux-mips64le", config=True))["config"]["User"]
    assert user == "1001"


def test_debian_test_images_and_aliases(cli: Cli) -> None:
    what = "dnsutils,jessie-dnsutils,ipc-utils,nonroot,volume/nfs,gb-frontend,echoserver,etcd-3.3.15,debian-base-0.4.1"
    built = cli.invoke_build_task("e2e-images", "--what", what, "--arch", BOTH)
    for name in what.split(","):
        for arch in ("amd64", "mips64el"):
            image = built.image(name, arch)
            assert (image["status"], image["smoke"]) in (("built", "pass"), ("cached", "cached")), image
    assert arches_of(cli, "volume/nfs", "1.0") == {"amd64", "mips64le"}
    # The aliases are the project's images under the tags the e2e suite pulls.
    etcd = json.loads(skopeo_raw(f"{cli.registry}/etcd:3.3.15-linux-mips64le", config=True))
    assert etcd["config"]["Labels"]["org.kubemips.alias-of"] == "etcd:3.4.23"
    assert "etcd-server=3.4.23" in etcd["config"]["Labels"]["org.kubemips.debian.packages"]
    out = docker("run", "--rm", "--platform", "linux/mips64le", f"{cli.registry}/etcd:3.3.15", "etcd", "--version")
    assert "etcd Version: 3.4.23" in out.stdout


def test_repo_list_points_every_key_at_the_registry(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "repo-list.yaml"
    proc = cli.invoke("e2e-repo-list", "--out", str(out))
    assert proc.stdout.strip() == str(out)
    pairs = dict(line.split(": ", 1) for line in out.read_text().splitlines() if not line.startswith("#"))
    assert set(pairs) == {
        "dockerLibraryRegistry", "e2eRegistry", "gcRegistry", "gcrReleaseRegistry", "googleContainerRegistry",
        "sampleRegistry", "privateRegistry", "invalidRegistry", "gcAuthenticatedRegistry", "quayK8sCSI",
    }  # fmt: skip
    assert set(pairs.values()) == {json.dumps(cli.registry)}


def test_e2e_list_and_coverage_name_the_whole_catalog(
    library: subprocess.CompletedProcess[str], cli: Cli, tmp_path: Path
) -> None:
    listing = cli.invoke("e2e-list").stdout
    assert "gcr.io/kubernetes-e2e-test-images/agnhost:2.6" in listing
    assert "docker.io/library/redis:5.0.5-alpine" in listing and f"{cli.registry}/redis:5.0.5-alpine" in listing
    assert "deliberately invalid" in listing and "out of scope: Windows" in listing
    md, page, summary = tmp_path / "coverage.md", tmp_path / "coverage.html", tmp_path / "step-summary.md"
    proc = cli.invoke(
        "e2e-coverage", "--json", "--markdown", str(md), "--html", str(page), env={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    report = json.loads(proc.stdout)
    assert len(report["images"]) == 46 and report["arches"] == ["amd64", "mips64el"]  # every catalog entry
    redis = next(i for i in report["images"] if i["image"] == "redis:5.0.5-alpine")
    assert all(a["status"] == "present" and "redis-server=" in a["content"] for a in redis["arches"].values())
    cuda = next(i for i in report["images"] if i["image"] == "cuda-vector-add:1.0")
    assert cuda["arches"]["mips64el"]["status"] == "not provided" and cuda["why_not"]
    grid = md.read_text().split("## Details")[0]
    redis_line = next(line for line in grid.splitlines() if line.startswith("| `redis:5.0.5-alpine` |"))
    assert redis_line.count("✅") == 2 and "| `cuda-vector-add:1.0` | — | — |" in grid
    assert summary.read_text() == md.read_text() + "\n"
    assert "<!DOCTYPE html>" in page.read_text() and "redis:5.0.5-alpine" in page.read_text()
    table = cli.invoke("e2e-coverage").stdout
    assert "redis:5.0.5-alpine" in table and "✅" in table and "pairs are in the registry" in table


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "components").mkdir(parents=True)
    shutil.copytree(REPO / "components" / "debian-base", project / "components" / "debian-base")
    (project / "kubemips.toml").write_text("")
    return project


def _folder(project: Path, name: str, *, version: str = "1.0", baseimage: str = "", dockerfile: str = "") -> Path:
    d = project / "e2e-images" / name
    d.mkdir(parents=True)
    (d / "VERSION").write_text(version + "\n")
    if baseimage:
        (d / "BASEIMAGE").write_text(baseimage)
    (d / "Dockerfile").write_text(dockerfile or "ARG BASEIMAGE\nFROM ${BASEIMAGE}\nRUN true\n")
    return d


def test_bad_e2e_folders(cli: Cli, registry: Registry, tmp_path: Path) -> None:
    project = _project(tmp_path)
    both = "linux/amd64=REGISTRY/debian-base:1.0.0\nlinux/mips64le=REGISTRY/debian-base:1.0.0\n"
    _folder(project, "good", baseimage=both)
    _folder(project, "amd64-only", baseimage="linux/amd64=REGISTRY/debian-base:1.0.0\n")
    _folder(project, "alpine", baseimage="linux/amd64=alpine:3.8\nlinux/mips64le=alpine:3.8\n")
    _folder(
        project,
        "fails-under-qemu",
        baseimage=both,
        dockerfile='ARG BASEIMAGE\nFROM ${BASEIMAGE}\nRUN test "$(uname -m)" = x86_64\n',
    )
    built = cli.build("--what", "good,amd64-only,alpine,fails-under-qemu", "--arch", BOTH, cwd=project, check=False)
    assert built.proc.returncode == 1
    assert built.list("good")["status"] in ("published", "unchanged")
    amd = built.image("amd64-only", "mips64el")
    assert amd["status"] == "failed" and "BASEIMAGE: no line for linux/mips64le" in amd["error"]
    assert built.list("amd64-only")["status"] == "not published" and registry.get_manifest("amd64-only", "1.0") is None
    assert "alpine:3.8 is not an image this project builds" in built.image("alpine", "amd64")["error"]
    qemu = built.image("fails-under-qemu", "mips64el")
    assert qemu["status"] == "failed" and "Dockerfile build failed" in qemu["error"]
    assert built.image("fails-under-qemu", "amd64")["status"] == "built"
    assert registry.get_manifest("fails-under-qemu", "1.0") is None

    # A malformed VERSION is named; it stops a build of that image, not of the others.
    bad = _project(tmp_path / "v")
    _folder(bad, "empty-version", version="")
    proc = cli.invoke("build", "--what", "empty-version", cwd=bad, check=False)
    assert proc.returncode == 2 and "empty-version/VERSION: VERSION must be exactly one non-empty line" in proc.stderr
    other = cli.invoke("build", "--what", "debian-base", "--dry-run", cwd=bad, check=False)
    assert other.returncode == 0 and other.stderr.count("empty-version/VERSION: VERSION must be exactly") == 1
    # A FROM cycle stops before anything runs, naming the images.
    cyc = _project(tmp_path / "c")
    _folder(cyc, "a", baseimage="linux/amd64=REGISTRY/b:1.0\n")
    _folder(cyc, "b", baseimage="linux/amd64=REGISTRY/a:1.0\n")
    proc = cli.invoke("build", "--what", "a", "--arch", "amd64", cwd=cyc, check=False)
    assert proc.returncode == 2 and "FROM cycle between images: a -> b -> a" in proc.stderr


def test_every_catalog_definition_plans(cli: Cli) -> None:
    """Images not built in CI are still checked: every definition loads and plans."""
    proc = cli.invoke("e2e-images", "--dry-run")
    steps = [line for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    planned = {line.split()[2].rsplit(":", 1)[0].split("/", 1)[1] for line in steps}
    for repo in ("volume/gluster", "volume/iscsi", "volume/rbd", "agnhost", "conformance", "gb-frontend", "echoserver"):
        assert repo in planned
    assert "dry run: nothing built" in proc.stdout
