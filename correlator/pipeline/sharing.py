"""One analysis for incidents that ask the same question.

In an alert storm one app often fires several alert groups at once (error rate, latency, SLO
burn), and each is its own incident. Their correlations are the same question: the same
services in scope and the same onset, so the same windows, fetches and analysis. `Shared` runs
it once: a correlation asks with a key and a point in time (its onset); while one with that key
and a point at most `within` away is running, the others wait for it; once it finished, its
answer serves them for `ttl_s` more seconds (the report then says when it was analysed and for
which incident). The nearest such point is taken. A failed one is not kept.

The running correlation is shielded: a waiter cancelled (its lease lost, the service stopping)
does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True, eq=False)  # one entry is itself, whatever its fields
class _Entry(Generic[T]):
    key: Hashable
    at: float
    task: asyncio.Future[T]
    finished_at: float | None = None


class Shared(Generic[T]):
    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        # Oldest first, for the bound; and each key's entries, for the nearest point.
        self._entries: OrderedDict[tuple[Hashable, float], _Entry[T]] = OrderedDict()
        self._by_key: dict[Hashable, list[_Entry[T]]] = {}
        self.computed = 0
        self.shared = 0

    async def get(
        self,
        key: Hashable,
        compute: Callable[[], Awaitable[T]],
        *,
        at: float = 0.0,
        within: float = 0.0,
    ) -> tuple[T, bool]:
        """The answer for `key` at `at` (an answer for `key` at most `within` away will do)
        and whether it was shared (computed for another caller)."""
        if self.ttl_s <= 0:
            self.computed += 1
            return await compute(), False
        entry = self._nearest(key, at, within)
        if entry is not None:
            self.shared += 1
            return await asyncio.shield(entry.task), True
        self._prune()
        task: asyncio.Future[T] = asyncio.ensure_future(compute())
        entry = _Entry(key, at, task)
        self._forget(self._entries.pop((key, at), None))  # a stale one at the same point
        self._entries[(key, at)] = entry
        self._by_key.setdefault(key, []).append(entry)
        self.computed += 1
        task.add_done_callback(lambda done: self._finished(entry, done))
        return await asyncio.shield(task), False

    def _nearest(self, key: Hashable, at: float, within: float) -> _Entry[T] | None:
        near = [e for e in self._by_key.get(key, ()) if abs(e.at - at) <= within and self._fresh(e)]
        return min(near, key=lambda e: abs(e.at - at), default=None)

    def _fresh(self, entry: _Entry[T]) -> bool:
        if entry.finished_at is None:
            return True  # running: wait for it
        return self.clock() - entry.finished_at <= self.ttl_s

    def _finished(self, entry: _Entry[T], task: asyncio.Future[T]) -> None:
        if task.cancelled() or task.exception() is not None:
            if self._entries.get((entry.key, entry.at)) is entry:
                del self._entries[(entry.key, entry.at)]
            self._forget(entry)
            return
        entry.finished_at = self.clock()

    def _forget(self, entry: _Entry[T] | None) -> None:
        if entry is None:
            return
        same = self._by_key.get(entry.key, [])
        if entry in same:
            same.remove(entry)
        if not same:
            self._by_key.pop(entry.key, None)

    def _prune(self) -> None:
        for point in [p for p, e in self._entries.items() if not self._fresh(e)]:
            self._forget(self._entries.pop(point))
        while len(self._entries) >= self.max_entries:
            self._forget(self._entries.popitem(last=False)[1])

    def close(self) -> None:
        for entry in self._entries.values():
            entry.task.cancel()
        self._entries.clear()
        self._by_key.clear()
