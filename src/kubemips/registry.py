"""A small client of the distribution (OCI) registry API: just what publishing needs.

Written against the distribution spec and the behaviour of the CNCF registry: blobs go
up as POST then PUT to the returned location (no single-request upload), existing blobs
are found with HEAD and skipped, manifests are addressed by digest first and tagged last,
and every read names the manifest types it accepts (an OCI index is invisible otherwise).

Transport, as the Docker engine does it:

- a non-loopback registry is HTTPS with certificate verification, trusting the system
  store, Docker's CA for that registry (``/etc/docker/certs.d/HOST:PORT/*.crt``, and a
  ``client.cert``/``client.key`` pair there) and ``registry.ca-file``; plain HTTP only
  when ``registry.insecure`` asks for it;
- a loopback registry is tried with TLS first (verified when a CA above vouches for it,
  otherwise accepted unverified, as Docker treats 127.0.0.0/8 as insecure) and plain
  HTTP after.

Auth: Basic, or bearer tokens of the distribution token spec obtained from the
``WWW-Authenticate`` challenge, one per scope set (``repository:NAME:pull,push``), cached
and fetched again shortly before they expire.  Credentials come from :mod:`.auth`.

Time: connecting and waiting for a response's first byte have short limits (a registry
that accepts connections and never answers fails in seconds); blob bodies get a long one.
Idempotent requests (GET, HEAD, a manifest PUT of fixed bytes, a content-addressed blob
upload as a whole) are retried with backoff on 5xx answers and lost connections; a 4xx
answer is never retried.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import random
import re
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import requests.adapters
import requests.utils
import urllib3.exceptions

from . import auth, log, oci
from .auth import Credentials, repository_scope
from .config import Settings, is_loopback
from .errors import ConfigError, RegistryError, RegistryUnavailable

DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")
_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
_T = TypeVar("_T")

Body: TypeAlias = bytes | Callable[[], IO[bytes]] | None
"""A request body: bytes, or a function opening a fresh stream (so a retry can resend it)."""
CredentialSource: TypeAlias = Credentials | Callable[[], Credentials | None] | None


def split_ref(ref: str, registry: str) -> tuple[str, str]:
    """``REGISTRY/REPO:TAG`` -> (REPO, TAG): the inverse of :meth:`Registry.ref` for a tag."""
    repo, _, tag = ref.removeprefix(registry + "/").rpartition(":")
    return repo, tag


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise RegistryError(f"'{name}' is not a valid repository name")
    return name


def check_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise RegistryError(f"'{tag}' is not a valid tag")
    return tag


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry returned it: raw bytes, digest, media type, parsed body."""

    raw: bytes
    digest: str
    media_type: str

    @property
    def doc(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.raw)
        return result

    @property
    def is_list(self) -> bool:
        return self.media_type in oci.LIST_TYPES


@dataclass(frozen=True)
class Timeouts:
    """Seconds: to connect (TLS handshake included), to a response's first byte, per body read."""

    connect: float = 5.0
    response: float = 10.0
    body: float = 300.0


@dataclass(frozen=True)
class Retries:
    """Attempts of an idempotent request, and the backoff between them (doubling, jittered)."""

    attempts: int = 4
    backoff: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_delay)
        base = min(self.backoff * 2 ** (attempt - 1), self.max_delay)
        return float(base * random.uniform(0.75, 1.25))


class _TransientError(RegistryError):
    """A failure worth trying again (5xx, lost connection) for an operation that may be repeated."""

    gone = False
    """A lost connection (not an answer): after the last try, the registry is unavailable."""


# -- TLS trust ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trust:
    """What verifies a registry's certificate: a CA bundle path, and an optional client pair."""

    bundle: str | bool
    client_cert: tuple[str, str] | None
    extra: tuple[str, ...]
    """The CA files added to the system store (for messages)."""


def _system_bundle() -> str | bool:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return True  # requests' own bundle


def _read_ca(path: Path, what: str) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{what} {path}: no PEM certificate in it")
    return text


_bundles: list[str] = []


@atexit.register
def _remove_bundles() -> None:
    for path in _bundles:
        with contextlib.suppress(OSError):
            Path(path).unlink()


