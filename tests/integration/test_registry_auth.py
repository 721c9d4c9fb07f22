"""The registry client against real registries that ask for credentials, and one that hangs.

Each registry is Debian's docker-registry (the CNCF distribution registry) started here on
127.0.0.1 with its own config:

- htpasswd (bcrypt) Basic auth over TLS, with a CA and a server certificate made here;
- token auth (``auth: token``), plain HTTP, whose issuer is a small token service in this
  file (over TLS, on 127.0.0.1) signing RS256 JWTs with a key made here: the registry
  checks them against the issuer's certificate, as it would a real one's.

Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kubemips import auth, config, oci
from kubemips.arch import parse_arch
from kubemips.auth import Credentials
from kubemips.errors import RegistryError
from kubemips.registry import Registry
from kubemips.verify import verify_image, verify_list

from ..conftest import missing
from .conftest import Cli, docker_cli, free_port, remove_engine_leftovers
from .test_bad_input import GOOD, component

pytestmark = pytest.mark.integration

USER = "alice"
PASSWORD = "pa55-" + secrets.token_hex(8)
ISSUER = "kubemips-test-issuer"
SERVICE = "kubemips-test-registry"


# -- certificates -------------------------------------------------------------------------------


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


@dataclass(frozen=True)
class Pki:
    """A test CA, a server certificate for 127.0.0.1 it signed, and a token issuer's key pair."""

    dir: Path

    ca = property(lambda self: self.dir / "ca.crt")
    server_cert = property(lambda self: self.dir / "server.crt")
    server_key = property(lambda self: self.dir / "server.key")
    issuer_cert = property(lambda self: self.dir / "issuer.crt")
    issuer_key = property(lambda self: self.dir / "issuer.key")
    other_ca = property(lambda self: self.dir / "other-ca.crt")

    def make(self) -> Pki:
        d = self.dir
        for name, cn in (("ca", "kubemips test CA"), ("other-ca", "unrelated CA"), ("issuer", ISSUER)):
            openssl(
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"),
            )  # fmt: skip
        openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(self.server_key), "-out", str(d / "server.csr"),
        )  # fmt: skip
        (d / "server.ext").write_text(
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n"
            "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
        )
        openssl(
            "x509", "-req", "-in", str(d / "server.csr"), "-CA", str(self.ca), "-CAkey", str(d / "ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", str(d / "server.ext"), "-out", str(self.server_cert),
        )  # fmt: skip
        return self

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        missing("openssl not on PATH (apt-get install openssl)")
    return Pki(tmp_path_factory.mktemp("pki")).make()


# -- registries ---------------------------------------------------------------------------------


@dataclass
class RunningRegistry:
    listen: str
    proc: subprocess.Popen[bytes]
    log: Path


def start_registry(state: Path, extra: dict[str, object], *, tls: Pki | None = None) -> RunningRegistry:
    exe = shutil.which("docker-registry")
    if exe is None:
        missing("docker-registry not on PATH (run scripts/setup-host.sh)")
    listen = f"127.0.0.1:{free_port()}"
    http: dict[str, object] = {"addr": listen}
    if tls is not None:
        http["tls"] = {"certificate": str(tls.server_cert), "key": str(tls.server_key)}
    cfg = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(state / "data")}, "delete": {"enabled": True}},
        "http": http,
        **extra,
    }
    (state / "config.yml").write_text(json.dumps(cfg, indent=2))
    log = state / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "serve", str(state / "config.yml")], stdout=out, stderr=subprocess.STDOUT)
    scheme = "https" if tls else "http"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"registry exited: {log.read_text()[-2000:]}")
        try:
            requests.get(f"{scheme}://{listen}/v2/", timeout=2, verify=str(tls.ca) if tls else True)
            return RunningRegistry(listen, proc, log)
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"registry on {listen} did not answer: {log.read_text()[-2000:]}")


