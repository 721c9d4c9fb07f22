"""Build slots: at most ``jobs`` heavy steps at once, granted to the heaviest chain first.

Whether the registry already holds a node's result is a few requests, so the walk keeps
more nodes in flight than there are slots and only the work that needs a core (a build,
a smoke run) waits for one.  A warm run of the whole catalog then checks many nodes side
by side instead of ``jobs`` at a time; a cold run still builds ``jobs`` at a time, in
the order the scheduler would have started them: a freed slot goes to the waiting node
with the longest remaining chain, not to whichever asked first.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time


class Slots:
    def __init__(self, count: int) -> None:
        self._free = count
        self._cond = threading.Condition()
        self._waiting: list[tuple[float, int, int]] = []
        self._order = itertools.count()
        self._held = threading.local()

    def acquire(self, priority: float, order: int = 0) -> float:
        """Take a slot, after every waiting node of a higher priority (of the same one, of a
        lower ``order``: the order the walk started them in); return the seconds waited.
        A thread that holds one already goes on (a build's smoke run is part of the
        build): every acquire is matched by a :meth:`release`."""
        depth = getattr(self._held, "depth", 0)
        self._held.depth = depth + 1
        if depth:
            return 0.0
        began = time.monotonic()
        ticket = (-priority, order, next(self._order))
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while not (self._free and self._waiting[0] == ticket):
                self._cond.wait()
            heapq.heappop(self._waiting)
            self._free -= 1
            self._cond.notify_all()  # the next in line may take another free slot
        return time.monotonic() - began

    def release(self) -> None:
        self._held.depth -= 1
        if self._held.depth:
            return
        with self._cond:
            self._free += 1
            self._cond.notify_all()
