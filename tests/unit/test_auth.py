"""Credentials lookup, challenge parsing and the token cache: no network."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from kubemips import auth
from kubemips.auth import Challenge, Credentials, TokenCache, parse_challenges
from kubemips.engine import RegistryAuth
from kubemips.errors import ConfigError, RegistryError

SECRET = "s3cr3t-Pa55word"


def docker_config(tmp_path: Path, body: dict[str, object]) -> dict[str, str]:
    """A DOCKER_CONFIG directory holding ``body`` as config.json; returns the environment."""
    folder = tmp_path / "docker"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(body))
    return {"DOCKER_CONFIG": str(folder), "HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}


def basic_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- challenges ---------------------------------------------------------------------------------


def test_bearer_challenge_with_comma_in_quoted_scope() -> None:
    header = (
        'Bearer realm="https://auth.example.test/token",service="registry.example.test",'
        'scope="repository:team/app:pull,push"'
    )
    (challenge,) = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example.test/token"
    assert challenge.service == "registry.example.test"
    assert challenge.scopes == ("repository:team/app:pull,push",)


def test_several_challenges_scopes_and_escapes() -> None:
    header = (
        'Basic realm="Registry \\"main\\"", Bearer realm="https://a.test/t",'
        'scope="repository:a:pull repository:b:pull,push",error="insufficient_scope"'
    )
    basic, bearer = parse_challenges(header)
    assert basic == Challenge("basic", {"realm": 'Registry "main"'})
    assert bearer.scopes == ("repository:a:pull", "repository:b:pull,push")
    assert bearer.params["error"] == "insufficient_scope"


def test_challenge_edge_cases() -> None:
    assert parse_challenges("") == []
    assert [c.scheme for c in parse_challenges("Basic, Bearer realm=x")] == ["basic", "bearer"]
    assert parse_challenges('BEARER Realm="https://t.test/x"')[0].realm == "https://t.test/x"
    # A token68 (Negotiate's blob) and stray parameters are skipped, not misread.
    assert [c.scheme for c in parse_challenges('realm="orphan", Negotiate abc==, Basic')] == ["negotiate", "basic"]


def test_scopes() -> None:
    assert auth.repository_scope("lib/pause") == "repository:lib/pause:pull"
    assert auth.repository_scope("lib/pause", push=True) == "repository:lib/pause:pull,push"
    assert auth.scope_key(["b", "a", "b"]) == "a b"


# -- the token cache ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_cache_is_per_scope_and_refreshes_before_expiry() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    pull, push = ["repository:a:pull"], ["repository:a:pull,push"]
    cache.put(pull, "tok-pull", 300)
    assert cache.get(pull) == "tok-pull"
    assert cache.get(push) is None
    assert cache.get(["repository:b:pull"]) is None
    clock.now += 269  # 300 s lifetime, refreshed with 30 s to spare
    assert cache.get(pull) == "tok-pull"
    clock.now += 1
    assert cache.get(pull) is None


def test_token_cache_default_lifetime_and_drop() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    cache.put(["s"], "t", None)  # no expires_in: 60 s, per the spec
    clock.now += 44
    assert cache.get(["s"]) == "t"
    clock.now += 1
    assert cache.get(["s"]) is None
    cache.put(["s"], "t2", 60)
    cache.drop(["s"])
    assert cache.get(["s"]) is None
    assert "t2" not in repr(cache)


def test_token_response() -> None:
    assert auth.parse_token_response(b'{"token": "abc.def.ghi", "expires_in": 120}') == ("abc.def.ghi", 120.0)
    assert auth.parse_token_response(b'{"access_token": "xyz"}') == ("xyz", None)
    with pytest.raises(RegistryError, match="holds no token"):
        auth.parse_token_response(b"{}")
    with pytest.raises(RegistryError, match="not a valid bearer token"):
        auth.parse_token_response(b'{"token": "a b\\r\\nX-Evil: 1"}')
    with pytest.raises(RegistryError, match="JSON"):
        auth.parse_token_response(b"<html>")


# -- where credentials come from --------------------------------------------------------------------


def test_environment_credentials_both_names() -> None:
    env = {"KUBEMIPS_REGISTRY_USERNAME": "ci", "KUBEMIPS_REGISTRY_PASSWORD": SECRET}
    creds = auth.from_environment(env)
    assert creds is not None and (creds.username, creds.password) == ("ci", SECRET)
    assert creds.source == "$KUBEMIPS_REGISTRY_USERNAME/$KUBEMIPS_REGISTRY_PASSWORD"
    legacy = auth.from_environment({"REGISTRY_USERNAME": "gh", "REGISTRY_PASSWORD": SECRET})
    assert legacy is not None and legacy.username == "gh"
    assert auth.from_environment({}) is None


def test_half_set_environment_is_an_error_without_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        auth.from_environment({"KUBEMIPS_REGISTRY_PASSWORD": SECRET})
    assert "KUBEMIPS_REGISTRY_USERNAME is not" in str(err.value)
    assert SECRET not in str(err.value)


def test_docker_config_auths(tmp_path: Path) -> None:
    env = docker_config(
        tmp_path,
        {
            "auths": {
                "127.0.0.1:5000": basic_entry("alice", SECRET),
                "https://registry.example.test/v1/": basic_entry("bob", "other"),
            }
        },
    )
    creds = auth.lookup("127.0.0.1:5000", env=env)
    assert creds is not None and (creds.username, creds.password) == ("alice", SECRET)
    assert creds.source == f"{tmp_path / 'docker' / 'config.json'} auths"
    legacy_key = auth.lookup("registry.example.test", env=env)  # keys written as URLs match by host
    assert legacy_key is not None and legacy_key.username == "bob"
    assert auth.lookup("127.0.0.1:5001", env=env) is None


def test_docker_config_in_home_when_no_docker_config_variable(tmp_path: Path) -> None:
    env = docker_config(tmp_path, {"auths": {"reg.test": basic_entry("u", SECRET)}})
    (tmp_path / "docker").rename(tmp_path / ".docker")
    del env["DOCKER_CONFIG"]
    creds = auth.lookup("reg.test", env=env)
    assert creds is not None and creds.password == SECRET


def test_environment_comes_first_unless_not_for_this_registry(tmp_path: Path) -> None:
    env = docker_config(tmp_path, {"auths": {"reg.test": basic_entry("from-file", "p1")}})
    env.update({"KUBEMIPS_REGISTRY_USERNAME": "from-env", "KUBEMIPS_REGISTRY_PASSWORD": "p2"})
    chosen = auth.lookup("reg.test", env=env)
    assert chosen is not None and chosen.username == "from-env"
    other = auth.lookup("reg.test", env=env, use_environment=False)
    assert other is not None and other.username == "from-file"
    assert auth.lookup("mirror.test", env=env, use_environment=False) is None


def test_identity_token_entry(tmp_path: Path) -> None:
    env = docker_config(tmp_path, {"auths": {"reg.test": {"identitytoken": SECRET}}})
    creds = auth.lookup("reg.test", env=env)
    assert creds is not None and creds.identity_token == SECRET and not creds.username
    assert auth.engine_auth_config("reg.test", env=env) == {"identitytoken": SECRET, "serveraddress": "reg.test"}


def fake_helper(tmp_path: Path, name: str, username: str, secret: str) -> str:
    """A docker-credential-NAME on a private PATH answering `get` for 127.0.0.1:5000 only."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / f"docker-credential-{name}"
    answer = json.dumps({"ServerURL": "127.0.0.1:5000", "Username": username, "Secret": secret})
    exe.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read -r server\n"
        f"if [ \"$server\" = 127.0.0.1:5000 ]; then echo '{answer}'; exit 0; fi\n"
        "echo 'credentials not found in native keychain'; exit 1\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(bindir)


