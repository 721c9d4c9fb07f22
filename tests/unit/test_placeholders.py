import re

import pytest

from kubemips import placeholders
from kubemips.arch import parse_arch
from kubemips.errors import ConfigError

MIPS = parse_arch("mips64el")


def test_one_vocabulary_with_the_arch_spellings() -> None:
    values = placeholders.values("v1.16.2", MIPS)
    text = "{version} {major}.{minor} {arch} {oci} {debian} {uname} {triple}"
    assert (
        placeholders.fill(text, values, where="f")
        == "v1.16.2 1.16 mips64el mips64le mips64el mips64 mips64el-linux-gnuabi64"
    )
    assert set(values) == set(placeholders.KEYS) - {"commit", "date"}
    assert set(MIPS.placeholders()) == set(placeholders.ARCH_KEYS)


def test_unknown_placeholder_names_the_file_and_key() -> None:
    with pytest.raises(ConfigError, match=r"component.toml: \[build\] args: unknown placeholder \{goarch\}"):
        placeholders.fill("GOARCH={goarch}", placeholders.values("1.0", MIPS), where="component.toml: [build] args")
    with pytest.raises(ConfigError, match=r"x.toml env: unknown placeholder \{verison\}.*Perhaps you meant 'version'"):
        placeholders.check(["A={verison}"], where="x.toml env")
    with pytest.raises(ConfigError, match=r"x.toml env: \{commit\} has no value here"):
        placeholders.check("C={commit}", where="x.toml env", available=placeholders.ARCH_KEYS)


def test_shell_variables_and_regex_counts_are_not_placeholders() -> None:
    text = "echo ${Package} ${name} {} {1,3} \\d{2}"
    assert placeholders.fill(text, {}, where="f") == text


def test_escape_and_partial_fill() -> None:
    half = placeholders.fill("v{version} on {uname}", {"version": "1.6.2"}, where="f", escape=re.escape, partial=True)
    assert half == "v1\\.6\\.2 on {uname}"
    assert placeholders.fill(half, MIPS.placeholders(), where="f") == "v1\\.6\\.2 on mips64"
