"""The registry client's auth flow, retries and error messages against a scripted transport.

No network: a requests adapter answers every request from a small fake registry and
records what was sent.  The real registries are in tests/integration/test_registry_auth.py.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from kubemips import auth, config, oci
from kubemips.auth import Credentials, TokenCache
from kubemips.errors import ConfigError, RegistryError
from kubemips.registry import Registry, Retries, trust_for

SECRET = "s3cr3t-Pa55word"
TOKEN_PREFIX = "tok"
REALM = "https://auth.example.test/token"
HOST = "registry.example.test:5000"
Answer = tuple[int, dict[str, str], bytes] | Exception


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)


class Scripted(requests.adapters.BaseAdapter):
    """Answers each request with ``handler(sent)``: (status, headers, body) or an exception."""

    def __init__(self, handler: Callable[[Sent], Answer]) -> None:
        super().__init__()
        self.handler = handler
        self.sent: list[Sent] = []
        self.statuses: list[int] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        sent = Sent(request.method or "", request.url or "", dict(request.headers), body or b"")
        self.sent.append(sent)
        answer = self.handler(sent)
        if isinstance(answer, Exception):
            raise answer
        status, headers, content = answer
        self.statuses.append(status)
        resp = requests.Response()
        resp.status_code = status
        resp.reason = {200: "OK", 201: "Created", 202: "Accepted", 401: "Unauthorized"}.get(status, "Status")
        resp.headers = CaseInsensitiveDict(headers)
        resp._content = content
        resp._content_consumed = True
        resp.url = sent.url
        resp.request = request
        return resp

    def close(self) -> None:
        pass


@dataclass
class FakeRegistry:
    """A token-auth (or basic-auth) registry and its token service, as plain data."""

    scheme: str = "bearer"
    user: str = "alice"
    password: str = SECRET
    expires_in: int = 300
    tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)
    token_requests: list[Sent] = field(default_factory=list)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def challenge(self, scope: str) -> dict[str, str]:
        if self.scheme == "basic":
            return {"WWW-Authenticate": 'Basic realm="fake"'}
        scope_part = f',scope="{scope}"' if scope else ""
        return {"WWW-Authenticate": f'Bearer realm="{REALM}",service="fake-registry"{scope_part}'}

    def __call__(self, sent: Sent) -> Answer:
        if sent.url.startswith(REALM):
            return self.token(sent)
        path = sent.path
        repo, _, rest = path.removeprefix("/v2/").partition("/manifests/")
        need = ""
        if rest:
            need = f"repository:{repo}:{'pull' if sent.method in ('GET', 'HEAD') else 'pull,push'}"
        if not self.authorized(sent.headers.get("Authorization", ""), need):
            return 401, self.challenge(need), b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        if path == "/v2/":
            return 200, {}, b"{}"
        if sent.method == "PUT":
            self.manifests[repo, rest] = sent.body
            return 201, {"Docker-Content-Digest": oci.sha256_digest(sent.body)}, b""
        if (repo, rest) in self.manifests:
            return 200, {"Content-Type": oci.MANIFEST}, self.manifests[repo, rest]
        return 404, {}, b""

    def authorized(self, header: str, need: str) -> bool:
        if self.scheme == "basic":
            return header == "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if not header.startswith("Bearer "):
            return False
        granted = self.tokens.get(header[7:])
        return granted is not None and (not need or need in granted or _covers(granted, need))

    def token(self, sent: Sent) -> Answer:
        self.token_requests.append(sent)
        if sent.method == "POST":
            form = parse_qs(sent.body.decode())
            ok = form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [SECRET]
            scopes = tuple(form.get("scope", [""])[0].split())
        else:
            ok = (
                sent.headers.get("Authorization")
                == "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            )
            scopes = tuple(sent.query.get("scope", []))
        if not ok:
            return 401, {}, b'{"details":"bad credentials"}'
        value = f"{TOKEN_PREFIX}{len(self.tokens)}"
        self.tokens[value] = scopes
        return 200, {}, f'{{"token": "{value}", "expires_in": {self.expires_in}}}'.encode()


def _covers(granted: tuple[str, ...], need: str) -> bool:
    kind, name, actions = need.rsplit(":", 2)
    for g in granted:
        g_kind, g_name, g_actions = g.rsplit(":", 2)
        if (g_kind, g_name) == (kind, name) and set(actions.split(",")) <= set(g_actions.split(",")):
            return True
    return False


def client(
    handler: Callable[[Sent], Answer], creds: Credentials | None = None, **kwargs: Any
) -> tuple[Registry, Scripted]:
    reg = Registry(HOST, plain_http=False, credentials=creds, retries=Retries(backoff=0.0), **kwargs)
    adapter = Scripted(handler)
    reg.session.mount("https://", adapter)
    reg.session.mount("http://", adapter)
    return reg, adapter


def alice() -> Credentials:
    return Credentials("test", username="alice", password=SECRET)


MANIFEST = b'{"schemaVersion": 2}'


# -- bearer tokens ------------------------------------------------------------------------------


def test_bearer_token_per_scope_from_the_challenge_then_cached() -> None:
    fake = FakeRegistry()
    reg, adapter = client(fake, alice())
    reg.ping()
    digest = reg.put_manifest("team/app", oci.sha256_digest(MANIFEST), MANIFEST, oci.MANIFEST)
    assert reg.get_manifest("team/app", digest) is not None
    assert reg.get_manifest("team/app", digest) is not None
    reg.put_manifest("team/app", "v1", MANIFEST, oci.MANIFEST)
    scopes = [tuple(s.query.get("scope", [])) for s in fake.token_requests]
    # ping (no scope), push, then pull: one token each, reused afterwards.
    assert scopes == [(), ("repository:team/app:pull,push",), ("repository:team/app:pull",)]
    first = fake.token_requests[1]
    assert first.query["service"] == ["fake-registry"] and first.query["account"] == ["alice"]
    assert reg.get_manifest("other", digest) is None  # another repository: another token
    assert len(fake.token_requests) == 4
    # After the first challenge, tokens are fetched before each request: no more 401s.
    assert adapter.statuses.count(401) == 1 and adapter.statuses[0] == 401


def test_token_refreshed_on_expiry_and_on_a_401() -> None:
    fake = FakeRegistry(expires_in=60)
    reg, _ = client(fake, alice())
    clock = [0.0]
    reg._tokens = TokenCache(lambda: clock[0])
    digest = reg.put_manifest("app", oci.sha256_digest(MANIFEST), MANIFEST, oci.MANIFEST)
    assert len(fake.token_requests) == 1
    clock[0] = 44.0
    reg.get_manifest("app", digest)
    reg.put_manifest("app", digest, MANIFEST, oci.MANIFEST)
    assert len(fake.token_requests) == 2  # pull scope new, push scope still fresh
    clock[0] = 46.0  # the push token is now within its last quarter: fetched again
    reg.put_manifest("app", digest, MANIFEST, oci.MANIFEST)
    assert len(fake.token_requests) == 3
    fake.tokens.clear()  # the service revokes every token: one 401, one new token, success
    reg.put_manifest("app", digest, MANIFEST, oci.MANIFEST)
    assert len(fake.token_requests) == 4


def test_identity_token_uses_the_refresh_grant() -> None:
    fake = FakeRegistry()
    reg, _ = client(fake, Credentials("helper", identity_token=SECRET))
    reg.put_manifest("app", "v1", MANIFEST, oci.MANIFEST)
    post = fake.token_requests[-1]
    assert post.method == "POST"
    form = parse_qs(post.body.decode())
    assert form["scope"] == ["repository:app:pull,push"] and form["service"] == ["fake-registry"]
    assert "Authorization" not in post.headers


def test_refused_credentials_name_their_source_not_their_value() -> None:
    fake = FakeRegistry(password="the-right-one")
    reg, _ = client(fake, alice())
    with pytest.raises(RegistryError) as err:
        reg.ping()
    text = str(err.value)
    assert "token service refused the credentials from test" in text and HOST in text
    assert SECRET not in text


def test_no_credentials_says_how_to_give_them() -> None:
    reg, _ = client(FakeRegistry())
    with pytest.raises(RegistryError) as err:
        reg.ping()
    assert f"docker login {HOST}" in str(err.value)
    assert "KUBEMIPS_REGISTRY_USERNAME and KUBEMIPS_REGISTRY_PASSWORD" in str(err.value)


def test_credentials_looked_up_only_when_asked() -> None:
    calls: list[int] = []

    def lookup() -> Credentials | None:
        calls.append(1)
        return alice()

    open_registry = FakeRegistry()
    open_registry.authorized = lambda header, need: True  # type: ignore[method-assign]
    reg, _ = client(open_registry, lookup)  # type: ignore[arg-type]
    reg.ping()
    reg.get_manifest("app", "v1")
    assert calls == []
    reg2, _ = client(FakeRegistry(), lookup)  # type: ignore[arg-type]
    reg2.ping()
    reg2.get_manifest("app", "v1")
    assert calls == [1]


def test_plain_http_realm_gets_no_credentials() -> None:
    fake = FakeRegistry()
    fake.challenge = lambda scope: {"WWW-Authenticate": 'Bearer realm="http://auth.example.test/token"'}  # type: ignore[method-assign]
    reg, adapter = client(fake, alice())
    with pytest.raises(RegistryError, match="is plain HTTP; credentials are not sent there"):
        reg.ping()
    assert all(not s.url.startswith("http://auth") for s in adapter.sent)


# -- basic auth ---------------------------------------------------------------------------------


def test_basic_auth_after_the_first_challenge() -> None:
    fake = FakeRegistry(scheme="basic")
    reg, adapter = client(fake, alice())
    reg.ping()
    reg.put_manifest("app", "v1", MANIFEST, oci.MANIFEST)
    reg.get_manifest("app", "v1")
    statuses = [s.headers.get("Authorization", "").split(" ")[0] for s in adapter.sent]
    assert statuses == ["", "Basic", "Basic", "Basic"]  # one challenge, then sent up front
    assert fake.token_requests == []


def test_basic_auth_without_credentials() -> None:
    reg, _ = client(FakeRegistry(scheme="basic"))
    with pytest.raises(RegistryError, match=f"registry {HOST} requires credentials: `docker login {HOST}`"):
        reg.ping()


def test_basic_auth_refused() -> None:
    reg, _ = client(FakeRegistry(scheme="basic", password="nope"), alice())
    with pytest.raises(RegistryError, match="credentials from test were refused"):
        reg.ping()


# -- retries and timeouts -----------------------------------------------------------------------


def flaky(answers: list[Answer], then: Answer) -> Callable[[Sent], Answer]:
    queue = list(answers)
    return lambda sent: queue.pop(0) if queue else then


def reset() -> requests.ConnectionError:
    return requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")))


def test_idempotent_requests_retry_5xx_and_resets() -> None:
    reg, adapter = client(
        flaky([(503, {}, b""), reset(), (502, {}, b"")], (200, {"Content-Type": oci.MANIFEST}, MANIFEST))
    )
    manifest = reg.get_manifest("app", "v1")
    assert manifest is not None and manifest.raw == MANIFEST
    assert len(adapter.sent) == 4


def test_retries_give_up_with_the_last_answer() -> None:
    reg, adapter = client(flaky([], (500, {}, b"storage down")))
    with pytest.raises(RegistryError, match="get manifest app:v1: registry answered 500 Status: storage down"):
        reg.get_manifest("app", "v1")
    assert len(adapter.sent) == 4


def test_a_rejected_manifest_push_is_never_retried() -> None:
    reg, adapter = client(flaky([], (400, {}, b'{"errors":[{"code":"MANIFEST_INVALID"}]}')))
    with pytest.raises(RegistryError, match="400"):
        reg.put_manifest("app", "v1", MANIFEST, oci.MANIFEST)
    assert len(adapter.sent) == 1


def test_manifest_put_retried_on_502() -> None:
    digest = oci.sha256_digest(MANIFEST)
    reg, adapter = client(flaky([(502, {}, b"")], (201, {"Docker-Content-Digest": digest}, b"")))
    assert reg.put_manifest("app", digest, MANIFEST, oci.MANIFEST) == digest
    assert [s.body for s in adapter.sent] == [MANIFEST, MANIFEST]


def test_blob_upload_retried_as_a_whole(tmp_path: Path) -> None:
    blob = oci.BlobStore(tmp_path).put_bytes(b"layer bytes", oci.LAYER)
    location = f"https://{HOST}/v2/app/blobs/uploads/u1?_state=x"
    script: list[Answer] = [
        (404, {}, b""),  # HEAD
        (202, {"Location": location}, b""),  # POST
        reset(),  # PUT: connection lost mid-upload
        (404, {}, b""),  # HEAD again
        (202, {"Location": location}, b""),
        (201, {}, b""),
    ]
    reg, adapter = client(flaky(script, (500, {}, b"")))
    assert reg.push_blob("app", blob) is True
    assert [s.method for s in adapter.sent] == ["HEAD", "POST", "PUT", "HEAD", "POST", "PUT"]
    assert adapter.sent[-1].body == b"layer bytes"  # the file was opened again for the second PUT


def test_blob_upload_rejected_is_not_retried(tmp_path: Path) -> None:
    blob = oci.BlobStore(tmp_path).put_bytes(b"layer bytes", oci.LAYER)
    script: list[Answer] = [(404, {}, b""), (202, {"Location": "/v2/app/blobs/uploads/u1"}, b"")]
    reg, adapter = client(flaky(script, (400, {}, b'{"errors":[{"code":"DIGEST_INVALID"}]}')))
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        reg.push_blob("app", blob)
    assert len(adapter.sent) == 3


def test_refused_connection_is_not_retried() -> None:
    refused = requests.ConnectionError(MaxRetryError(None, "/v2/", NewConnectionError(None, "refused")))  # type: ignore[arg-type]
    reg, adapter = client(flaky([], refused))
    with pytest.raises(RegistryError, match=f"registry {HOST} is not reachable \\(ping\\)"):
        reg.ping()
    assert len(adapter.sent) == 1


def test_timeouts_name_registry_operation_and_limit() -> None:
    timeout = requests.exceptions.ReadTimeout("HTTPSConnectionPool: Read timed out. (read timeout=10.0)")
    reg, adapter = client(flaky([], timeout))
    with pytest.raises(RegistryError) as err:
        reg.get_manifest("app", "v1")
    assert str(err.value) == (
        f"registry {HOST} timed out (get manifest app:v1): it accepted the connection but sent no answer within 10s"
    )
    assert len(adapter.sent) == 1  # a registry that does not answer is not asked again and again
    reg, _ = client(flaky([], requests.exceptions.ConnectTimeout("connect")))
    with pytest.raises(RegistryError, match=f"registry {HOST} timed out \\(ping\\): no connection within 5s"):
        reg.ping()


# -- never shown --------------------------------------------------------------------------------


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def test_credentials_and_tokens_never_shown(
    every_log: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A registry that echoes the request's Authorization header in its errors (it happens)."""
    fake = FakeRegistry()
    reg, adapter = client(fake, alice())
    reg.put_manifest("app", "v1", MANIFEST, oci.MANIFEST)
    token = next(iter(fake.tokens))
    basic = alice().basic.split()[1]

    def echo(sent: Sent) -> Answer:
        if sent.url.startswith(REALM):
            return fake(sent)
        return 500, {}, f"failed for {sent.headers.get('Authorization')} / {SECRET}".encode()

    adapter.handler = echo
    with pytest.raises(RegistryError) as err:
        reg.put_manifest("app", "v2", MANIFEST, oci.MANIFEST)
    fake.password = "changed"
    adapter.handler = fake
    fake.tokens.clear()
    with pytest.raises(RegistryError) as refused:
        reg.get_manifest("other", "v1")
    out = capsys.readouterr()
    shown = "\n".join(
        [str(err.value), repr(err.value), str(refused.value), repr(reg), out.out, out.err, every_log.text]
    )
    assert "***" in str(err.value)
    for secret in (SECRET, token, basic):
        assert secret not in shown


