"""A small client of the distribution (OCI) registry API: just what publishing needs.

Written against the distribution spec and the behaviour of the CNCF registry: blobs go
up as POST then PUT to the returned location (no single-request upload), existing blobs
are found with HEAD and skipped, manifests are addressed by digest first and tagged last,
and every read names the manifest types it accepts (an OCI index is invisible otherwise).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from . import oci
from .errors import RegistryError

_TIMEOUT = (5.0, 300.0)
_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


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


class Registry:
    """One registry host plus an optional namespace prefix for repository names.

    ``address`` is ``HOST[:PORT][/NAMESPACE]`` as users write REGISTRY.
    """

    def __init__(self, address: str, *, plain_http: bool, username: str = "", password: str = "") -> None:
        self.address = address
        host, _, namespace = address.partition("/")
        self.host = host
        self.namespace = namespace
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.session = requests.Session()
        self.session.trust_env = False  # a loopback registry must never go through a proxy
        self._auth = (username, password) if username else None
        self._token: str | None = None

    # -- naming -------------------------------------------------------------------------
    def repo(self, name: str) -> str:
        """Repository path for an image name, with the namespace prefix."""
        full = f"{self.namespace}/{name}" if self.namespace else name
        return check_name(full)

    def ref(self, name: str, tag_or_digest: str) -> str:
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        return f"{self.host}/{self.repo(name)}{sep}{tag_or_digest}"

    # -- transport ----------------------------------------------------------------------
    def _request(self, method: str, url: str, *, what: str, **kwargs: Any) -> requests.Response:
        if not url.startswith("http"):
            url = urljoin(self.base, url)
        headers = dict(kwargs.pop("headers", {}) or {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            resp = self.session.request(
                method, url, headers=headers, timeout=_TIMEOUT, auth=None if self._token else self._auth, **kwargs
            )
            if resp.status_code == 401 and self._token is None and self._fetch_token(resp):
                headers["Authorization"] = f"Bearer {self._token}"
                data = kwargs.get("data")
                if hasattr(data, "seek"):
                    data.seek(0)  # type: ignore[union-attr]
                resp = self.session.request(method, url, headers=headers, timeout=_TIMEOUT, **kwargs)
        except requests.ConnectionError:
            raise RegistryError(
                f"registry {self.host} is not reachable ({what}); is it running? "
                "(`invoke registry-start` starts the embedded one)"
            ) from None
        except requests.Timeout:
            raise RegistryError(f"registry {self.host} timed out ({what})") from None
        return resp

    def _fetch_token(self, resp: requests.Response) -> bool:
        """Bearer-token flow of the distribution auth spec, for registries that need it."""
        challenge = resp.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer "):
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        if not realm:
            return False
        try:
            got = self.session.get(realm, params=params, auth=self._auth, timeout=_TIMEOUT)
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.host}: token request to {realm} failed: {exc}") from None
        if got.status_code != 200:
            return False
        body = got.json()
        self._token = body.get("token") or body.get("access_token")
        return bool(self._token)

    @staticmethod
    def _fail(resp: requests.Response, what: str) -> RegistryError:
        detail = resp.text.strip()[:500]
        return RegistryError(
            f"{what}: registry answered {resp.status_code} {resp.reason}" + (f": {detail}" if detail else "")
        )

    # -- API ----------------------------------------------------------------------------
    def ping(self) -> None:
        resp = self._request("GET", "/v2/", what="ping")
        if resp.status_code not in (200, 401):
            raise self._fail(resp, f"registry {self.host} /v2/ check")
        if resp.status_code == 401 and not self._auth:
            raise RegistryError(f"registry {self.host} requires credentials (set REGISTRY_USERNAME/REGISTRY_PASSWORD)")

    def has_blob(self, name: str, digest: str) -> bool:
        resp = self._request("HEAD", f"/v2/{self.repo(name)}/blobs/{digest}", what=f"check blob {digest[:19]}")
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, f"HEAD blob {digest} in {self.repo(name)}")

    def get_blob(self, name: str, digest: str) -> bytes:
        resp = self._request("GET", f"/v2/{self.repo(name)}/blobs/{digest}", what=f"get blob {digest[:19]}")
        if resp.status_code != 200:
            raise self._fail(resp, f"GET blob {digest} in {self.repo(name)}")
        data = resp.content
        if oci.sha256_digest(data) != digest:
            raise RegistryError(f"blob {digest} in {self.repo(name)} does not match its digest")
        return data

    def push_blob(self, name: str, blob: oci.Blob) -> bool:
        """Upload ``blob`` unless present; returns True when bytes were sent."""
        if self.has_blob(name, blob.digest):
            return False
        repo = self.repo(name)
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/", what=f"start upload to {repo}")
        if resp.status_code != 202 or "Location" not in resp.headers:
            raise self._fail(resp, f"start blob upload to {repo}")
        location = urljoin(self.base, resp.headers["Location"])
        with blob.path.open("rb") as fh:
            put = self._request(
                "PUT",
                location,
                params={"digest": blob.digest},
                data=fh,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
                what=f"upload blob to {repo}",
            )
        if put.status_code != 201:
            raise self._fail(put, f"upload blob {blob.digest} to {repo}")
        return True

    def mount_blob(self, name: str, digest: str, from_name: str) -> None:
        """Make a blob that ``from_name`` holds available in ``name`` (cross-repo mount)."""
        if self.has_blob(name, digest):
            return
        repo = self.repo(name)
        params = {"mount": digest, "from": self.repo(from_name)}
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/", params=params, what=f"mount blob into {repo}")
        if resp.status_code == 201:
            return
        if resp.status_code == 202 and "Location" in resp.headers:
            # The registry declined to mount and opened an upload: copy the bytes instead.
            data = self.get_blob(from_name, digest)
            put = self._request(
                "PUT",
                urljoin(self.base, resp.headers["Location"]),
                params={"digest": digest},
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                what=f"copy blob into {repo}",
            )
            if put.status_code == 201:
                return
            raise self._fail(put, f"copy blob {digest} into {repo}")
        raise self._fail(resp, f"mount blob {digest} from {self.repo(from_name)} into {repo}")

    def put_manifest(self, name: str, reference: str, raw: bytes, media_type: str) -> str:
        """PUT a manifest by digest or tag; returns the digest the registry computed."""
        repo = self.repo(name)
        if not reference.startswith("sha256:"):
            check_tag(reference)
        resp = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            data=raw,
            headers={"Content-Type": media_type},
            what=f"push manifest {repo}:{reference}",
        )
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
        resp = self._request("GET", f"/v2/{repo}/tags/list", what=f"list tags of {repo}")
        if resp.status_code == 404:
            return []
        if resp.status_code != 200:
            raise self._fail(resp, f"list tags of {repo}")
        return list(resp.json().get("tags") or [])

    def catalog(self) -> Iterator[str]:
        resp = self._request("GET", "/v2/_catalog", what="catalog")
        if resp.status_code != 200:
            raise self._fail(resp, "catalog")
        yield from resp.json().get("repositories") or []
