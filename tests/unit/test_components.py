import re
from pathlib import Path

import pytest

from kubemips import components, config, conformance
from kubemips.arch import parse_arch
from kubemips.builders import builder_for
from kubemips.catalog import load_catalog
from kubemips.errors import ConfigError

from .helpers import simple, write_component

REPO = Path(__file__).resolve().parents[2]


def test_repo_components_load_and_builders_accept_them() -> None:
    catalog = load_catalog(REPO)
    assert {"debian-base", "pause"} <= set(catalog.images)
    for comp in catalog.components.values():
        builder_for(comp)  # closed schema of each builder's [build] keys
    pause, image = catalog.image("pause")
    assert pause.version == "3.1" and pause.tag == "3.1"
    assert image.smoke.pattern("3.1", parse_arch("mips64el")).search("pause.c v3.1\n")
    assert not image.smoke.pattern("3.1", parse_arch("mips64el")).search("pause.c v3.10\n")


def test_default_kubernetes_version_is_the_one_built() -> None:
    catalog = load_catalog(REPO)
    assert catalog.components["hyperkube"].version == config.KUBERNETES_VERSION
    assert config.KUBERNETES_VERSION in conformance.available(REPO)


def test_debian_base_smoke_pattern_is_per_arch() -> None:
    base, image = load_catalog(REPO).image("debian-base")
    out = "mips64\nmips64el\n12.11\n1\n"
    assert image.smoke.pattern(base.version, parse_arch("mips64el")).search(out)
    assert not image.smoke.pattern(base.version, parse_arch("amd64")).search(out)
    # an empty linker cache (the host's ldconfig on a foreign arch) fails the smoke
    assert not image.smoke.pattern(base.version, parse_arch("mips64el")).search("mips64\nmips64el\n12.11\n0\n")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ('mode = "qemu"', "mode 'qemu': expected one of chrootless, chroot"),
        ('files = { "etc/x" = "" }', "files: 'etc/x' is not an absolute path"),
        ('files = { "/etc/$(id)" = "" }', "files: '/etc/$(id)' is not an absolute path"),
        ('files = { "/etc/../x" = "" }', "files: '/etc/../x' is not an absolute path"),
    ],
)
def test_rootfs_options_are_checked(tmp_path: Path, build: str, message: str) -> None:
    c_static = 'kind = "c-static"\nsources = ["main.c"]\noutput = "/bin/x"'
    body = simple("x").replace(c_static, f'kind = "debian-rootfs"\n{build}')
    comp = components.load_component(write_component(tmp_path, "x", body))
    with pytest.raises(ConfigError, match=re.escape(message)):
        builder_for(comp).check(comp)


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


def test_build_options_are_typed_with_their_defaults_and_checked_once(tmp_path: Path) -> None:
    body = simple("x").replace('output = "/bin/x"', 'output = "/bin/x"\ndefines = { V = "{version}" }')
    comp = components.load_component(write_component(tmp_path, "x", body))
    builder = builder_for(comp)
    opts = builder.opts(comp)
    assert (opts.sources, opts.cflags, dict(opts.defines), opts.output) == (
        ("main.c",),
        (),
        {"V": "{version}"},
        "/bin/x",
    )
    assert builder.opts(comp) is opts


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('output = "/bin/x"', 'output = "/bin/x"\ncflags = "-O2"', r"\[build\]: 'cflags' must be a list of strings"),
        (
            'output = "/bin/x"',
            'output = "/bin/x"\ndefines = { V = 1 }',
            r"\[build\]: 'defines' must be a table of strings",
        ),
        ('output = "/bin/x"', "output = 1", r"\[build\]: 'output' must be a string, got 1"),
        ('output = "/bin/x"', "", r"\[build\]: missing required key 'output'"),
    ],
)
def test_build_option_errors_name_the_file_and_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write_component(tmp_path, "x", simple("x").replace(old, new))
    comp = components.load_component(path)
    with pytest.raises(ConfigError, match=message) as err:
        builder_for(comp)
    assert str(err.value).startswith(f"{path}: [build]: ")


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
    catalog = load_catalog(tmp_path)
    assert catalog.resolve("b,a", ("a",)) == ["b", "a"]
    assert catalog.resolve("", ("a",)) == ["a"]
    assert catalog.resolve(["a b", "a"], ()) == ["a", "b"]
    assert catalog.resolve("all", ()) == ["a", "b"]
    with pytest.raises(ConfigError, match=r"unknown image 'c' in WHAT; known: a, b, all"):
        catalog.resolve("c", ())