# -- transport choice ---------------------------------------------------------------------------


def test_transport_by_host(tmp_path: Path) -> None:
    assert Registry("registry.example.test").base == "https://registry.example.test"
    assert Registry("registry.example.test", plain_http=True).base == "http://registry.example.test"
    loop = Registry("127.0.0.1:5999")
    assert loop.transport == "not probed yet"  # TLS is tried first, then plain HTTP
    s = config.load(root=tmp_path, env={})
    embedded = Registry.configured(s)
    assert embedded.transport == "http"
    s = config.load(root=tmp_path, env={"REGISTRY": "registry.example.test/ns"})
    assert Registry.configured(s).transport == "https"
    (tmp_path / "kubemips.toml").write_text("[registry]\ninsecure = true\n")
    s = config.load(root=tmp_path, env={"REGISTRY": "registry.example.test/ns"})
    assert Registry.configured(s).transport == "http"


def test_environment_credentials_only_for_the_configured_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEMIPS_REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("KUBEMIPS_REGISTRY_PASSWORD", SECRET)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    s = config.load(root=tmp_path, env={"REGISTRY": "registry.example.test"})
    target = Registry.configured(s)
    mirror_source = Registry.configured(s, "mirror.example.test")
    assert target._credentials() is not None
    assert mirror_source._credentials() is None