def stop(reg: RunningRegistry) -> None:
    reg.proc.terminate()
    try:
        reg.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        reg.proc.kill()
        reg.proc.wait()


@pytest.fixture(scope="module")
def basic_registry(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """htpasswd (bcrypt) Basic auth over TLS."""
    try:
        import bcrypt
    except ImportError:
        missing("the bcrypt package (pip install -e '.[test]')")
    state = tmp_path_factory.mktemp("basic-registry")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (state / "htpasswd").write_text(f"{USER}:{hashed}\n")
    reg = start_registry(
        state, {"auth": {"htpasswd": {"realm": "kubemips-test", "path": str(state / "htpasswd")}}}, tls=pki
    )
    yield reg
    stop(reg)


@dataclass
class TokenService:
    """The issuer a token-auth registry trusts: Basic credentials in, a signed JWT out.

    Records every request as (account, scopes) and grants what is asked to the one user.
    """

    pki: Pki
    expires_in: int = 300
    issued: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    url: str = ""
    server: ThreadingHTTPServer | None = None

    def start(self) -> TokenService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected or query.get("service") != [SERVICE]:
                    self.answer(401, {"details": "bad credentials"})
                    return
                scopes = tuple(query.get("scope", []))
                service.issued.append((query.get("account", [""])[0], scopes))
                self.answer(200, {"token": service.jwt(scopes), "expires_in": service.expires_in})

            def answer(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = self.pki.server_context().wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/token"
        return self

    def jwt(self, scopes: tuple[str, ...]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        cert_der = base64.b64encode(openssl("x509", "-in", str(self.pki.issuer_cert), "-outform", "DER")).decode()
        access = []
        for scope in scopes:
            kind, rest = scope.split(":", 1)
            name, actions = rest.rsplit(":", 1)
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [cert_der]}
        claims = {
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = openssl("dgst", "-sha256", "-sign", str(self.pki.issuer_key), stdin=signing_input.encode())
        return f"{signing_input}.{b64(signature)}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def scopes_issued(self) -> list[tuple[str, ...]]:
        return [scopes for _, scopes in self.issued]


@pytest.fixture(scope="module")
def token_service(pki: Pki) -> Iterator[TokenService]:
    service = TokenService(pki).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def token_registry(
    pki: Pki, token_service: TokenService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRegistry]:
    """Token auth, plain HTTP (a loopback registry: the client tries TLS, then falls back)."""
    token_auth = {
        "realm": token_service.url,
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(pki.issuer_cert),
    }
    reg = start_registry(tmp_path_factory.mktemp("token-registry"), {"auth": {"token": token_auth}})
    yield reg
    stop(reg)


# -- helpers ------------------------------------------------------------------------------------


def alice() -> Credentials:
    return Credentials("test", username=USER, password=PASSWORD)


def push_image(store: oci.BlobStore, reg: Registry, name: str, payload: bytes, arch: str) -> tuple[bytes, str]:
    a = parse_arch(arch)
    layer = store.write_layer(oci.FilesLayer([oci.FileEntry("/data", payload)], 0))
    cfg = store.put_bytes(
        oci.canonical_json(oci.image_config(a, diff_ids=[layer.diff_id], spec=oci.ImageSpec(), epoch=0, history=["t"])),
        oci.CONFIG,
    )
    reg.push_blob(name, layer.blob)
    reg.push_blob(name, cfg)
    raw = oci.canonical_json(oci.image_manifest(cfg, [layer.blob.descriptor()]))
    return raw, reg.put_manifest(name, oci.sha256_digest(raw), raw, oci.MANIFEST)


def push_verify_list(reg: Registry, name: str, tmp_path: Path) -> None:
    """Both arches by digest, a manifest list by tag, then read back and verify through ``reg``."""
    store = oci.BlobStore(tmp_path / "blobs")
    amd64, mips = parse_arch("amd64"), parse_arch("mips64el")
    raw_a, dig_a = push_image(store, reg, name, b"amd64 payload", "amd64")
    raw_m, dig_m = push_image(store, reg, name, b"mips64el payload", "mips64el")
    lst = oci.canonical_json(
        oci.manifest_list([oci.ListEntry(amd64, dig_a, len(raw_a)), oci.ListEntry(mips, dig_m, len(raw_m))])
    )
    reg.put_manifest(name, "v1", lst, oci.MANIFEST_LIST)
    assert verify_list(reg, name, "v1", [amd64, mips]) == {amd64: dig_a, mips: dig_m}
    assert verify_image(reg, name, dig_m, mips) > 0
    assert "v1" in reg.tags(name)


# -- Basic auth over TLS ------------------------------------------------------------------------


def test_basic_auth_over_verified_tls(basic_registry: RunningRegistry, pki: Pki, tmp_path: Path) -> None:
    reg = Registry(basic_registry.listen, ca_file=pki.ca, credentials=alice())
    reg.ping()
    assert reg.transport == "https"  # verified against the CA, not accepted blindly
    push_verify_list(reg, "basic/app", tmp_path)
    shared = oci.BlobStore(tmp_path / "blobs").put_bytes(b"shared", oci.LAYER)
    assert reg.push_blob("basic/app", shared) is True
    reg.mount_blob("basic/copy", shared.digest, "basic/app")
    assert reg.get_blob("basic/copy", shared.digest) == b"shared"


def test_basic_auth_refusals_are_clear(basic_registry: RunningRegistry, pki: Pki) -> None:
    with pytest.raises(RegistryError) as err:
        Registry(basic_registry.listen, ca_file=pki.ca).ping()
    assert f"registry {basic_registry.listen} requires credentials: `docker login {basic_registry.listen}`" in str(
        err.value
    )
    wrong = Credentials("test", username=USER, password="wrong-" + PASSWORD)
    with pytest.raises(RegistryError, match="credentials from test were refused") as err:
        Registry(basic_registry.listen, ca_file=pki.ca, credentials=wrong).ping()
    assert PASSWORD not in str(err.value)


def test_tls_trust_docker_certs_d_and_strict_verification(
    basic_registry: RunningRegistry, pki: Pki, tmp_path: Path
) -> None:
    host = basic_registry.listen
    # HTTPS required (as for any non-loopback host): an unknown CA is refused, with what to do.
    with pytest.raises(RegistryError) as err:
        Registry(host, plain_http=False, certs_dir=tmp_path, credentials=alice()).ping()
    text = str(err.value)
    assert f"registry {host}: its TLS certificate is not trusted (ping" in text
    assert f"/etc/docker/certs.d/{host}/ca.crt" in text and "registry.ca-file" in text
    with pytest.raises(RegistryError, match="not trusted"):
        Registry(host, plain_http=False, ca_file=pki.other_ca, certs_dir=tmp_path, credentials=alice()).ping()
    # Docker's own place for the registry's CA is trusted.
    (tmp_path / host).mkdir()
    shutil.copy(pki.ca, tmp_path / host / "ca.crt")
    strict = Registry(host, plain_http=False, certs_dir=tmp_path, credentials=alice())
    strict.ping()
    assert strict.get_manifest("basic/none", "v1") is None
    # Loopback with no CA for it: TLS accepted unverified, as the Docker engine does.
    loose = Registry(host, certs_dir=tmp_path / "empty", credentials=alice())
    loose.ping()
    assert loose.transport == "https (unverified)"


def test_docker_login_then_invoke_build(
    prerequisites: None, basic_registry: RunningRegistry, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker login HOST:PORT` then `REGISTRY=HOST:PORT invoke build` just works."""
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    login = subprocess.run(
        [docker_cli(), "login", "--username", USER, "--password-stdin", basic_registry.listen],
        input=PASSWORD,
        env={**os.environ, "DOCKER_CONFIG": str(docker_config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    assert basic_registry.listen in json.loads((docker_config / "config.json").read_text())["auths"]

    cli = Cli(basic_registry.listen, tmp_path / "cache", env={"DOCKER_CONFIG": str(docker_config)})
    # Only the Docker config holds the credentials (empty values are dropped from the environment).
    no_env_credentials = {name: "" for pair in auth.ENV_PAIRS for name in pair}
    env = {"KUBEMIPS_REGISTRY_CA": str(pki.ca), **no_env_credentials}
    built = cli.build("--what", "pause", "--arch", "amd64,mips64el", "--no-smoke", env=env)
    assert built.list("pause")["status"] == "published", built.proc.stdout
    assert built.image("pause", "mips64el")["status"] == "built"
    shown = built.proc.stdout + built.proc.stderr + json.dumps(built.report)
    assert PASSWORD not in shown
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in shown

    settings = config.load(env={"REGISTRY": basic_registry.listen, "KUBEMIPS_REGISTRY_CA": str(pki.ca)})
    for name in no_env_credentials:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    reg = Registry.configured(settings)
    assert verify_list(reg, "pause", "3.1", [parse_arch("amd64"), parse_arch("mips64el")])
    # What an engine pull from this registry is to send, from the same lookup.
    assert auth.engine_auth_config(basic_registry.listen) == {
        "username": USER,
        "password": PASSWORD,
        "serveraddress": basic_registry.listen,
    }


def test_engine_pulls_with_the_registry_credentials(
    prerequisites: None, basic_registry: RunningRegistry, pki: Pki, tmp_path: Path
) -> None:
    """Credentials only in the environment, as CI passes them: the Docker engine's own pulls
    (``FROM ${BASEIMAGE}`` in a Dockerfile build, the smoke checks) send them too."""
    project = tmp_path / "project"
    (project / "components").mkdir(parents=True)
    (project / "kubemips.toml").write_text("[build]\njobs = 1\n")
    component(project, "authbase", GOOD)
    child = project / "components" / "authchild"
    child.mkdir()
    (child / "note").write_text("built FROM authbase\n")
    (child / "Dockerfile").write_text("ARG BASEIMAGE\nFROM ${BASEIMAGE}\nCOPY note /note\n")
    (child / "component.toml").write_text(
        'name = "authchild"\nversion = "1.0.0"\n[build]\nkind = "dockerfile"\ndebian-archive = false\n'
        '[image]\nbase = "authbase"\n[smoke]\ncommand = []\nexpect = "^ok$"\n'
    )
    cli = Cli(basic_registry.listen, tmp_path / "cache")
    env = {
        "KUBEMIPS_REGISTRY_CA": str(pki.ca),
        "KUBEMIPS_REGISTRY_USERNAME": USER,
        "KUBEMIPS_REGISTRY_PASSWORD": PASSWORD,
        "DOCKER_CONFIG": str(tmp_path / "no-docker-config"),  # nothing from `docker login`
    }
    try:
        # No smoke check, so the engine holds no authbase when the child's build pulls it.
        built = cli.build("--what", "authchild", "--arch", "amd64", "--no-smoke", env=env, cwd=project)
        assert built.image("authchild", "amd64")["status"] == "built", built.proc.stdout
        assert built.list("authchild")["status"] == "published"
        remove_engine_leftovers(basic_registry.listen)
        # The smoke checks pull both images by digest.
        built = cli.build("--what", "authchild", "--arch", "amd64", env=env, cwd=project)
        assert [built.image(n, "amd64")["smoke"] for n in ("authbase", "authchild")] == ["pass", "pass"]
        assert built.list("authchild")["status"] == "unchanged"
        shown = built.proc.stdout + built.proc.stderr + json.dumps(built.report)
        assert PASSWORD not in shown
    finally:
        remove_engine_leftovers(basic_registry.listen)


# -- token auth -----------------------------------------------------------------------------------


def test_token_auth_push_list_verify(
    token_registry: RunningRegistry,
    token_service: TokenService,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBEMIPS_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("KUBEMIPS_REGISTRY_PASSWORD", PASSWORD)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    settings = config.load(env={"REGISTRY": token_registry.listen, "KUBEMIPS_REGISTRY_CA": str(pki.ca)})
    reg = Registry.configured(settings)
    token_service.issued.clear()
    reg.ping()
    assert reg.transport == "http"  # tried TLS first; this registry speaks plain HTTP
    push_verify_list(reg, "tok/app", tmp_path)
    store = oci.BlobStore(tmp_path / "blobs")
    shared = store.put_bytes(b"shared", oci.LAYER)
    reg.push_blob("tok/app", shared)
    reg.mount_blob("tok/other", shared.digest, "tok/app")
    assert reg.get_blob("tok/other", shared.digest) == b"shared"
    issued = token_service.scopes_issued()
    # One token per scope set, each fetched once and reused for every later request.
    assert issued[0] == ()  # the credentials check of ping
    assert issued.count(("repository:tok/app:pull,push",)) == 1
    assert issued.count(("repository:tok/app:pull",)) == 1
    assert ("repository:tok/app:pull", "repository:tok/other:pull,push") in issued
    assert len(issued) == len(set(issued))
    assert {account for account, _ in token_service.issued} == {USER}


def test_token_refreshed_after_expiry(token_registry: RunningRegistry, token_service: TokenService, pki: Pki) -> None:
    reg = Registry(token_registry.listen, ca_file=pki.ca, credentials=alice())
    token_service.expires_in = 2
    try:
        token_service.issued.clear()
        assert reg.get_manifest("tok/fresh", "v1") is None
        assert reg.get_manifest("tok/fresh", "v1") is None
        assert token_service.scopes_issued() == [("repository:tok/fresh:pull",)]
        time.sleep(2.1)
        assert reg.get_manifest("tok/fresh", "v1") is None
        assert token_service.scopes_issued() == [("repository:tok/fresh:pull",)] * 2
    finally:
        token_service.expires_in = 300


def test_token_auth_refusals_are_clear(token_registry: RunningRegistry, token_service: TokenService, pki: Pki) -> None:
    wrong = Credentials("$KUBEMIPS_REGISTRY_USERNAME/$KUBEMIPS_REGISTRY_PASSWORD", username=USER, password="nope")
    with pytest.raises(RegistryError) as err:
        Registry(token_registry.listen, ca_file=pki.ca, credentials=wrong).ping()
    assert "the token service refused the credentials from $KUBEMIPS_REGISTRY_USERNAME" in str(err.value)
    with pytest.raises(RegistryError, match=f"registry {token_registry.listen} requires credentials"):
        Registry(token_registry.listen, ca_file=pki.ca).ping()
    # The realm's certificate is verified too: without the CA, the token service is not trusted.
    realm_host = urlsplit(token_service.url).netloc
    with pytest.raises(RegistryError, match=f"the TLS certificate of {realm_host} is not trusted"):
        Registry(token_registry.listen, credentials=alice()).ping()


# -- a registry that accepts connections and never answers --------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket on 127.0.0.1 that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    done.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_silent_registry_fails_within_seconds(silent_port: int) -> None:
    host = f"127.0.0.1:{silent_port}"
    began = time.monotonic()
    with pytest.raises(RegistryError) as err:
        Registry(host).ping()  # TLS first: the handshake gets no answer
    took = time.monotonic() - began
    assert took < 10, took
    assert str(err.value) == (
        f"registry {host} timed out (check for TLS): it accepted the connection but sent no answer within 5s"
    )
    began = time.monotonic()
    with pytest.raises(RegistryError) as err:
        Registry(host, plain_http=True).get_manifest("app", "v1")
    took = time.monotonic() - began
    assert took < 15, took
    assert str(err.value) == (
        f"registry {host} timed out (get manifest app:v1): it accepted the connection but sent no answer within 10s"
    )
