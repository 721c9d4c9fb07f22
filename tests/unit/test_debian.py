from pathlib import Path

import pytest

from kubemips import debian
from kubemips.errors import ConfigError

RELEASE = """-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Suite: stable
Codename: bookworm
Architectures: all amd64 mips64el
Components: main
MD5Sum:
 0123 100 main/binary-amd64/Packages.xz
SHA256:
 aaaa 100 main/binary-amd64/Packages.gz
 bbbb 90 main/binary-amd64/Packages.xz
 cccc 80 main/binary-mips64el/Packages
 dddd 70 contrib/binary-mips64el/Packages.xz
-----BEGIN PGP SIGNATURE-----
"""


def test_index_digest_prefers_xz_and_reads_only_sha256() -> None:
    assert debian.index_digest(RELEASE, "amd64") == "bbbb"
    assert debian.index_digest(RELEASE, "mips64el") == "cccc"
    assert debian.index_digest(RELEASE, "arm64") is None


def test_host_sources_deb822_and_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirror.invalid/debian bookworm main contrib\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://a.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://a.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.invalid/\nSuites: bookworm\nComponents: main\n"
    )
    found = debian.host_sources(tmp_path)
    assert found[0] == debian.AptSource("http://mirror.invalid/debian", ("bookworm",), ("main", "contrib"))
    assert debian.mirror_for("bookworm", "", apt_dir=tmp_path) == "http://mirror.invalid/debian"
    assert debian.security_mirror_for("bookworm", "", apt_dir=tmp_path) == "http://a.invalid/debian-security"
    assert debian.mirror_for("bookworm", "http://conf.invalid/debian", apt_dir=tmp_path) == "http://conf.invalid/debian"
    with pytest.raises(ConfigError, match="no Debian mirror for suite 'trixie'"):
        debian.mirror_for("trixie", "", apt_dir=tmp_path)


def test_sources_for_skips_suites_without_the_arch(tmp_path: Path) -> None:
    for suite, arches in (
        ("bookworm", "amd64 mips64el"),
        ("bookworm-updates", "amd64 mips64el"),
        ("bookworm-security", "amd64"),
    ):
        d = tmp_path / "dists" / suite
        d.mkdir(parents=True)
        lines = "".join(f" {suite}{a} 1 main/binary-{a}/Packages.xz\n" for a in arches.split())
        (d / "InRelease").write_text(f"Codename: {suite}\nSHA256:\n{lines}")
    uri = f"file:{tmp_path}"
    got = debian.sources_for("bookworm", "mips64el", uri, uri)
    assert [s.suite for s in got] == ["bookworm", "bookworm-updates"]
    assert got[0].index == "bookwormmips64el"
    assert [s.suite for s in debian.sources_for("bookworm", "amd64", uri, uri)] == [
        "bookworm",
        "bookworm-updates",
        "bookworm-security",
    ]
    with pytest.raises(ConfigError, match="no packages for architecture arm64"):
        debian.sources_for("bookworm", "arm64", uri, None)