def pem(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return path


def test_trust_system_store_docker_certs_d_and_ca_file(tmp_path: Path) -> None:
    plain = trust_for("reg.test:443", certs_dir=tmp_path)
    assert plain.extra == () and plain.client_cert is None
    certs = tmp_path / "certs.d" / "reg.test:443"
    certs.mkdir(parents=True)
    docker_ca = pem(certs, "ca.crt")
    (certs / "client.cert").write_text("c")
    (certs / "client.key").write_text("k")
    own = pem(tmp_path, "own-ca.pem")
    trust = trust_for("reg.test:443", ca_file=own, certs_dir=tmp_path / "certs.d")
    assert trust.extra == (str(docker_ca), str(own))
    assert trust.client_cert == (str(certs / "client.cert"), str(certs / "client.key"))
    assert isinstance(trust.bundle, str)
    bundle = Path(trust.bundle).read_text()
    assert bundle.count("-----BEGIN CERTIFICATE-----") > 2  # the system store is still in it
    if isinstance(plain.bundle, str):
        assert Path(plain.bundle).read_text() in bundle


def test_bad_ca_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        trust_for("reg.test", ca_file=junk, certs_dir=tmp_path)
    certs = tmp_path / "reg.test"
    certs.mkdir()
    (certs / "client.cert").write_text("c")
    with pytest.raises(ConfigError, match="client certificate without its key"):
        trust_for("reg.test", certs_dir=tmp_path)


def test_secret_scrub_covers_tokens_held() -> None:
    reg, _ = client(FakeRegistry(), alice())
    reg._tokens.put(["s"], "tok-abc", 60)
    assert reg._error("x tok-abc y " + SECRET).args[0] == "x *** y ***"
    assert auth.scrub("tok-abc", reg._secrets()) == "***"