def test_credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = fake_helper(tmp_path, "kmtest", "helper-user", SECRET)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    env = docker_config(tmp_path, {"credHelpers": {"127.0.0.1:5000": "kmtest"}})
    creds = auth.lookup("127.0.0.1:5000", env=env)
    assert creds is not None and (creds.username, creds.password) == ("helper-user", SECRET)
    assert creds.source.startswith("credential helper docker-credential-kmtest")
    assert auth.lookup("127.0.0.1:6000", env=env) is None  # not the helper's registry: no auths entry


def test_credential_store_token_and_missing_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = fake_helper(tmp_path, "kmstore", "<token>", SECRET)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    env = docker_config(tmp_path, {"credsStore": "kmstore"})
    creds = auth.lookup("127.0.0.1:5000", env=env)
    assert creds is not None and creds.identity_token == SECRET
    env = docker_config(tmp_path, {"credsStore": "not-installed-here"})
    with pytest.raises(RegistryError, match="docker-credential-not-installed-here failed for 127.0.0.1:5000"):
        auth.lookup("127.0.0.1:5000", env=env)


def test_malformed_docker_config_names_the_file_not_the_content(tmp_path: Path) -> None:
    env = docker_config(tmp_path, {})
    path = Path(env["DOCKER_CONFIG"]) / "config.json"
    path.write_text('{"auths": {"reg.test": {"auth": "' + SECRET + '"')
    with pytest.raises(ConfigError) as err:
        auth.lookup("reg.test", env=env)
    assert str(path) in str(err.value) and SECRET not in str(err.value)
    path.write_text(json.dumps({"auths": {"reg.test": {"auth": "@@" + SECRET}}}))
    with pytest.raises(ConfigError) as err:
        auth.lookup("reg.test", env=env)
    assert "not base64" in str(err.value) and SECRET not in str(err.value)


