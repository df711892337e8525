"""Loki HTTP API: log lines and metric queries around an alert, every line exactly once.

Loki's timestamps are integer nanoseconds and a window is [start, end): they stay integers here
end to end (strings on the wire, `LogLine.timestamp_ns`), never a float or a microsecond
datetime, which would move a line across a window edge or merge lines a nanosecond apart.

Loki caps the entries of one answer (`limit`, itself capped by the server's
`max_entries_limit_per_query`): a full page means there may be more, so the next page ends just
after the oldest line of this one (going backward in time), and lines already read are
recognised by (nanosecond, line, labels). A full page that is a single nanosecond is read again
on its own, [t, t + 1), as large as the server allows. If the server's cap is lower than the
limit asked for, its 400 says so; the cap it names is used from then on. A page larger than
`max_body_bytes` is asked for again in halves.

Loki's 429 ("too many outstanding requests") is its overload signal: retried with backoff, like
a 5xx. If a later page fails after earlier ones arrived, what arrived is kept: `logs` raises
PartialLogs, a BackendUnavailable that carries the lines. Errors are plain text with status
400; they come back as BackendRefused with Loki's words.

A `LogBudget` shared by the windows of one correlation bounds what they keep in memory (each
page up to `max_body_bytes`, pages accumulating, made about 1.3 GB possible): once the bytes
of its lines and labels are spent, reading stops and the windows are partial.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

import pandas as pd

from correlator.backends.http import (
    BackendClient,
    BackendConfig,
    BackendGarbage,
    BackendRefused,
    BackendTooLarge,
    BackendUnavailable,
)
from correlator.backends.prometheus import range_frame

_SERVER_LIMIT = re.compile(r"max_entries_limit_per_query \((\d+) > (\d+)\)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NONE: frozenset[tuple[str, str]] = frozenset()
OVERLOADED = 429  # Loki's query scheduler: "too many outstanding requests"


class LogLine(NamedTuple):
    """One log entry. With categorize-labels, `labels` are the stream's index labels only,
    `structured_metadata` the entry's metadata (with Loki's `detected_level`), and `parsed` the
    labels a parser stage (`| json`, `| logfmt`) extracted; without it, Loki mixes all three
    into `labels`. A named tuple, not a frozen dataclass: the serving loop makes thousands
    per correlation, at a third of the cost."""

    timestamp_ns: int
    line: str
    labels: Mapping[str, str]
    structured_metadata: Mapping[str, str] = MappingProxyType({})
    parsed: Mapping[str, str] = MappingProxyType({})

    @property
    def timestamp(self) -> pd.Timestamp:
        """The exact instant (pandas keeps nanoseconds; a datetime would round them)."""
        return pd.Timestamp(self.timestamp_ns, unit="ns", tz="UTC")

    @property
    def trace_id(self) -> str | None:
        return (
            self.structured_metadata.get("trace_id")
            or self.labels.get("trace_id")
            or self.parsed.get("trace_id")
        )

    @property
    def identity(self) -> tuple[object, ...]:
        """What makes two entries the same entry for Loki: time, line, labels, metadata."""
        return self.identity_with(frozenset(self.labels.items()))

    def identity_with(self, labels: frozenset[tuple[str, str]]) -> tuple[object, ...]:
        """`identity`, given the labels' set (one per stream, for all its lines)."""
        metadata = self.structured_metadata
        return (
            self.timestamp_ns,
            self.line,
            labels,
            frozenset(metadata.items()) if metadata else _NONE,
        )


def _size(labels: Mapping[str, str]) -> int:
    return sum(map(len, labels)) + sum(map(len, labels.values()))


