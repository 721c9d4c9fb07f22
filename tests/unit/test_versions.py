import pytest

from kubemips import versions
from kubemips.errors import ConfigError


@pytest.mark.parametrize(
    ("version", "spec", "inside"),
    [
        ("v1.16.2", ">=1.16.0,<1.17.0", True),
        ("v1.17.0", ">=1.16.0,<1.17.0", False),
        ("v1.17.0", "<1.17.0", False),
        ("1.15.12", "<1.17.0", True),
        ("3.1", ">=3.0.0", True),
    ],
)
def test_in_range(version: str, spec: str, inside: bool) -> None:
    assert versions.in_range(version, spec) is inside


@pytest.mark.parametrize("spec", ["1.16", ">=1.16", "~1.16.0", ">=1.16.0;<2.0.0"])
def test_bad_range(spec: str) -> None:
    with pytest.raises(ConfigError, match="version range"):
        versions.check_range(spec, where="x")


def test_schemes() -> None:
    assert versions.validate("v1.16.2", "semver", where="x") == "v1.16.2"
    assert versions.validate("3.4.23-1", "debian", where="x") == "3.4.23-1"
    with pytest.raises(ConfigError, match="unknown version-scheme 'calver'"):
        versions.validate("1", "calver", where="x")
