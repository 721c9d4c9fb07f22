"""Which Dockerfiles the host installs packages for, and in what order (pure logic)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kubemips.arch import parse_arch
from kubemips.builders import hostapt
from kubemips.builders.dockerfile import DebianPackagesBuilder
from kubemips.components import load_component

REPO = Path(__file__).resolve().parents[2]

FORM = """ARG BASEIMAGE
FROM ${BASEIMAGE}
# a comment
RUN apt-get update -q && apt-get install -y -q --no-install-recommends redis-server redis-tools && \\
    mkdir -p /usr/share/kubemips && dpkg-query -W -f='${Package}=${Version}\\n' redis-server > /x && \\
    mkdir -p /data && \\
    apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY redis-server /usr/bin/redis-server
CMD ["redis-server"]
"""


def test_the_install_step_is_split_off_and_the_rest_kept() -> None:
    parts = hostapt.split(FORM)
    assert parts is not None
    assert parts.packages == ("redis-server", "redis-tools")
    assert parts.dockerfile == (
        "ARG BASEIMAGE\nFROM ${BASEIMAGE}\n# a comment\n"
        "RUN mkdir -p /usr/share/kubemips && dpkg-query -W -f='${Package}=${Version}\\n' redis-server > /x"
        " && mkdir -p /data\n"
        'COPY redis-server /usr/bin/redis-server\nCMD ["redis-server"]\n'
    )


@pytest.mark.parametrize(
    "change",
    [
        ("FROM ${BASEIMAGE}", "FROM debian:bookworm"),  # not a base the builder hands in
        ("ARG BASEIMAGE\n", ""),
        ("redis-tools &&", "$EXTRA &&"),  # a package list the shell would expand
        ("apt-get clean && ", ""),  # not the form's end
        ("mkdir -p /data", "cp /var/cache/apt/archives/*.deb /b"),  # keeps the .deb files
        ("--no-install-recommends", ""),
    ],
)
def test_anything_else_builds_the_classic_way(change: tuple[str, str]) -> None:
    assert hostapt.split(FORM.replace(*change)) is None


def test_only_the_first_run_counts() -> None:
    text = "ARG BASEIMAGE\nFROM ${BASEIMAGE}\nRUN true\n" + FORM.split("# a comment\n")[1]
    assert hostapt.split(text) is None


def test_every_project_dockerfile_with_apt_is_in_the_form() -> None:
    """A Dockerfile that installs packages but drifted from the form would silently lose
    the host's speed-up: each one the project keeps must split."""
    found = []
    for path in sorted((REPO / "e2e-images").rglob("Dockerfile")):
        text = path.read_text()
        if "apt-get install" in text:
            found.append(path.parent.name)
            assert hostapt.split(text) is not None, path
    assert len(found) >= 15, found


SIMULATED = """NOTE: This is only a simulation!
Inst libjemalloc2 (5.3.0-1 Debian:12.8/stable [mips64el])
Inst liblzf1 (3.6-3 Debian:12.8/stable [mips64el])
Inst redis-tools (5:7.0.15-1~deb12u1 Debian-Security:12/stable-security [mips64el])
Conf libjemalloc2 (5.3.0-1 Debian:12.8/stable [mips64el])
Conf liblzf1 (3.6-3 Debian:12.8/stable [mips64el])
Inst redis-server (5:7.0.15-1~deb12u1 Debian-Security:12/stable-security [mips64el])
Conf redis-tools (5:7.0.15-1~deb12u1 Debian-Security:12/stable-security [mips64el])
Conf redis-server (5:7.0.15-1~deb12u1 Debian-Security:12/stable-security [mips64el])
"""


def test_apts_order_becomes_runs_of_unpacks_and_configures() -> None:
    steps = hostapt._plan(SIMULATED)
    assert [(op, [name for name, _, _ in entries]) for op, entries in steps] == [
        ("Inst", ["libjemalloc2", "liblzf1", "redis-tools"]),
        ("Conf", ["libjemalloc2", "liblzf1"]),
        ("Inst", ["redis-server"]),
        ("Conf", ["redis-tools", "redis-server"]),
    ]
    assert steps[0][1][2] == ("redis-tools", "5:7.0.15-1~deb12u1", "mips64el")


def test_the_deb_file_name_escapes_the_epoch(tmp_path: Path) -> None:
    deb = tmp_path / "redis-tools_5%3a7.0.15-1~deb12u1_mips64el.deb"
    deb.write_bytes(b"")
    assert hostapt._deb(tmp_path, "redis-tools", "5:7.0.15-1~deb12u1", "mips64el") == deb
    with pytest.raises(hostapt.BuildError, match="no redis_1_all.deb"):
        hostapt._deb(tmp_path, "redis", "1", "all")


@pytest.mark.parametrize("component", ["etcd", "hyperkube-base", "golang", "ca-certificates"])
def test_generated_debian_packages_dockerfiles_are_in_the_form(component: str) -> None:
    comp = load_component(REPO / "components" / component / "component.toml")
    text = DebianPackagesBuilder()._dockerfile(comp, parse_arch("mips64el"))
    parts = hostapt.split(text)
    assert parts is not None, text
    assert parts.packages and "apt-get" not in parts.dockerfile


