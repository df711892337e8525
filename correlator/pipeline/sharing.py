"""One analysis for incidents that ask the same question.

In an alert storm one app often fires several alert groups at once (error rate, latency, SLO
burn), and each is its own incident. Their correlations are the same question: the same
services in scope, the same onset, so the same windows, fetches and analysis. `Shared` runs it
once: a correlation asks with a key; while one with that key is running, the others wait for
it; once it finished, its answer serves the same key for `ttl_s` more seconds (the report then
says when it was analysed and for which incident). A failed one is not kept.

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


@dataclass(slots=True)
class _Entry(Generic[T]):
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
        self._entries: OrderedDict[Hashable, _Entry[T]] = OrderedDict()
        self.computed = 0
        self.shared = 0

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The answer for `key` and whether it was shared (computed for another caller)."""
        if self.ttl_s <= 0:
            self.computed += 1
            return await compute(), False
        entry = self._entries.get(key)
        if entry is not None and self._fresh(entry):
            self.shared += 1
            return await asyncio.shield(entry.task), True
        self._prune()
        task: asyncio.Future[T] = asyncio.ensure_future(compute())
        entry = _Entry(task)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self.computed += 1
        task.add_done_callback(lambda done: self._finished(key, entry, done))
        return await asyncio.shield(task), False

    def _fresh(self, entry: _Entry[T]) -> bool:
        if entry.finished_at is None:
            return True  # running: wait for it
        return self.clock() - entry.finished_at <= self.ttl_s

    def _finished(self, key: Hashable, entry: _Entry[T], task: asyncio.Future[T]) -> None:
        if task.cancelled() or task.exception() is not None:
            if self._entries.get(key) is entry:
                del self._entries[key]
            return
        entry.finished_at = self.clock()

    def _prune(self) -> None:
        for key in [k for k, e in self._entries.items() if not self._fresh(e)]:
            del self._entries[key]
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)

    def close(self) -> None:
        for entry in self._entries.values():
            entry.task.cancel()
        self._entries.clear()
