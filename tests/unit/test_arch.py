import pytest

from kubemips.arch import ARCHES, from_oci, parse_arch, parse_arches
from kubemips.errors import ConfigError


@pytest.mark.parametrize("spelling", ["mips64el", "mips64le", "MIPS64LE", "linux/mips64le", "mips64"])
def test_mips_spellings_resolve_to_one_entry(spelling: str) -> None:
    arch = parse_arch(spelling)
    assert (arch.name, arch.oci, arch.debian, arch.qemu, arch.uname, arch.triple) == (
        "mips64el",
        "mips64le",
        "mips64el",
        "mips64el",
        "mips64",
        "mips64el-linux-gnuabi64",
    )
    assert arch.platform == "linux/mips64le"
    assert arch.variant is None
    assert arch.tag_suffix == "linux-mips64le"


def test_amd64_synonyms() -> None:
    assert parse_arch("x86_64") is parse_arch("amd64")
    assert parse_arch("amd64").triple == "x86_64-linux-gnu"


def test_unknown_arch_lists_known_and_suggests() -> None:
    with pytest.raises(ConfigError) as err:
        parse_arch("mips64e")
    text = str(err.value)
    assert "unknown architecture 'mips64e'" in text
    assert "amd64, mips64el" in text
    assert "Perhaps you meant 'mips64el'" in text


def test_parse_arches_keeps_order_and_drops_repeats() -> None:
    assert [a.name for a in parse_arches("mips64le, amd64,mips64el")] == ["mips64el", "amd64"]
    assert [a.name for a in parse_arches(["amd64"])] == ["amd64"]
    with pytest.raises(ConfigError):
        parse_arches("")


def test_table_has_no_ambiguous_spelling() -> None:
    seen: dict[str, str] = {}
    for arch in ARCHES:
        for spelling in arch.spellings():
            assert seen.setdefault(spelling.lower(), arch.name) == arch.name


def test_from_oci() -> None:
    assert from_oci("mips64le") is parse_arch("mips64el")
    assert from_oci("arm64") is None


def test_a_lists_child_is_found_by_platform_among_others() -> None:
    from kubemips.verify import child_for

    doc = {
        "manifests": [
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": "sha256:win", "platform": {"os": "windows", "architecture": "amd64"}},
            {"digest": "sha256:mips", "platform": {"os": "linux", "architecture": "mips64le"}},
            {"digest": "sha256:x86", "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    }
    assert child_for(doc, parse_arch("mips64el")) == "sha256:mips"
    assert child_for(doc, parse_arch("amd64")) == "sha256:x86"  # not the windows one listed first
    assert child_for({"manifests": doc["manifests"][:2]}, parse_arch("amd64")) is None
    assert child_for({}, parse_arch("amd64")) is None
