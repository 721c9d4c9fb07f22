from pathlib import Path

import pytest

from kubemips import components
from kubemips.arch import parse_arch
from kubemips.builders import builder_for
from kubemips.errors import ConfigError

from .helpers import simple, write_component

REPO = Path(__file__).resolve().parents[2]


def test_repo_components_load_and_builders_accept_them() -> None:
    catalog = components.load_all(REPO)
    assert {"debian-base", "pause"} <= set(catalog)
    for comp in catalog.values():
        builder_for(comp)  # closed schema of each builder's [build] keys
    pause = catalog["pause"]
    assert pause.version == "3.1" and pause.tag == "3.1"
    assert pause.smoke.pattern("3.1", parse_arch("mips64el")).search("pause.c v3.1\n")
    assert not pause.smoke.pattern("3.1", parse_arch("mips64el")).search("pause.c v3.10\n")


def test_debian_base_smoke_pattern_is_per_arch() -> None:
    base = components.load_all(REPO)["debian-base"]
    out = "mips64\nmips64el\n12.11\n"
    assert base.smoke.pattern(base.version, parse_arch("mips64el")).search(out)
    assert not base.smoke.pattern(base.version, parse_arch("amd64")).search(out)


def test_unknown_key_in_component(tmp_path: Path) -> None:
    path = write_component(tmp_path, "x", simple("x").replace("[image]", "[image]\nentrypoitn = []"))
    with pytest.raises(ConfigError) as err:
        components.load_component(path)
    assert str(path) in str(err.value)
    assert "Perhaps you meant 'entrypoint'" in str(err.value)


def test_unknown_build_key_caught_by_builder(tmp_path: Path) -> None:
    path = write_component(tmp_path, "x", simple("x").replace("[build]", "[build]\ncflag = []"))
    comp = components.load_component(path)
    with pytest.raises(ConfigError, match="Perhaps you meant 'cflags'"):
        builder_for(comp)


def test_unknown_builder_kind(tmp_path: Path) -> None:
    path = write_component(tmp_path, "x", simple("x").replace('kind = "c-static"', 'kind = "c-statik"'))
    with pytest.raises(ConfigError, match="kind 'c-statik' is unknown.*Perhaps you meant 'c-static'"):
        builder_for(components.load_component(path))


@pytest.mark.parametrize("version", ["", "1.2", "v1.x", "latest"])
def test_bad_semver(tmp_path: Path, version: str) -> None:
    path = write_component(tmp_path, "x", simple("x", version=version))
    with pytest.raises(ConfigError, match="not valid semver"):
        components.load_component(path)


def test_major_minor_scheme(tmp_path: Path) -> None:
    body = simple("x", version="3.1").replace('version = "3.1"', 'version = "3.1"\nversion-scheme = "major-minor"')
    assert components.load_component(write_component(tmp_path, "x", body)).tag == "3.1"
    bad = body.replace('"3.1"', '"3.1.0"', 1)
    with pytest.raises(ConfigError, match="MAJOR.MINOR"):
        components.load_component(write_component(tmp_path, "x", bad))


def test_name_must_match_directory(tmp_path: Path) -> None:
    path = write_component(tmp_path, "y", simple("x"))
    with pytest.raises(ConfigError, match="does not match its directory"):
        components.load_component(path)


def test_missing_required(tmp_path: Path) -> None:
    path = write_component(tmp_path, "x", 'name = "x"\nversion = "1.0.0"\n[build]\nkind = "c-static"\n')
    with pytest.raises(ConfigError, match="missing required key 'smoke'"):
        components.load_component(path)


def test_resolve_what(tmp_path: Path) -> None:
    write_component(tmp_path, "a", simple("a"))
    write_component(tmp_path, "b", simple("b"))
    catalog = components.load_all(tmp_path)
    assert components.resolve_what("b,a", catalog, ("a",)) == ["b", "a"]
    assert components.resolve_what("", catalog, ("a",)) == ["a"]
    assert components.resolve_what(["a b", "a"], catalog, ()) == ["a", "b"]
    assert components.resolve_what("all", catalog, ()) == ["a", "b"]
    with pytest.raises(ConfigError, match=r"unknown image 'c' in WHAT; known: a, b, all"):
        components.resolve_what("c", catalog, ())
