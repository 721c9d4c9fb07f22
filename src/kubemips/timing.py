"""Where one image's build time goes: the phases the benchmark reports per image and arch.

A build node records into its own :class:`Phases` (a context variable, so the parallel
builds of other nodes on other threads keep theirs apart); code anywhere below it marks a
stretch with ``with phase("push"):``.  Phases nest: the time of an inner phase counts for
it alone, not also for the phase around it, so the phases of a node add up to its wall
time (the rest is ``other``: input keys, base lookups, bookkeeping).  Outside a recording
``phase`` costs one context-variable lookup and records nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

PHASES = ("fetch", "emulated", "native", "layers", "push", "verify", "smoke", "other")
"""Report order. ``emulated``: a builder's own time running target programs under QEMU
(RUN steps, maintainer scripts); ``native``: its own time on the host (cross-compiling,
copying); ``layers``: exporting, normalizing and compressing layers."""


@dataclass
class Phases:
    seconds: dict[str, float] = field(default_factory=dict)
    waited: float = 0.0
    """Time spent waiting for a build slot: not the node's own (:mod:`kubemips.slots`)."""
    _inner: list[float] = field(default_factory=list)
    """Per open phase: the time its inner phases took, subtracted from its own."""

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def rounded(self, total: float) -> dict[str, float]:
        """Every recorded phase, plus ``other`` (what no phase covered), in report order."""
        out = dict(self.seconds)
        out["other"] = max(0.0, total - sum(out.values()))
        return {name: round(out[name], 3) for name in PHASES if name in out}


_current: ContextVar[Phases | None] = ContextVar("kubemips_phases", default=None)


@contextmanager
def recording(phases: Phases) -> Iterator[Phases]:
    """Record the phases of the work inside into ``phases``."""
    token = _current.set(phases)
    try:
        yield phases
    finally:
        _current.reset(token)


def waited(seconds: float) -> None:
    """Record time the current node spent waiting for a build slot."""
    phases = _current.get()
    if phases is not None:
        phases.waited += seconds


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the time inside for ``name`` in the current recording, if there is one."""
    phases = _current.get()
    if phases is None:
        yield
        return
    began = time.monotonic()
    phases._inner.append(0.0)
    try:
        yield
    finally:
        spent = time.monotonic() - began
        inner = phases._inner.pop()
        phases.add(name, spent - inner)
        if phases._inner:
            phases._inner[-1] += spent