MULTI = """
name = "suite"
version = "3.8.2"
tag = "v3.8.2"
[sources.node]
kind = "git"
url = "https://example.invalid/node.git"
ref = "v3.8.2"
commit = "0123456789abcdef0123456789abcdef01234567"
[build]
kind = "c-static"
sources = ["main.c"]
output = "/bin/x"
[[images]]
name = "suite-node"
env = ["ETCD_UNSUPPORTED_ARCH={oci}"]
[images.smoke]
command = ["-v"]
expect = "{version}"
[[images]]
name = "suite-ctl"
base = "suite-node"
[images.smoke]
command = ["version"]
expect = "v{version}"
"""


def test_multi_image_component_and_component_names_in_what(tmp_path: Path) -> None:
    write_component(tmp_path, "suite", MULTI)
    write_component(tmp_path, "a", simple("a"))
    catalog = load_catalog(tmp_path)
    comp = catalog.components["suite"]
    assert [i.name for i in comp.images] == ["suite-node", "suite-ctl"]
    assert comp.sources["node"].pin == "0123456789abcdef0123456789abcdef01234567"
    assert comp.images[0].env_for(parse_arch("mips64el")) == ("ETCD_UNSUPPORTED_ARCH=mips64le",)
    assert catalog.resolve("suite,a", ()) == ["suite-node", "suite-ctl", "a"]
    assert catalog.resolve("suite-ctl", ()) == ["suite-ctl"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('commit = "0123456789abcdef0123456789abcdef01234567"', "must be pinned with commit"),
        ('kind = "git"', "kind 'gti' is unknown"),
    ],
)
def test_unpinned_or_bad_source_is_refused(tmp_path: Path, change: str, message: str) -> None:
    bad = MULTI.replace(change, "" if "commit" in change else 'kind = "gti"')
    with pytest.raises(ConfigError, match=message):
        components.load_component(write_component(tmp_path, "suite", bad))


def test_tarball_needs_sha256_and_patch_files_exist(tmp_path: Path) -> None:
    body = MULTI.replace('kind = "git"', 'kind = "tarball"')
    with pytest.raises(ConfigError, match="must be pinned with sha256"):
        components.load_component(write_component(tmp_path, "suite", body))
    body = MULTI.replace('ref = "v3.8.2"', 'patches = [{ file = "patches/stat.patch", arches = ["mips64le"] }]')
    with pytest.raises(ConfigError, match="patch file .*stat.patch not found"):
        components.load_component(write_component(tmp_path, "suite", body))
    (tmp_path / "components" / "suite" / "patches").mkdir()
    (tmp_path / "components" / "suite" / "patches" / "stat.patch").write_text("")
    comp = components.load_component(tmp_path / "components" / "suite" / "component.toml")
    (patch,) = comp.sources["node"].patches
    assert patch.arches == ("mips64el",)
    assert patch.applies(parse_arch("mips64le"), "3.8.2") and not patch.applies(parse_arch("amd64"), "3.8.2")


def test_e2e_alias_checks_the_source_version() -> None:
    catalog = load_catalog(REPO)
    comp, image = catalog.image("etcd-3.3.15")
    assert (comp.kind, image.repo, comp.tag, image.base) == ("alias", "etcd", "3.3.15", "etcd")
    out = "etcd Version: 3.4.23\nOK\nok-mips64\n"
    assert image.smoke.pattern(comp.version, parse_arch("mips64el")).search(out)
    assert image.labels["org.kubemips.alias-of"] == "etcd:3.4.23"


def test_smoke_exit_code_defaults_to_zero_and_is_a_status(tmp_path: Path) -> None:
    comp = components.load_component(write_component(tmp_path, "x", simple("x")))
    assert comp.images[0].smoke.exit_code == 0
    body = simple("x").replace('expect = "ok"', 'expect = "ok"\nexit-code = 2')
    assert components.load_component(write_component(tmp_path, "x", body)).images[0].smoke.exit_code == 2
    with pytest.raises(ConfigError, match="exit-code must be 0 to 255"):
        components.load_component(write_component(tmp_path, "x", body.replace("exit-code = 2", "exit-code = 256")))
