"""The architecture table: the only place in the project that spells an architecture.

Every tool in the chain names the same CPU differently (Go and OCI say ``mips64le``,
Debian says ``mips64el``, ``uname -m`` says ``mips64``).  Code elsewhere asks an
:class:`Arch` for the spelling it needs instead of comparing strings, so adding an
architecture is one entry in :data:`ARCHES`.
"""

from __future__ import annotations

import difflib
import platform
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Arch:
    """One CPU architecture, spelled the way each tool expects."""

    name: str
    """The project's canonical name (Debian's): used in logs and config."""
    oci: str
    """OCI platform architecture and GOARCH."""
    debian: str
    """dpkg architecture (``mmdebstrap --arch``)."""
    qemu: str
    """binfmt_misc entry name, without the ``qemu-`` prefix."""
    uname: str
    """What ``uname -m`` prints on this architecture."""
    triple: str
    """GNU triple of the cross toolchain (``{triple}-gcc``)."""
    variant: str | None = None
    """OCI platform variant; mips64le never carries one."""
    aliases: tuple[str, ...] = ()

    @property
    def platform(self) -> str:
        """The ``os/arch[/variant]`` string Docker and OCI indexes use."""
        suffix = f"/{self.variant}" if self.variant else ""
        return f"linux/{self.oci}{suffix}"

    @property
    def tag_suffix(self) -> str:
        """Per-arch tag suffix, as upstream's image-util.sh spells it."""
        return f"linux-{self.oci}"

    def tag_for(self, tag: str) -> str:
        """The per-arch tag of an image tagged ``tag`` (``3.1-linux-mips64le``): the one
        spelling of what a manifest list's child is tagged with and the cluster pulls."""
        return f"{tag}-{self.tag_suffix}"

    def placeholders(self) -> dict[str, str]:
        """The arch's spellings as :mod:`kubemips.placeholders` fills them in a file."""
        return {"arch": self.name, "oci": self.oci, "debian": self.debian, "uname": self.uname, "triple": self.triple}

    def spellings(self) -> set[str]:
        return {self.name, self.oci, self.debian, self.uname, *self.aliases}

    def __str__(self) -> str:
        return self.name


ARCHES: tuple[Arch, ...] = (
    Arch(
        name="amd64",
        oci="amd64",
        debian="amd64",
        qemu="x86_64",
        uname="x86_64",
        triple="x86_64-linux-gnu",
        aliases=("x86_64", "x86-64"),
    ),
    Arch(
        name="mips64el",
        oci="mips64le",
        debian="mips64el",
        qemu="mips64el",
        uname="mips64",
        triple="mips64el-linux-gnuabi64",
    ),
)


def _index() -> dict[str, Arch]:
    index: dict[str, Arch] = {}
    for arch in ARCHES:
        for spelling in arch.spellings():
            index[spelling.lower()] = arch
    return index


_BY_SPELLING = _index()


def known_names() -> list[str]:
    return [arch.name for arch in ARCHES]


def parse_arch(text: str) -> Arch:
    """Resolve any spelling a user may type (``mips64le``, ``linux/mips64le``, ``x86_64``)."""
    key = text.strip().lower()
    if key.startswith("linux/"):
        key = key.removeprefix("linux/")
    arch = _BY_SPELLING.get(key)
    if arch is None:
        hint = difflib.get_close_matches(key, list(_BY_SPELLING), n=1)
        perhaps = f" Perhaps you meant '{_BY_SPELLING[hint[0]].name}'?" if hint else ""
        raise ConfigError(f"unknown architecture '{text}'; known: {', '.join(known_names())}.{perhaps}")
    return arch


def parse_arches(items: Iterable[str] | str) -> tuple[Arch, ...]:
    """Parse a comma/space separated string or a list, keeping order, dropping repeats."""
    if isinstance(items, str):
        items = items.replace(",", " ").split()
    result: list[Arch] = []
    for item in items:
        arch = parse_arch(item)
        if arch not in result:
            result.append(arch)
    if not result:
        raise ConfigError(f"no architecture given; known: {', '.join(known_names())}")
    return tuple(result)


def host_arch() -> Arch:
    return parse_arch(platform.machine())


def from_oci(oci: str, variant: str | None = None) -> Arch | None:
    """The table entry for an OCI platform, or None when the project does not build it."""
    for arch in ARCHES:
        if arch.oci == oci and arch.variant == (variant or None):
            return arch
    return None
