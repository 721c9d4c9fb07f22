from pathlib import Path

import pytest

from kubemips import config, shard
from kubemips.errors import ConfigError
from kubemips.schema import read_toml


def load(
    tmp_path: Path, text: str | None = None, env: dict[str, str] | None = None, **flags: object
) -> config.Settings:
    if text is not None:
        (tmp_path / "kubemips.toml").write_text(text)
    return config.load(root=tmp_path, env=env or {}, flags=flags or None)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.registry == "127.0.0.1:5000"
    assert s.embedded and s.plain_http
    assert [a.name for a in s.arches] == ["amd64", "mips64el"]
    assert s.cache_dir == tmp_path / ".cache"
    assert s.sources["build.jobs"] == "default"


def test_repo_config_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    s = config.load(root=root, env={})
    assert s.config_path == root / "kubemips.toml"
    assert s.debian_suite == "bookworm"


def test_unknown_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "[build]\narchitecture = ['amd64']\n")
    text = str(err.value)
    assert str(tmp_path / "kubemips.toml") in text
    assert "[build]: unknown key 'architecture'." in text
    assert "Perhaps you meant 'architectures'" in text


def test_unknown_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown table \[registy\].*Perhaps you meant 'registry'"):
        load(tmp_path, "[registy]\naddress = 'x'\n")


def test_malformed_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="malformed TOML"):
        load(tmp_path, "[build\n")


def test_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[build\]: 'jobs' must be an integer, got 'two'"):
        load(tmp_path, "[build]\njobs = 'two'\n")
    with pytest.raises(ConfigError, match="'jobs' must be an integer, got True"):
        load(tmp_path, "[build]\njobs = true\n")
    with pytest.raises(ConfigError, match="'architectures' must be a list of strings"):
        load(tmp_path, "[build]\narchitectures = [1]\n")


def test_bad_arch_in_file_names_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "[build]\narchitectures = ['amd64', 'sparc']\n")
    assert "kubemips.toml: 'build.architectures'" in str(err.value)
    assert "unknown architecture 'sparc'" in str(err.value)


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    text = "[build]\narchitectures = ['amd64']\njobs = 1\n"
    s = load(tmp_path, text, env={"ALL_ARCH": "mips64le", "REGISTRY": "127.0.0.1:5999/k8s", "KUBEMIPS_JOBS": "3"})
    assert [a.name for a in s.arches] == ["mips64el"]
    assert s.registry == "127.0.0.1:5999/k8s" and not s.embedded
    assert s.registry_host == "127.0.0.1:5999"
    assert s.jobs == 3 and s.sources["build.jobs"] == "$KUBEMIPS_JOBS"
    s = load(tmp_path, text, env={"KUBEMIPS_JOBS": "3"}, **{"build.jobs": 4})
    assert s.jobs == 4 and s.sources["build.jobs"] == "flag"


def test_non_loopback_registry_uses_https_unless_insecure(tmp_path: Path) -> None:
    s = load(tmp_path, env={"REGISTRY": "registry.example.test/k8s"})
    assert not s.plain_http
    s = load(tmp_path, "[registry]\ninsecure = true\n", env={"REGISTRY": "registry.example.test"})
    assert s.plain_http


@pytest.mark.parametrize("bad", ["http://127.0.0.1:5000", "127.0.0.1:5000/Upper", "a b"])
def test_bad_registry(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="registry"):
        load(tmp_path, env={"REGISTRY": bad})


def test_embedded_listen_must_be_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        load(tmp_path, "[registry]\nembedded-listen = '0.0.0.0:5000'\n")


def test_bad_env_integer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUBEMIPS_JOBS"):
        load(tmp_path, env={"KUBEMIPS_JOBS": "many"})


def test_explicit_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        config.load(root=tmp_path, config_file=tmp_path / "nope.toml", env={})


def test_mirror_must_be_uri(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="debian.mirror"):
        load(tmp_path, "[debian]\nmirror = 'mirror.example.test/debian'\n")


@pytest.mark.parametrize(
    ("host", "loop"), [("127.0.0.1:5000", True), ("localhost:1", True), ("[::1]:5000", True), ("10.0.0.1:5000", False)]
)
def test_is_loopback(host: str, loop: bool) -> None:
    assert config.is_loopback(host) is loop


def test_registry_ca_file_from_file_or_environment(tmp_path: Path) -> None:
    ca = tmp_path / "certs" / "ca.pem"
    ca.parent.mkdir()
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load(tmp_path).ca_file is None
    s = load(tmp_path, '[registry]\nca-file = "certs/ca.pem"\n')
    assert s.ca_file == ca
    s = load(tmp_path, env={"KUBEMIPS_REGISTRY_CA": str(ca)})
    assert s.ca_file == ca and s.sources["registry.ca-file"] == "$KUBEMIPS_REGISTRY_CA"
    with pytest.raises(ConfigError, match=r"\$KUBEMIPS_REGISTRY_CA: 'registry.ca-file': no such file"):
        load(tmp_path, env={"KUBEMIPS_REGISTRY_CA": str(tmp_path / "missing.pem")})


def test_version_comes_from_the_environment_only(tmp_path: Path) -> None:
    s = load(tmp_path, env={"VERSION": " 3.2 ", "WHAT": "pause,etcd"})
    assert s.version == "3.2" and s.sources["build.version"] == "$VERSION"
    assert s.default_what == ("pause", "etcd") and s.sources["build.default-what"] == "$WHAT"
    assert load(tmp_path).version == ""
    with pytest.raises(ConfigError, match="unknown key 'version'"):
        load(tmp_path, "[build]\nversion = '3.2'\n")


def test_the_project_file_lists_every_key_with_configs_default() -> None:
    """config.SCHEMA is where defaults live; kubemips.toml shows them and must not drift."""
    root = Path(__file__).resolve().parents[2]
    listed = read_toml(root / config.CONFIG_NAME)
    assert sorted(listed) == sorted(config.SCHEMA)
    for table, keys in config.SCHEMA.items():
        assert sorted(listed[table]) == sorted(keys), f"[{table}]"
        for key, spec in keys.items():
            assert listed[table][key] == spec.default, f"[{table}] {key}"
    assert f"(default: {shard.DEFAULT_RUNNER})" in (root / config.CONFIG_NAME).read_text()