def test_a_bundle_of_debs_keeps_the_classic_install() -> None:
    """docker-ce keeps its .deb files in the image: they must be there inside the build."""
    comp = load_component(REPO / "components" / "docker-ce" / "component.toml")
    assert hostapt.split(DebianPackagesBuilder()._dockerfile(comp, parse_arch("mips64el"))) is None


def test_a_trailing_bracket_list_is_read() -> None:
    """Seen for hyperkube-base: apt lists, after a package, what it still waits for."""
    lines = "Inst dmsetup (2:1.02.185-2 Debian:12.15/oldstable [mips64el]) []\nInst lvm2 (2.03 D [mips64el]) [dmsetup ]"
    assert hostapt._plan(lines) == [("Inst", [("dmsetup", "2:1.02.185-2", "mips64el"), ("lvm2", "2.03", "mips64el")])]


def test_an_upgrade_of_a_base_package_is_unpacked_too() -> None:
    line = "Inst libssl3 [3.0.15-1~deb12u1] (3.0.20-1~deb12u2 Debian-Security:12/stable-security [mips64el])"
    assert hostapt._plan(line) == [("Inst", [("libssl3", "3.0.20-1~deb12u2", "mips64el")])]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Remv libfoo1 [1.0-1]", "would remove a package of the base"),
        ("Inst strange-line", "cannot read apt's plan line"),
    ],
)
def test_a_plan_it_cannot_follow_is_an_error(line: str, message: str) -> None:
    with pytest.raises(hostapt.BuildError, match=message):
        hostapt._plan(line)


def _root(tmp_path: Path, versions: dict[str, str], *, mnt: bool = True) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    for name in ("perl", "sed", "dash", "basename"):
        (root / "usr/bin" / name).write_bytes(b"\x7fELF the image's own")
    (root / "usr/bin/sh").symlink_to("dash")
    if mnt:
        (root / "mnt").mkdir()
    (root / "var/lib/dpkg/status").write_text(
        "".join(f"Package: {p}\nStatus: install ok installed\nVersion: {v}\n\n" for p, v in versions.items())
    )
    return root


def _host(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return out.stdout


def test_the_hosts_programs_at_the_images_versions_are_made_to_run_inside_the_root(tmp_path: Path) -> None:
    """A copy of each, whose loader and libraries are where the host's library directory
    is bound (/mnt/lib); perl also gets the host's core XS directories on PERL5LIB.  A
    program whose package differs (sed here) stays the image's; a Debian revision or
    epoch does not count, the upstream version does."""
    versions = {"perl-base": _host("perl-base") + "~other1", "dash": _host("dash"), "sed": "1.0-1"}
    versions["coreutils"] = _host("coreutils")
    tools = hostapt.native_tools(_root(tmp_path, versions), tmp_path / "work", {**versions, "dash": _host("dash")}, "t")
    assert tools is not None
    assert tools.paths == ("usr/bin/perl", "usr/bin/dash", "usr/bin/basename")
    for path in tools.paths:
        copy = tools.directory / "bin" / Path(path).name
        interpreter = subprocess.run(["patchelf", "--print-interpreter", copy], capture_output=True, text=True)
        loader = interpreter.stdout.strip()
        assert loader == "/mnt/lib/" + Path(loader).name, path
        assert (tools.libdir / Path(loader).name).exists()  # the host's loader, bound there
    dirs = tools.env().removeprefix("PERL5LIB=").split(":")
    assert dirs and all(d.startswith("/mnt/lib/perl") for d in dirs), dirs
    assert any(d.endswith("/perl-base") for d in dirs), dirs
    assert "/perl5/" not in tools.perl5lib  # the host's third-party modules are not offered
    assert '"$root"/usr/bin/dash' in tools.mount("$root") and '"$root"/usr/bin/dash' in tools.unmount("$root")


def test_a_planned_upgrade_counts_and_without_an_empty_mnt_nothing_is_bound(tmp_path: Path) -> None:
    versions = {"dash": _host("dash"), "perl-base": _host("perl-base")}
    upgraded = hostapt.native_tools(
        _root(tmp_path, versions), tmp_path / "w1", {"dash": "9.9-1", "perl-base": "1"}, "t"
    )
    assert upgraded is None  # both would be unpacked at other versions than the host's
    shutil.rmtree(tmp_path / "root")
    assert hostapt.native_tools(_root(tmp_path, versions, mnt=False), tmp_path / "w2", versions, "t") is None


def test_upstream_versions() -> None:
    assert hostapt._upstream("1:2.3-4+deb12u1") == "2.3"
    assert hostapt._upstream("5.36.0-7+deb12u3") == "5.36.0"
    assert hostapt._upstream("0.5.12-2") == "0.5.12"
    assert hostapt._upstream("9.1") == "9.1"