def trust_for(host: str, *, ca_file: Path | None = None, certs_dir: Path = DOCKER_CERTS_DIR) -> Trust:
    """The trust for ``host``: system store + Docker's certs.d for the host + ``ca_file``."""
    extra: list[tuple[Path, str]] = []
    client: tuple[str, str] | None = None
    docker_dir = certs_dir / host
    if docker_dir.is_dir():
        for crt in sorted(docker_dir.glob("*.crt")):
            extra.append((crt, f"Docker CA file for {host}"))
        for cert in sorted(docker_dir.glob("*.cert")):
            key = cert.with_suffix(".key")
            if not key.is_file():
                raise ConfigError(f"{cert}: client certificate without its key {key.name} beside it")
            client = client or (str(cert), str(key))
    if ca_file is not None:
        extra.append((ca_file, "CA file (registry.ca-file)"))
    system = _system_bundle()
    if not extra:
        return Trust(system, client, ())
    system_path = system if isinstance(system, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH
    parts = [Path(system_path).read_text()]
    parts += [_read_ca(path, what) for path, what in extra]
    fd, name = tempfile.mkstemp(prefix="kubemips-ca-", suffix=".pem")
    with open(fd, "w") as fh:
        fh.write("\n".join(parts))
    _bundles.append(name)
    return Trust(name, client, tuple(str(p) for p, _ in extra))


class _TrustAdapter(requests.adapters.HTTPAdapter):
    """Picks certificate verification (and a client certificate) per request URL, redirects included."""

    def __init__(self, verify_for: Callable[[str], tuple[str | bool, tuple[str, str] | None]]) -> None:
        super().__init__()
        self._verify_for = verify_for

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        verify, client_cert = self._verify_for(request.url or "")
        kwargs["verify"] = verify
        if client_cert is not None:
            kwargs["cert"] = client_cert
        return super().send(request, *args, **kwargs)


def _refused(exc: requests.ConnectionError) -> bool:
    """True when nothing listens (or the name does not resolve): not worth a retry."""
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _cert_failure(exc: requests.exceptions.SSLError) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc)


def _short(exc: BaseException) -> str:
    """The innermost reason of a transport error, without pool and URL noise."""
    text = str(exc)
    found = re.findall(r"([A-Za-z]*Error)\(([^()]*)", text)
    if found:
        kind, detail = found[-1]
        return f"{kind}: {detail.strip(' ,')}" if detail else kind
    return text[:300]


# -- the client ---------------------------------------------------------------------------------


SMALL_BLOB = 1 << 16
"""Blobs up to this size (configs) are kept by :meth:`Registry.get_blob` for the run."""


