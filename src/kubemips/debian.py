"""Debian archive facts: which mirror to use and what its package index says right now.

Mirrors are never written into the project: they come from the project config or, when
that is empty, from the host's own apt sources.  The digest of the archive's package
index for a suite and architecture is an input of every Debian-sourced build, so a new
package upload changes the build key and an unchanged archive lets a warm run skip.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from .errors import ConfigError, PrerequisiteError

APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def _parse_list(text: str) -> Iterable[AptSource]:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = re.sub(r"\[[^]]*\]", " ", line).split()
        if len(words) >= 4:
            yield AptSource(words[1].rstrip("/"), (words[2],), tuple(words[3:]))


def _parse_deb822(text: str) -> Iterable[AptSource]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield AptSource(
                uri.rstrip("/"), tuple(fields.get("suites", "").split()), tuple(fields.get("components", "").split())
            )


def host_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    found: list[AptSource] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        found += _parse_list(main.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                found += _parse_list(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                found += _parse_deb822(path.read_text(errors="replace"))
    return found


def mirror_for(suite: str, configured: str, *, apt_dir: Path = APT_DIR) -> str:
    """The archive URI serving ``suite``/main: the configured one or the host's."""
    if configured:
        return configured
    for src in host_sources(apt_dir):
        if suite in src.suites and "main" in src.components:
            return src.uri
    raise ConfigError(
        f"no Debian mirror for suite '{suite}': set [debian] mirror in kubemips.toml or DEBIAN_MIRROR, "
        f"or add a '{suite} main' source to {apt_dir}"
    )


def security_mirror_for(suite: str, configured: str, *, apt_dir: Path = APT_DIR) -> str | None:
    if configured:
        return configured
    for src in host_sources(apt_dir):
        if f"{suite}-security" in src.suites and "main" in src.components:
            return src.uri
    return None


_INDEX_CACHE: dict[tuple[str, str], str] = {}
_INDEX_LOCK = threading.Lock()


def fetch_release(uri: str, suite: str) -> str:
    """The text of ``dists/SUITE/InRelease`` (memoized for the run)."""
    key = (uri, suite)
    with _INDEX_LOCK:
        if key in _INDEX_CACHE:
            return _INDEX_CACHE[key]
    url = f"{uri}/dists/{suite}/InRelease"
    if uri.startswith("file:"):
        path = Path(url.removeprefix("file:").removeprefix("//"))
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise PrerequisiteError(f"cannot read {path}: {exc.strerror}") from None
    else:
        try:
            resp = requests.get(url, timeout=(10, 60))
        except requests.RequestException as exc:
            raise PrerequisiteError(f"Debian mirror unreachable: {url}: {exc}") from None
        if resp.status_code != 200:
            raise PrerequisiteError(f"Debian mirror answered {resp.status_code} for {url}")
        text = resp.text
    with _INDEX_LOCK:
        _INDEX_CACHE[key] = text
    return text


def index_digest(release_text: str, arch: str, component: str = "main") -> str | None:
    """SHA256 of ``COMPONENT/binary-ARCH/Packages*`` named in a Release file, or None."""
    in_sha256 = False
    wanted = [f"{component}/binary-{arch}/Packages{ext}" for ext in (".xz", ".gz", "")]
    found: dict[str, str] = {}
    for line in release_text.splitlines():
        if not line.startswith(" "):
            in_sha256 = line.strip() == "SHA256:"
            continue
        if in_sha256:
            parts = line.split()
            if len(parts) == 3 and parts[2] in wanted:
                found[parts[2]] = parts[0]
    for name in wanted:
        if name in found:
            return found[name]
    return None


@dataclass(frozen=True)
class SuiteSource:
    """One apt line a build uses, with the index digest that pins what it resolves to."""

    uri: str
    suite: str
    index: str

    def line(self) -> str:
        return f"deb {self.uri} {self.suite} main"


def sources_for(suite: str, debian_arch: str, mirror: str, security: str | None) -> list[SuiteSource]:
    """The suite, its -updates and -security (where they carry this arch), each pinned."""
    candidates = [(mirror, suite), (mirror, f"{suite}-updates")]
    if security:
        candidates.append((security, f"{suite}-security"))
    result: list[SuiteSource] = []
    for uri, name in candidates:
        digest = index_digest(fetch_release(uri, name), debian_arch)
        if digest is None:
            if name == suite:
                raise ConfigError(f"Debian suite '{suite}' at {uri} has no packages for architecture {debian_arch}")
            continue  # e.g. bookworm-security carries no mips64el
        result.append(SuiteSource(uri, name, digest))
    return result
