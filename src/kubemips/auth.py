"""Registry credentials and the pieces of the distribution auth flow that need no network.

Where credentials come from, first match wins:

1. the environment, for CI: ``KUBEMIPS_REGISTRY_USERNAME`` and ``KUBEMIPS_REGISTRY_PASSWORD``
   (``REGISTRY_USERNAME`` / ``REGISTRY_PASSWORD`` are read too, the names the GitHub
   workflow passes its secrets under).  They belong to the configured registry only and
   are never sent to another host (a mirror source, say);
2. the Docker client's config (``$DOCKER_CONFIG/config.json``, else
   ``~/.docker/config.json``), read through the Docker SDK's own resolution: its
   ``credHelpers`` / ``credsStore`` helpers (``docker-credential-NAME``), then its
   ``auths`` entries, so ``docker login HOST:PORT`` is enough;
3. nothing: anonymous requests.

A credential never reaches a log line, an error message or a repr: :class:`Credentials`
prints only where it came from, and :func:`scrub` removes every secret a message might
carry before it is raised.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, RegistryError

ENV_USERNAME = "KUBEMIPS_REGISTRY_USERNAME"
ENV_PASSWORD = "KUBEMIPS_REGISTRY_PASSWORD"
# The names the GitHub workflow exports its secrets under; read after the ones above.
ENV_PAIRS: tuple[tuple[str, str], ...] = (
    (ENV_USERNAME, ENV_PASSWORD),
    ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"),
)
LOGIN_HINT = f"`docker login {{host}}`, or set {ENV_USERNAME} and {ENV_PASSWORD}"


@dataclass(frozen=True, eq=False)
class Credentials:
    """A username and password, or an identity (refresh) token, and where they came from.

    Only ``source`` is ever shown; the secret fields are left out of repr and str.
    """

    source: str
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        kind = "identity token" if self.identity_token else "username and password"
        return f"Credentials({kind} from {self.source})"

    __str__ = __repr__

    @property
    def basic(self) -> str:
        """The value of a Basic Authorization header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def secrets(self) -> list[str]:
        """Every string that must never be shown: password, token, Basic header value."""
        found = [s for s in (self.password, self.identity_token) if s]
        if self.password:
            found.append(self.basic.split(" ", 1)[1])
        return found


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so none leaks in part)."""
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# -- where credentials come from --------------------------------------------------------------


def from_environment(env: Mapping[str, str]) -> Credentials | None:
    """Credentials from the environment, or None; a half-set pair is an error."""
    for user_var, pass_var in ENV_PAIRS:
        user, password = env.get(user_var, ""), env.get(pass_var, "")
        if user and password:
            return Credentials(f"${user_var}/${pass_var}", username=user, password=password)
        if user or password:
            present, absent = (user_var, pass_var) if user else (pass_var, user_var)
            raise ConfigError(f"environment: {present} is set but {absent} is not; set both or neither")
    return None


def docker_config_path(env: Mapping[str, str]) -> Path:
    """Where the Docker client keeps its config: ``$DOCKER_CONFIG/config.json`` or ``~/.docker``."""
    base = env.get("DOCKER_CONFIG") or str(Path(env.get("HOME") or Path.home()) / ".docker")
    return Path(base) / "config.json"


def from_docker_config(host: str, env: Mapping[str, str]) -> Credentials | None:
    """Credentials for ``host`` from the Docker client config and its credential helpers."""
    path = docker_config_path(env)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the Docker config: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the Docker config must be a JSON object")

    import docker.auth
    import docker.errors

    try:
        config = docker.auth.load_config(config_dict=data)
    except docker.errors.InvalidConfigFile as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (ValueError, UnicodeError):  # a malformed base64 `auth` entry; never show its text
        raise ConfigError(f"{path}: an 'auth' entry is not base64 of USER:PASSWORD") from None
    helper = config.get_credential_store(host) if (config.creds_store or config.cred_helpers) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SDK warns when a helper is not on PATH; we raise
            found = config.resolve_authconfig(host)
    except docker.errors.DockerException as exc:
        raise RegistryError(
            f"Docker credential helper docker-credential-{helper} failed for {host} "
            f"(configured in {path}): {_first_line(str(exc))}"
        ) from None
    if not found:
        return None
    if found.get("ServerAddress") and helper:
        source = f"credential helper docker-credential-{helper} ({path})"
    else:
        source = f"{path} auths"
    token = found.get("IdentityToken") or found.get("identitytoken") or ""
    if token:
        return Credentials(source, identity_token=token)
    user = found.get("Username") or found.get("username") or ""
    password = found.get("Password") or found.get("password") or ""
    if not user and not password:
        return None
    return Credentials(source, username=user, password=password)


def lookup(host: str, *, env: Mapping[str, str] | None = None, use_environment: bool = True) -> Credentials | None:
    """Credentials for registry ``host`` (``HOST[:PORT]``): environment, then Docker config."""
    env = os.environ if env is None else env
    if use_environment:
        found = from_environment(env)
        if found is not None:
            return found
    return from_docker_config(host, env)


class CredentialLookup:
    """Looks credentials up once, when a registry first asks for them (helpers can be slow)."""

    def __init__(self, host: str, *, env: Mapping[str, str] | None = None, use_environment: bool = True) -> None:
        self.host = host
        self._env = dict(os.environ if env is None else env)
        self._use_environment = use_environment
        self._lock = threading.Lock()
        self._done = False
        self._found: Credentials | None = None

    def __call__(self) -> Credentials | None:
        with self._lock:
            if not self._done:
                self._found = lookup(self.host, env=self._env, use_environment=self._use_environment)
                self._done = True
            return self._found

    def __repr__(self) -> str:
        return f"CredentialLookup({self.host!r})"


def engine_auth_config(host: str, *, env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The ``auth_config`` the Docker SDK's pull accepts, for the configured registry ``host``.

    Same lookup as the registry client (environment first, then the Docker config), so an
    engine pull authenticates exactly as the pushes did; None when there is nothing to send.
    A build's engines get it through :class:`kubemips.engine.RegistryAuth`.
    """
    creds = lookup(host, env=env)
    return engine_config(creds, host) if creds is not None else None