class Registry:
    """One registry host plus an optional namespace prefix for repository names.

    ``address`` is ``HOST[:PORT][/NAMESPACE]`` as users write REGISTRY.  ``plain_http``:
    True for plain HTTP only, False for HTTPS only, None to decide by host (HTTPS for any
    non-loopback host, TLS then plain HTTP for a loopback one).  ``credentials`` is used
    only when the registry asks; a function is called once, at the first challenge.
    """

    def __init__(
        self,
        address: str,
        *,
        plain_http: bool | None = None,
        ca_file: Path | None = None,
        certs_dir: Path = DOCKER_CERTS_DIR,
        credentials: CredentialSource = None,
        timeouts: Timeouts | None = None,
        retries: Retries | None = None,
    ) -> None:
        self._small_blobs: dict[tuple[str, str], bytes] = {}
        self.address = address
        host, _, namespace = address.partition("/")
        self.host = host
        self.namespace = namespace
        self.timeouts = timeouts or Timeouts()
        self.retries = retries or Retries()
        self._mode = "http" if plain_http else "https" if plain_http is False or not is_loopback(host) else "probe"
        self._base = {"http": f"http://{host}", "https": f"https://{host}"}.get(self._mode)
        self._verified = True
        self._ca_file = ca_file
        self._certs_dir = certs_dir
        self._trust: Trust | None = None  # read at the first HTTPS request (a token realm's, say)
        self.session = requests.Session()
        self.session.trust_env = False  # a loopback registry must never go through a proxy
        self.session.mount("https://", _TrustAdapter(self._verify_for))
        self._credential_source = credentials
        self._credentials_resolved = isinstance(credentials, Credentials) or credentials is None
        self._creds: Credentials | None = credentials if isinstance(credentials, Credentials) else None
        self._scheme: str | None = None  # "basic" or "bearer", once the registry has challenged
        self._challenge: auth.Challenge | None = None
        self._tokens = auth.TokenCache()
        self._lock = threading.RLock()

    @classmethod
    def configured(cls, settings: Settings, address: str | None = None) -> Registry:
        """A client for the configured registry, or for ``address`` (a mirror source, say).

        TLS options come from the settings; credentials are looked up for the host when it
        first asks, the environment's only for the configured registry itself.
        """
        address = address or settings.registry
        if address == settings.registry and settings.embedded:
            return cls(address, plain_http=True)
        host = address.split("/", 1)[0]
        lookup = auth.CredentialLookup(host, use_environment=address == settings.registry)
        return cls(
            address, plain_http=True if settings.insecure else None, ca_file=settings.ca_file, credentials=lookup
        )

    def __repr__(self) -> str:
        return f"Registry({self.address!r}, {self.transport})"

    # -- naming -------------------------------------------------------------------------
    def repo(self, name: str) -> str:
        """Repository path for an image name, with the namespace prefix."""
        full = f"{self.namespace}/{name}" if self.namespace else name
        return check_name(full)

    def ref(self, name: str, tag_or_digest: str) -> str:
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        return f"{self.host}/{self.repo(name)}{sep}{tag_or_digest}"

    @property
    def base(self) -> str:
        """``http(s)://HOST[:PORT]``; for a loopback registry, found by trying TLS first."""
        if self._base is None:
            self._probe()
        assert self._base is not None
        return self._base

    @property
    def transport(self) -> str:
        """How requests travel: ``http``, ``https``, ``https (unverified)`` or ``not probed yet``."""
        if self._base is None:
            return "not probed yet"
        if self._base.startswith("http:"):
            return "http"
        return "https" if self._verified else "https (unverified)"

    # -- transport ----------------------------------------------------------------------
    @property
    def trust(self) -> Trust:
        """What verifies certificates: the system store, Docker's certs.d for the host, the CA file."""
        with self._lock:
            if self._trust is None:
                self._trust = trust_for(self.host, ca_file=self._ca_file, certs_dir=self._certs_dir)
            return self._trust

    def _verify_for(self, url: str) -> tuple[str | bool, tuple[str, str] | None]:
        trust = self.trust
        if urlsplit(url).netloc != self.host:
            return trust.bundle, None
        return (trust.bundle if self._verified else False), trust.client_cert

    def _probe(self) -> None:
        with self._lock:
            if self._base is not None:
                return
            url = f"https://{self.host}/v2/"
            timeout = (self.timeouts.connect, self.timeouts.response)
            try:
                try:
                    self.session.get(url, timeout=timeout).close()
                    self._base = f"https://{self.host}"
                    return
                except requests.exceptions.SSLError as exc:
                    if not _cert_failure(exc):
                        raise
                # A certificate no CA here vouches for: Docker accepts it on loopback, so do we.
                hostname = urlsplit(url).hostname or self.host
                warnings.filterwarnings(
                    "ignore",
                    message=f"Unverified HTTPS request is being made to host '{re.escape(hostname)}'",
                    category=urllib3.exceptions.InsecureRequestWarning,
                )
                self._verified = False
                self.session.get(url, timeout=timeout).close()
                self._base = f"https://{self.host}"
                log.info(f"registry {self.host}: TLS certificate not verified (loopback registry, as Docker does)")
            except requests.exceptions.SSLError:
                self._plain_fallback()
            except requests.exceptions.Timeout as exc:
                raise self._timeout_error("check for TLS", exc, self.timeouts.response) from None
            except requests.ConnectionError as exc:
                if _refused(exc):
                    raise self._unreachable("check for TLS") from None
                self._plain_fallback()  # closed on a TLS hello: a plain-HTTP server

    def _plain_fallback(self) -> None:
        self._verified = True
        self._base = f"http://{self.host}"

    def _unreachable(self, what: str) -> RegistryError:
        hint = "is it running? (`invoke registry-start` starts the embedded one)"
        return RegistryUnavailable(f"registry {self.host} is not reachable ({what}); {hint}")

    def _timeout_error(self, what: str, exc: requests.exceptions.Timeout, response_limit: float) -> RegistryError:
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return RegistryUnavailable(
                f"registry {self.host} timed out ({what}): no connection within {self.timeouts.connect:g}s"
            )
        found = re.search(r"timeout=([0-9.]+)", str(exc))  # a TLS handshake runs under the connect limit
        limit = float(found.group(1)) if found else response_limit
        return RegistryUnavailable(
            f"registry {self.host} timed out ({what}): it accepted the connection but sent no answer within {limit:g}s"
        )

    def _credentials(self) -> Credentials | None:
        with self._lock:
            if not self._credentials_resolved:
                source = self._credential_source
                self._creds = source() if callable(source) else source
                self._credentials_resolved = True
            return self._creds

    def _secrets(self) -> list[str]:
        creds = self._creds
        return [*(creds.secrets() if creds else []), *self._tokens.values()]

    def _error(self, message: str, *, transient: bool = False, gone: bool = False) -> RegistryError:
        text = auth.scrub(message, self._secrets())
        if transient:
            error = _TransientError(text)
            error.gone = gone
            return error
        return RegistryUnavailable(text) if gone else RegistryError(text)

    def _transmit(
        self,
        method: str,
        url: str,
        *,
        what: str,
        idempotent: bool,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        long: bool = False,
        stream: bool = False,
    ) -> requests.Response:
        """One request with timeouts and, when ``idempotent``, retries of transient failures.

        ``long``: the response may take as long as a body (a blob upload's commit).
        """
        timeout = (self.timeouts.connect, self.timeouts.body if long else self.timeouts.response)
        attempts = self.retries.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            with contextlib.ExitStack() as stack:
                data = stack.enter_context(body()) if callable(body) else body
                try:
                    resp = self.session.request(
                        method,
                        url,
                        headers=dict(headers or {}),
                        params=params,
                        data=data,
                        timeout=timeout,
                        stream=stream,
                    )
                except requests.exceptions.SSLError as exc:
                    raise self._tls_error(exc, what, url) from None
                except requests.exceptions.Timeout as exc:
                    raise self._timeout_error(what, exc, timeout[1]) from None
                except requests.ConnectionError as exc:
                    if _refused(exc):
                        raise self._unreachable(what) from None
                    reason = _short(exc)
                    if attempt < attempts:
                        self._pause(attempt, attempts, what, reason, None)
                        continue
                    # Only a request that was not retried here may be repeated by its caller.
                    raise self._error(
                        f"registry {self.host}: connection lost ({what}): {reason}",
                        transient=not idempotent,
                        gone=True,
                    ) from None
            if resp.status_code in _TRANSIENT_STATUS and attempt < attempts:
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                self._pause(attempt, attempts, what, f"{resp.status_code} {resp.reason}", retry_after)
                continue
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, attempt: int, attempts: int, what: str, reason: str, retry_after: str | None) -> None:
        delay = self.retries.delay(attempt, retry_after)
        log.warn(
            f"registry {self.host}: {what}: {auth.scrub(reason, self._secrets())}; "
            f"retrying in {delay:.1f}s ({attempt}/{attempts - 1})"
        )
        time.sleep(delay)

    def _tls_error(self, exc: requests.exceptions.SSLError, what: str, url: str) -> RegistryError:
        if not _cert_failure(exc):
            return self._error(f"registry {self.host}: TLS failed ({what}): {_short(exc)}")
        trusted = ", ".join(self.trust.extra) or "none"
        server = urlsplit(url).netloc
        if server == self.host:
            whose = "its TLS certificate"
            fix = f"Put the registry's CA in {DOCKER_CERTS_DIR}/{self.host}/ca.crt or name it in registry.ca-file"
        else:  # a token service or a storage redirect on another host
            whose = f"the TLS certificate of {server}"
            fix = f"Name the CA of {server} in registry.ca-file"
        return self._error(
            f"registry {self.host}: {whose} is not trusted ({what}: {_short(exc)}). "
            f"Trusted besides the system store: {trusted}. {fix} (KUBEMIPS_REGISTRY_CA)"
            + ("; registry.insecure = true sends plain HTTP instead" if server == self.host else "")
        )

    def _retrying(self, what: str, operation: Callable[[], _T]) -> _T:
        """Run a whole operation that may be repeated (content-addressed), again on transient failure."""
        attempts = self.retries.attempts
        for attempt in range(1, attempts + 1):
            try:
                return operation()
            except _TransientError as exc:
                if attempt == attempts:
                    if exc.gone:
                        raise RegistryUnavailable(str(exc)) from None
                    raise
                self._pause(attempt, attempts, what, str(exc), None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        scopes: Sequence[str] = (),
        idempotent: bool = True,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        long: bool = False,
        stream: bool = False,
    ) -> requests.Response:
        """A registry API request, authenticated as the registry's challenge asks."""
        if not url.startswith("http"):
            url = urljoin(self.base, url)
        attempt_headers = dict(headers or {})
        for round_ in (1, 2):
            authorization = self._authorization(scopes)
            if authorization:
                attempt_headers["Authorization"] = authorization
            resp = self._transmit(
                method,
                url,
                what=what,
                idempotent=idempotent,
                body=body,
                headers=attempt_headers,
                params=params,
                long=long,
                stream=stream,
            )
            if resp.status_code != 401 or round_ == 2 or not self._answer(resp, scopes, what):
                return resp
            resp.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _authorization(self, scopes: Sequence[str]) -> str | None:
        if self._scheme == "basic":
            creds = self._credentials()
            return creds.basic if creds else None
        if self._scheme == "bearer":
            token = self._tokens.get(scopes)
            if token is None:
                token = self._fetch_token(scopes)
            return f"Bearer {token}"
        return None

    def _answer(self, resp: requests.Response, scopes: Sequence[str], what: str) -> bool:
        """Learn from a 401's challenge; True when the request is worth sending again."""
        challenges = auth.parse_challenges(resp.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        if bearer is not None:
            with self._lock:
                self._scheme, self._challenge = "bearer", bearer
            self._tokens.drop(scopes)
            self._fetch_token(scopes, extra=bearer.scopes)
            return True
        if any(c.scheme == "basic" for c in challenges):
            creds = self._credentials()
            if creds is None or not creds.username or self._scheme == "basic":
                return False
            self._scheme = "basic"
            return True
        return False

    def _fetch_token(self, scopes: Sequence[str], extra: Sequence[str] = ()) -> str:
        """A bearer token for ``scopes`` (plus what the challenge named) from the token service."""
        with self._lock:
            cached = self._tokens.get(scopes)
            if cached is not None and not extra:
                return cached
            challenge = self._challenge
            assert challenge is not None
            creds = self._credentials()
            wanted = sorted({*scopes, *extra})
            realm = challenge.realm
            realm_host = urlsplit(realm).netloc
            if urlsplit(realm).scheme not in ("http", "https") or not realm_host:
                raise self._error(f"registry {self.host}: its token realm {realm!r} is not an http(s) URL")
            if (
                creds
                and realm.startswith("http:")
                and not is_loopback(realm_host)
                and not (self._mode == "http" and realm_host == self.host)
            ):
                raise self._error(
                    f"registry {self.host}: its token service {realm} is plain HTTP; credentials are not sent there"
                )
            what = f"token for {' '.join(wanted) or 'the registry'} from {realm}"
            headers: dict[str, str] = {}
            if creds and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "kubemips",
                    "scope": " ".join(wanted),
                }
                if challenge.service:
                    form["service"] = challenge.service
                resp = self._transmit(
                    "POST", realm, what=what, idempotent=True, body=_form(form), headers=_FORM_HEADERS
                )
            else:
                params: list[tuple[str, str]] = []
                if challenge.service:
                    params.append(("service", challenge.service))
                params += [("scope", s) for s in wanted]
                if creds:
                    params.append(("account", creds.username))
                    headers["Authorization"] = creds.basic
                resp = self._transmit("GET", realm, what=what, idempotent=True, headers=headers, params=params)
            with contextlib.closing(resp):
                if resp.status_code in (401, 403):
                    if creds:
                        raise self._error(
                            f"registry {self.host}: the token service refused the credentials from "
                            f"{creds.source} ({what}: {resp.status_code})"
                        )
                    raise self._error(
                        f"registry {self.host} requires credentials ({what}: {resp.status_code}); "
                        + auth.LOGIN_HINT.format(host=self.host)
                    )
                if resp.status_code != 200:
                    raise self._fail(resp, f"registry {self.host}: {what}")
                try:
                    token, expires_in = auth.parse_token_response(resp.content)
                except RegistryError as exc:
                    raise self._error(f"registry {self.host}: {what}: {exc}") from None
            self._tokens.put(scopes, token, expires_in)
            return token

    def _fail(self, resp: requests.Response, what: str, *, step: bool = False) -> RegistryError:
        """The error for an unexpected answer; ``step``: of one step of an operation that may be
        repeated as a whole (a blob upload), so a 5xx there is worth another try."""
        try:
            detail = resp.text.strip()[:500]
        except requests.RequestException:
            detail = ""
        message = f"{what}: registry answered {resp.status_code} {resp.reason}" + (f": {detail}" if detail else "")
        if resp.status_code in (401, 403):
            creds = self._credentials()
            if creds is None:
                message += f"; no credentials for {self.host}: " + auth.LOGIN_HINT.format(host=self.host)
            else:
                message += f"; the credentials from {creds.source} were refused or lack access"
        return self._error(message, transient=step and resp.status_code in _TRANSIENT_STATUS)

    # -- API ----------------------------------------------------------------------------
    def ping(self, what: str = "ping") -> None:
        """Check the registry answers the API and, when it asks for them, accepts the credentials.

        ``what``: the work the check is part of, for the message when nothing answers."""
        resp = self._request("GET", "/v2/", what=what)
        if resp.status_code == 200:
            return
        if resp.status_code == 401 and self._credentials() is None:
            raise self._error(f"registry {self.host} requires credentials: " + auth.LOGIN_HINT.format(host=self.host))
        raise self._fail(resp, f"registry {self.host} /v2/ check")

    def _has_blob(self, repo: str, digest: str, scopes: Sequence[str]) -> bool:
        resp = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", what=f"check blob {digest[:19]}", scopes=scopes)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, f"HEAD blob {digest} in {repo}")

    def has_blob(self, name: str, digest: str) -> bool:
        repo = self.repo(name)
        return self._has_blob(repo, digest, [repository_scope(repo)])

    def get_blob(self, name: str, digest: str) -> bytes:
        """The blob, checked against its digest.  A small one (a config) is read once per
        repository: a run asks for the same base's and image's configs many times."""
        repo = self.repo(name)
        kept = self._small_blobs.get((repo, digest))
        if kept is not None:
            return kept
        data = self._retrying(f"get blob {digest[:19]} from {repo}", lambda: self._get_blob_once(repo, digest))
        if len(data) <= SMALL_BLOB:
            self._small_blobs[(repo, digest)] = data
        return data

    def _get_blob_once(self, repo: str, digest: str) -> bytes:
        what = f"get blob {digest[:19]} from {repo}"
        resp = self._request(
            "GET", f"/v2/{repo}/blobs/{digest}", what=what, scopes=[repository_scope(repo)], stream=True
        )
        with contextlib.closing(resp):
            if resp.status_code != 200:
                raise self._fail(resp, f"GET blob {digest} in {repo}")
            self._allow_long_body(resp)
            try:
                data = resp.content
            except requests.RequestException as exc:
                raise self._error(
                    f"registry {self.host}: reading blob {digest} of {repo} failed after "
                    f"{self.timeouts.body:g}s at most per read: {_short(exc)}",
                    transient=True,
                ) from None
        if oci.sha256_digest(data) != digest:
            raise RegistryError(f"blob {digest} in {repo} does not match its digest")
        return data

    def _allow_long_body(self, resp: requests.Response) -> None:
        """Give a body's reads the long timeout once the headers came within the short one."""
        conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(self.timeouts.body)

    def push_blob(self, name: str, blob: oci.Blob) -> bool:
        """Upload ``blob`` unless present; returns True when bytes were sent."""
        repo = self.repo(name)
        scopes = [repository_scope(repo, push=True)]
        sent = False

        def once() -> bool:
            nonlocal sent
            if self._has_blob(repo, blob.digest, scopes):
                return sent
            resp = self._request(
                "POST", f"/v2/{repo}/blobs/uploads/", what=f"start upload to {repo}", scopes=scopes, idempotent=False
            )
            with contextlib.closing(resp):
                if resp.status_code != 202 or "Location" not in resp.headers:
                    raise self._fail(resp, f"start blob upload to {repo}", step=True)
                location = urljoin(self.base, resp.headers["Location"])
            sent = True
            self._finish_upload(
                location,
                blob.digest,
                lambda: blob.path.open("rb"),
                {"Content-Length": str(blob.size)},
                f"upload blob {blob.digest} to {repo}",
                scopes,
            )
            return True

        return self._retrying(f"upload blob {blob.digest[:19]} to {repo}", once)

    def mount_blob(self, name: str, digest: str, from_name: str) -> None:
        """Make a blob that ``from_name`` holds available in ``name`` (cross-repo mount)."""
        repo, source = self.repo(name), self.repo(from_name)
        scopes = [repository_scope(repo, push=True), repository_scope(source)]

        def once() -> None:
            if self._has_blob(repo, digest, scopes):
                return
            params = {"mount": digest, "from": source}
            resp = self._request(
                "POST",
                f"/v2/{repo}/blobs/uploads/",
                params=params,
                what=f"mount blob into {repo}",
                scopes=scopes,
                idempotent=False,
            )
            with contextlib.closing(resp):
                if resp.status_code == 201:
                    return
                if resp.status_code != 202 or "Location" not in resp.headers:
                    raise self._fail(resp, f"mount blob {digest} from {source} into {repo}", step=True)
                location = urljoin(self.base, resp.headers["Location"])
            # The registry declined to mount and opened an upload: copy the bytes instead.
            data = self._get_blob_once(source, digest)
            self._finish_upload(location, digest, data, {}, f"copy blob {digest} into {repo}", scopes)

        self._retrying(f"mount blob {digest[:19]} into {repo}", once)

    def _finish_upload(
        self, location: str, digest: str, body: Body, headers: dict[str, str], what: str, scopes: Sequence[str]
    ) -> None:
        """The closing PUT of an upload the registry opened at ``location``."""
        put = self._request(
            "PUT",
            location,
            params={"digest": digest},
            body=body,
            headers={"Content-Type": "application/octet-stream", **headers},
            what=what,
            scopes=scopes,
            idempotent=False,
            long=True,
        )
        with contextlib.closing(put):
            if put.status_code != 201:
                raise self._fail(put, what, step=True)

    def put_manifest(self, name: str, reference: str, raw: bytes, media_type: str) -> str:
        """PUT a manifest by digest or tag; returns the digest the registry computed.

        Sending the same bytes to the same reference again changes nothing, so a 5xx or a
        lost connection is retried; a 4xx (the registry rejected the manifest) never is.
        """
        repo = self.repo(name)
        if not reference.startswith("sha256:"):
            check_tag(reference)
        resp = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            body=raw,
            headers={"Content-Type": media_type},
            what=f"push manifest {repo}:{reference}",
            scopes=[repository_scope(repo, push=True)],
        )
        with contextlib.closing(resp):
            if resp.status_code != 201:
                raise self._fail(resp, f"push manifest {repo}:{reference}")
            digest = resp.headers.get("Docker-Content-Digest", oci.sha256_digest(raw))
        if digest != oci.sha256_digest(raw):
            raise RegistryError(
                f"{repo}:{reference}: registry stored digest {digest}, expected {oci.sha256_digest(raw)}"
            )
        return digest

    def get_manifest(self, name: str, reference: str) -> Manifest | None:
        """Fetch a manifest (any known type) or None when the tag/digest is absent."""
        repo = self.repo(name)
        resp = self._request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": ", ".join(oci.ALL_MANIFEST_TYPES)},
            what=f"get manifest {repo}:{reference}",
            scopes=[repository_scope(repo)],
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, f"get manifest {repo}:{reference}")
        raw = resp.content
        digest = oci.sha256_digest(raw)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{repo}@{reference}: registry returned content with digest {digest}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in oci.ALL_MANIFEST_TYPES:
            media_type = json.loads(raw).get("mediaType", media_type)
        return Manifest(raw, digest, media_type)

    def tags(self, name: str) -> list[str]:
        repo = self.repo(name)
        resp = self._request(
            "GET", f"/v2/{repo}/tags/list", what=f"list tags of {repo}", scopes=[repository_scope(repo)]
        )
        if resp.status_code == 404:
            return []
        if resp.status_code != 200:
            raise self._fail(resp, f"list tags of {repo}")
        return list(resp.json().get("tags") or [])

    def catalog(self) -> Iterator[str]:
        resp = self._request("GET", "/v2/_catalog", what="catalog", scopes=[auth.CATALOG_SCOPE])
        if resp.status_code != 200:
            raise self._fail(resp, "catalog")
        yield from resp.json().get("repositories") or []


_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def _form(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode()
