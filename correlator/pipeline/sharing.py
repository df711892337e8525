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
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from correlator.models.report import Report

T = TypeVar("T")
SHARED_NOTE = "analysed once for incident"


@dataclass(frozen=True, slots=True)
class Question:
    """What one analysis answers, named across replicas: `scope` is everything but the onset
    (services, namespaces, apps, settings); `digest` adds the onset's slot
    (`correlation.share_onset_s` wide), and the report is stored under it; `nearby` are the
    slots where an analysis of an onset at most `share_onset_s` away is stored (its own first)."""

    services: tuple[str, ...]
    namespaces: tuple[str, ...]
    onset: datetime
    scope: str
    digest: str
    nearby: tuple[str, ...]

    @classmethod
    def of(
        cls,
        services: Sequence[str],
        namespaces: Sequence[str],
        onset: datetime,
        context: str,
        within_s: float,
    ) -> Question:
        """`context`: what else the analysis depends on (the apps, the settings)."""
        text = json.dumps([list(services), list(namespaces), context], separators=(",", ":"))
        scope = hashlib.sha256(text.encode()).hexdigest()
        if within_s > 0:
            # An onset at most `within_s` away lies in this slot or one beside it.
            slot = math.floor(onset.timestamp() / within_s)
            slots = [str(slot), str(slot - 1), str(slot + 1)]
        else:
            slots = [onset.isoformat()]
        digests = tuple(hashlib.sha256(f"{scope}@{s}".encode()).hexdigest() for s in slots)
        return cls(tuple(services), tuple(namespaces), onset, scope, digests[0], digests)


class SharedReports(Protocol):
    """Where reports other replicas analysed are found (the store)."""

    async def shared_reports(self, questions: Sequence[str], since: datetime) -> list[Report]:
        """The reports stored under any of `questions`, analysed at or after `since`, newest
        first."""
        ...


def onsets_apart_s(report: Report, onset: datetime) -> float | None:
    """How far the onset `report` was analysed for is from `onset` (s); None: not said."""
    analysed = report.windows.onset if report.windows is not None else None
    if analysed is None:
        return None
    if analysed.tzinfo is None:  # read back as UTC
        analysed = analysed.replace(tzinfo=UTC)
    return abs((analysed - onset).total_seconds())


def nearest_report(reports: Sequence[Report], onset: datetime, within_s: float) -> Report | None:
    """Of stored reports, the analysis whose onset is nearest `onset`, at most `within_s` away."""
    near = [
        (apart, report)
        for report in reports
        if report.analysed_for is not None
        and (apart := onsets_apart_s(report, onset)) is not None
        and apart <= within_s
    ]
    return min(near, key=lambda pair: pair[0])[1] if near else None


def shared_note(report: Report, onset: datetime) -> str:
    """What a report answering another incident's analysis says about it."""
    apart = round(onsets_apart_s(report, onset) or 0.0, 1)
    onsets = "the same onset" if not apart else f"onsets {apart:g} s apart"
    return f"{SHARED_NOTE} {report.owner} and this one: the same services in scope and {onsets}"


@dataclass(slots=True)
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
        # Oldest first, for the bound; a few hundred at most, so the nearest is looked for
        # among them all.
        self._entries: OrderedDict[tuple[Hashable, float], _Entry[T]] = OrderedDict()
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
        self._entries[(key, at)] = entry  # none there: it would have been the nearest
        self.computed += 1
        task.add_done_callback(lambda done: self._finished(entry, done))
        return await asyncio.shield(task), False

    def _nearest(self, key: Hashable, at: float, within: float) -> _Entry[T] | None:
        near = [
            e
            for e in self._entries.values()
            if e.key == key and abs(e.at - at) <= within and self._fresh(e)
        ]
        return min(near, key=lambda e: abs(e.at - at), default=None)

    def _fresh(self, entry: _Entry[T]) -> bool:
        if entry.finished_at is None:
            return True  # running: wait for it
        return self.clock() - entry.finished_at <= self.ttl_s

    def _finished(self, entry: _Entry[T], task: asyncio.Future[T]) -> None:
        if task.cancelled() or task.exception() is not None:
            if self._entries.get((entry.key, entry.at)) is entry:
                del self._entries[(entry.key, entry.at)]
            return
        entry.finished_at = self.clock()

    def _prune(self) -> None:
        for point in [p for p, e in self._entries.items() if not self._fresh(e)]:
            del self._entries[point]
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)

    def close(self) -> None:
        for entry in self._entries.values():
            entry.task.cancel()
        self._entries.clear()