def test_no_docker_config_no_credentials(tmp_path: Path) -> None:
    assert auth.lookup("reg.test", env={"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "none")}) is None


def test_engine_auth_config(tmp_path: Path) -> None:
    env = docker_config(tmp_path, {"auths": {"127.0.0.1:5000": basic_entry("alice", SECRET)}})
    assert auth.engine_auth_config("127.0.0.1:5000", env=env) == {
        "username": "alice",
        "password": SECRET,
        "serveraddress": "127.0.0.1:5000",
    }
    assert auth.engine_auth_config("127.0.0.1:5999", env=env) is None


def test_engine_sends_credentials_to_the_configured_registry_only() -> None:
    calls = []

    def lookup() -> Credentials | None:
        calls.append(1)
        return Credentials("test", identity_token=SECRET)

    registry_auth = RegistryAuth("reg.test:5000", lookup)
    assert calls == []  # looked up at the first pull, not before
    assert registry_auth.config_for("reg.test:5000") == {"identitytoken": SECRET, "serveraddress": "reg.test:5000"}
    assert registry_auth.config_for("other.test:5000") is None
    assert registry_auth.config_for("reg.test") is None
    assert SECRET not in repr(registry_auth)
    assert RegistryAuth("reg.test", lambda: None).config_for("reg.test") is None


def test_lookup_runs_once_and_lazily(tmp_path: Path) -> None:
    env = docker_config(tmp_path, {"auths": {"reg.test": basic_entry("u", SECRET)}})
    lookup = auth.CredentialLookup("reg.test", env=env)
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text("{}")  # read at the first call, not before
    assert lookup() is None
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps({"auths": {"reg.test": basic_entry("u", "x")}}))
    assert lookup() is None  # and only once
    assert "reg.test" in repr(lookup)


# -- never shown ----------------------------------------------------------------------------------


def test_credentials_never_show_their_secrets() -> None:
    creds = Credentials("$KUBEMIPS_REGISTRY_USERNAME/$KUBEMIPS_REGISTRY_PASSWORD", username="ci", password=SECRET)
    token = Credentials("helper", identity_token=SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds, token]), str(token)):
        assert SECRET not in text
        assert creds.basic.split()[1] not in text
    assert "username and password from $KUBEMIPS_REGISTRY_USERNAME" in repr(creds)
    assert set(creds.secrets()) == {SECRET, creds.basic.split()[1]}


def test_scrub() -> None:
    text = f"echoed {SECRET} and {SECRET[:-1]}"
    assert auth.scrub(text, [SECRET, SECRET[:-1], ""]) == "echoed *** and ***"