def engine_config(creds: Credentials, host: str) -> dict[str, str]:
    """``creds`` in the form the Docker engine takes them for registry ``host``."""
    if creds.identity_token:
        return {"identitytoken": creds.identity_token, "serveraddress": host}
    return {"username": creds.username, "password": creds.password, "serveraddress": host}


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


# -- challenges ---------------------------------------------------------------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM_RE = re.compile(rf"\s*({_TOKEN})\s*=\s*({_QUOTED}|{_TOKEN})\s*")
_SCHEME_RE = re.compile(rf"\s*({_TOKEN})(?:\s+|$|(?=,))")


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: its scheme (lowercased) and parameters."""

    scheme: str
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a WWW-Authenticate value (RFC 7235; several may share one line).

    ``Bearer realm="https://auth/token",service="reg",scope="repository:a:pull,push"``
    gives one bearer challenge; the comma inside the quoted scope is not a separator.
    Malformed parts are skipped rather than guessed at.
    """
    challenges: list[Challenge] = []
    pos, end = 0, len(header)
    scheme: str | None = None
    params: dict[str, str] = {}
    while pos < end:
        if header[pos] in ", \t":
            pos += 1
            continue
        param = _PARAM_RE.match(header, pos)
        if param and scheme is not None:
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param.group(1).lower()] = value
            pos = param.end()
            continue
        new = _SCHEME_RE.match(header, pos)
        if new:
            if scheme is not None:
                challenges.append(Challenge(scheme, params))
            scheme, params = new.group(1).lower(), {}
            pos = new.end()
            continue
        # Not a parameter or a scheme (a token68, stray text): skip to the next comma.
        comma = header.find(",", pos)
        pos = end if comma < 0 else comma + 1
    if scheme is not None:
        challenges.append(Challenge(scheme, params))
    return challenges


# -- scopes and the token cache -------------------------------------------------------------------


def repository_scope(repo: str, *, push: bool = False) -> str:
    """``repository:NAME:pull`` or ``repository:NAME:pull,push``."""
    return f"repository:{repo}:{'pull,push' if push else 'pull'}"


CATALOG_SCOPE = "registry:catalog:*"
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds: what the distribution auth spec says to assume


def scope_key(scopes: Iterable[str]) -> str:
    return " ".join(sorted(set(scopes)))


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    stale_at: float


class TokenCache:
    """Bearer tokens by scope set; a token is dropped a little before it expires.

    ``clock`` is monotonic seconds (injectable for tests).  A token is reused until a
    quarter of its lifetime (at most 30 s) remains, so a request never starts with a
    token about to lapse.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    def get(self, scopes: Iterable[str]) -> str | None:
        key = scope_key(scopes)
        with self._lock:
            token = self._tokens.get(key)
            if token is None:
                return None
            if self._clock() >= token.stale_at:
                del self._tokens[key]
                return None
            return token.value

    def put(self, scopes: Iterable[str], value: str, expires_in: float | None) -> None:
        lifetime = DEFAULT_TOKEN_LIFETIME if not expires_in or expires_in <= 0 else float(expires_in)
        margin = min(30.0, lifetime / 4)
        with self._lock:
            self._tokens[scope_key(scopes)] = _Token(value, self._clock() + lifetime - margin)

    def drop(self, scopes: Iterable[str]) -> None:
        with self._lock:
            self._tokens.pop(scope_key(scopes), None)

    def values(self) -> list[str]:
        with self._lock:
            return [t.value for t in self._tokens.values()]

    def __repr__(self) -> str:
        with self._lock:
            return f"TokenCache({len(self._tokens)} scope(s))"


def parse_token_response(body: bytes) -> tuple[str, float | None]:
    """``(token, expires_in)`` from a token service's JSON answer (``token`` or ``access_token``)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError("the token service did not answer with JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("the token service did not answer with a JSON object")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise RegistryError("the token service's answer holds no token")
    if not re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", token):
        raise RegistryError("the token service's token is not a valid bearer token")
    expires = doc.get("expires_in")
    return token, float(expires) if isinstance(expires, (int, float)) else None