class LogBudget:
    """Bytes of log lines (text and labels) one correlation may still read, across its
    windows and pages."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    @property
    def spent(self) -> bool:
        return self.used >= self.max_bytes

    def take(self, line: LogLine, labels_size: int | None = None) -> bool:
        """Count `line` (its labels' size given, or counted); False when it no longer fits (it
        is then not kept)."""
        if labels_size is None:
            labels_size = _size(line.labels)
        size = len(line.line) + labels_size
        if line.structured_metadata:
            size += _size(line.structured_metadata)
        if self.used + size > self.max_bytes:
            self.used = self.max_bytes
            return False
        self.used += size
        return True


class PartialLogs(BackendUnavailable):
    """Part of the window arrived, then Loki failed (or could not answer all of it).

    A BackendUnavailable, so a caller that does not know it treats the window as missing; one
    that does keeps `lines` (newest first, each once) and reports the window as partial."""

    def __init__(self, message: str, *, lines: list[LogLine]) -> None:
        super().__init__(message)
        self.lines = lines


def to_ns(moment: datetime | int) -> int:
    """Unix nanoseconds, exactly: a pd.Timestamp keeps its nanoseconds, a datetime its
    microseconds (a naive datetime is local time, as `datetime.timestamp` reads it)."""
    if isinstance(moment, int):
        return moment
    if isinstance(moment, pd.Timestamp):
        return int(moment.value)  # naive pd.Timestamps are UTC, as pandas reads them
    aware = moment if moment.tzinfo is not None else moment.astimezone()
    return (aware - _EPOCH) // _MICROSECOND * 1000


def _data(answer: Any, result_type: str | None = None) -> Any:
    if not isinstance(answer, dict) or answer.get("status") != "success" or "data" not in answer:
        raise BackendGarbage(f"Loki answered an unexpected document: {str(answer)[:200]}")
    data = answer["data"]
    if result_type and (not isinstance(data, dict) or data.get("resultType") != result_type):
        got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise BackendGarbage(f"Loki answered {got!r}, expected {result_type}")
    return data


_LATEST_NS = 2**63 - 1  # the last instant a frame can hold (2262-04-11)


def _nanoseconds(value: Any) -> int:
    if isinstance(value, str) and value.isdigit() and int(value) <= _LATEST_NS:
        return int(value)
    raise ValueError(f"timestamp {value!r} is not a string of nanoseconds before 2262")


_STR = {str}


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object of labels, got {type(value).__name__}")
    if not value:  # most entries' parsed labels: no comprehension to run
        return {}
    if set(map(type, value.values())) == _STR:  # JSON's keys are strings: taken as it is
        return value
    return {str(key): str(item) for key, item in value.items()}


def parse_streams(result: list[dict[str, Any]]) -> list[LogLine]:
    """Loki's `streams` into LogLines; the third element of a value (categorize-labels) holds
    `structuredMetadata` and `parsed`."""
    lines = []
    try:
        for stream in result:
            labels = _strings(stream["stream"])
            for value in stream["values"]:
                if len(value) > 2:
                    extra = value[2]
                    metadata = _strings(extra.get("structuredMetadata") or {})
                    parsed = _strings(extra.get("parsed") or {})
                else:
                    metadata, parsed = {}, {}
                lines.append(
                    LogLine(_nanoseconds(value[0]), str(value[1]), labels, metadata, parsed)
                )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise BackendGarbage(f"Loki answered malformed streams: {exc}") from None
    return lines


@dataclass
class _Window:
    """What one `logs` call has read so far: each entry once, and why it may be incomplete."""

    max_lines: int
    page_size: int
    budget: LogBudget | None = None
    lines: dict[tuple[object, ...], LogLine] = field(default_factory=dict)
    shortfall: str | None = None
    exhausted: bool = False  # the budget is spent: read no more

    def add(self, page: list[LogLine]) -> None:
        # The lines of a stream share one labels dict: its set and size are taken once.
        streams: dict[int, tuple[frozenset[tuple[str, str]], int]] = {}
        for line in page:  # newest first: what the budget cuts off is the oldest
            stream = streams.get(id(line.labels))
            if stream is None:
                stream = streams[id(line.labels)] = (
                    frozenset(line.labels.items()),
                    _size(line.labels),
                )
            identity = line.identity_with(stream[0])
            if identity in self.lines:
                continue
            if self.budget is not None and not self.budget.take(line, stream[1]):
                self.exhausted = True
                self.shortfall = (
                    f"the correlation's log budget ({self.budget.max_bytes} bytes, "
                    "loki.max_bytes) is spent: older lines are missing"
                )
                return
            self.lines[identity] = line

    @property
    def wanted(self) -> int:
        return self.max_lines - len(self.lines)

    def newest_first(self) -> list[LogLine]:
        ordered = sorted(self.lines.values(), key=lambda line: line.timestamp_ns, reverse=True)
        return ordered[: self.max_lines]


class LokiBackend:
    def __init__(self, config: BackendConfig, *, page_size: int = 1000) -> None:
        # Loki says "overloaded" with 429, and a trickled answer must not outlast timeout_s.
        config = dataclasses.replace(
            config,
            overload_statuses=config.overload_statuses | {OVERLOADED},
            timeout_whole_answer=True,
        )
        self._client = BackendClient(config)
        self.page_size = page_size
        self.server_cap: int | None = None  # max_entries_limit_per_query, once Loki named it

    async def close(self) -> None:
        await self._client.close()

    async def _streams(
        self, query: str, start_ns: int, end_ns: int, limit: int, categorize: bool
    ) -> list[LogLine]:
        params = {
            "query": query,
            "start": str(start_ns),
            "end": str(end_ns),
            "limit": str(limit),
            "direction": "backward",
        }
        headers = {"X-Loki-Response-Encoding-Flags": "categorize-labels"} if categorize else None
        answer = await self._client.get_json("/loki/api/v1/query_range", params, headers=headers)
        page = parse_streams(_data(answer, "streams")["result"])
        page.sort(key=lambda line: line.timestamp_ns, reverse=True)
        return page

    async def _page(
        self, query: str, start_ns: int, end_ns: int, limit: int, categorize: bool
    ) -> tuple[list[LogLine], int]:
        """The newest `limit` lines of [start, end) (or fewer, if only fewer fit): the lines and
        the limit finally asked for."""
        while True:
            try:
                return await self._streams(query, start_ns, end_ns, limit, categorize), limit
            except BackendRefused as exc:
                cap = _SERVER_LIMIT.search(str(exc))
                if cap is None or int(cap.group(2)) >= limit:
                    raise
                self.server_cap = int(cap.group(2))  # the server's own cap, from its message
                self.page_size = min(self.page_size, self.server_cap)
                limit = self.server_cap
            except BackendTooLarge:
                if limit == 1:
                    raise
                limit //= 2

    async def logs(
        self,
        query: str,
        start: datetime | int,
        end: datetime | int,
        *,
        max_lines: int = 5000,
        categorize: bool = True,
        budget: LogBudget | None = None,
    ) -> list[LogLine]:
        """Newest first, each entry once, at most `max_lines`, from [start, end), within what
        is left of `budget`.

        Raises PartialLogs (a BackendUnavailable carrying the lines) when some lines arrived but
        not the whole window; the error that stopped it is its message."""
        start_ns = to_ns(start)
        window = _Window(max_lines, self.page_size, budget)
        if budget is not None and budget.spent:
            raise PartialLogs(
                f"the correlation's log budget ({budget.max_bytes} bytes, loki.max_bytes) was "
                "spent before this window was read",
                lines=[],
            )
        upper = to_ns(end)  # the exclusive end of what is left to read
        first = True  # Loki judges the window (start == end: no lines; end < start: a 400)
        try:
            while window.wanted > 0 and (upper > start_ns or first) and not window.exhausted:
                first = False
                page, asked = await self._page(
                    query, start_ns, upper, min(window.page_size, window.wanted), categorize
                )
                window.page_size = min(window.page_size, asked)
                window.add(page)
                if len(page) < asked:
                    break  # nothing older is left in the window
                oldest = page[-1].timestamp_ns
                if oldest == page[0].timestamp_ns:
                    await self._read_instant(query, oldest, window, categorize)
                    upper = oldest  # that nanosecond is read: go on strictly before it
                else:
                    upper = oldest + 1  # more lines may share `oldest`: it is read again
        except (BackendUnavailable, BackendRefused, BackendGarbage) as exc:
            if not window.lines:
                raise
            raise PartialLogs(
                f"Loki answered part of the window ({len(window.lines)} lines), then: {exc}",
                lines=window.newest_first(),
            ) from exc
        if window.shortfall:
            raise PartialLogs(window.shortfall, lines=window.newest_first())
        return window.newest_first()

    async def _read_instant(
        self, query: str, moment_ns: int, window: _Window, categorize: bool
    ) -> None:
        """All lines at one nanosecond, which filled a whole page: as many as one answer holds."""
        already = sum(1 for line in window.lines.values() if line.timestamp_ns == moment_ns)
        limit = window.wanted + already
        if self.server_cap is not None:
            limit = min(limit, self.server_cap)
        page, asked = await self._page(query, moment_ns, moment_ns + 1, limit, categorize)
        window.add(page)
        if len(page) >= asked and window.wanted > 0:
            window.shortfall = (
                f"Loki holds more than {asked} lines at {moment_ns} ns, more than one answer "
                "carries: some of them are missing"
            )

    async def metric(
        self, query: str, start: datetime | int, end: datetime | int, step_s: float
    ) -> pd.DataFrame:
        params = {
            "query": query,
            "start": str(to_ns(start)),
            "end": str(to_ns(end)),
            "step": f"{step_s:g}",
        }
        answer = await self._client.get_json("/loki/api/v1/query_range", params)
        return range_frame(_data(answer, "matrix").get("result"))

    async def labels(self) -> list[str]:
        data = _data(await self._client.get_json("/loki/api/v1/labels", {}))
        return [str(name) for name in data]
