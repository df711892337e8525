"""Loki HTTP API: log lines and metric queries around an alert.

Loki caps the entries of one answer (`limit`, itself capped by the server's
`max_entries_limit_per_query`): a full page means there may be more, so the next page ends
where the last one began (going backward in time), until `max_lines`. If the server's cap is
lower than the limit asked for, its 400 says so; the cap it names is used from then on.
Errors are plain text with status 400; they come back as BackendRefused with Loki's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from correlator.backends.http import BackendClient, BackendConfig, BackendGarbage, BackendRefused
from correlator.backends.prometheus import range_frame

_SERVER_LIMIT = re.compile(r"max_entries_limit_per_query \((\d+) > (\d+)\)")


@dataclass(frozen=True, slots=True)
class LogLine:
    timestamp: datetime
    line: str
    labels: dict[str, str]
    structured_metadata: dict[str, str] = field(default_factory=dict)

    @property
    def trace_id(self) -> str | None:
        return self.structured_metadata.get("trace_id") or self.labels.get("trace_id")


def _ns(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1_000_000_000))


def _data(answer: Any, result_type: str | None = None) -> Any:
    if not isinstance(answer, dict) or answer.get("status") != "success" or "data" not in answer:
        raise BackendGarbage(f"Loki answered an unexpected document: {str(answer)[:200]}")
    data = answer["data"]
    if result_type and (not isinstance(data, dict) or data.get("resultType") != result_type):
        got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise BackendGarbage(f"Loki answered {got!r}, expected {result_type}")
    return data


def parse_streams(result: list[dict[str, Any]]) -> list[LogLine]:
    lines = []
    try:
        for stream in result:
            labels = dict(stream["stream"])
            for value in stream["values"]:
                metadata = value[2].get("structuredMetadata", {}) if len(value) > 2 else {}
                moment = datetime.fromtimestamp(int(value[0]) / 1_000_000_000, UTC)
                lines.append(LogLine(moment, str(value[1]), labels, dict(metadata)))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise BackendGarbage(f"Loki answered malformed streams: {exc}") from None
    return lines


class LokiBackend:
    def __init__(self, config: BackendConfig, *, page_size: int = 1000) -> None:
        self._client = BackendClient(config)
        self.page_size = page_size

    async def close(self) -> None:
        await self._client.close()

    async def _streams(
        self, query: str, start: datetime, end_ns: str, limit: int, categorize: bool
    ) -> list[LogLine]:
        params = {
            "query": query,
            "start": _ns(start),
            "end": end_ns,
            "limit": str(limit),
            "direction": "backward",
        }
        headers = {"X-Loki-Response-Encoding-Flags": "categorize-labels"} if categorize else None
        answer = await self._client.get_json("/loki/api/v1/query_range", params, headers=headers)
        return parse_streams(_data(answer, "streams")["result"])

    async def logs(
        self,
        query: str,
        start: datetime,
        end: datetime,
        *,
        max_lines: int = 5000,
        categorize: bool = True,
    ) -> list[LogLine]:
        """Newest first, at most `max_lines`, paging backward through the range."""
        collected: list[LogLine] = []
        seen: set[tuple[int, str, tuple[tuple[str, str], ...]]] = set()
        end_ns = _ns(end)
        while len(collected) < max_lines:
            limit = min(self.page_size, max_lines - len(collected))
            try:
                page = await self._streams(query, start, end_ns, limit, categorize)
            except BackendRefused as exc:
                cap = _SERVER_LIMIT.search(str(exc))
                if cap is None or int(cap.group(2)) >= limit:
                    raise
                self.page_size = int(cap.group(2))  # the server's own cap, from its message
                continue
            page.sort(key=lambda line: line.timestamp, reverse=True)
            fresh = []
            for line in page:
                identity = (
                    int(line.timestamp.timestamp() * 1e9),
                    line.line,
                    tuple(sorted(line.labels.items())),
                )
                if identity not in seen:
                    seen.add(identity)
                    fresh.append(line)
            collected += fresh
            if len(page) < limit or not fresh:
                break
            end_ns = str(int(page[-1].timestamp.timestamp() * 1_000_000_000) + 1)
        return collected[:max_lines]

    async def metric(
        self, query: str, start: datetime, end: datetime, step_s: float
    ) -> pd.DataFrame:
        params = {"query": query, "start": _ns(start), "end": _ns(end), "step": f"{step_s:g}"}
        answer = await self._client.get_json("/loki/api/v1/query_range", params)
        return range_frame(_data(answer, "matrix")["result"])

    async def labels(self) -> list[str]:
        data = _data(await self._client.get_json("/loki/api/v1/labels", {}))
        return [str(name) for name in data]
