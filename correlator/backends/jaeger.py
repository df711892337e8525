"""Jaeger query API: traces, services, operations and the service dependency graph.

api_v3 first (OTLP JSON in `{"result": …}`). An empty search is a 404 whose JSON body says
"No traces found": that is an answer (no traces), not a failure. A 404 without that body means
the route does not exist, as on Jaeger before api_v3: then the v1 search (`/api/traces`, times in
microseconds) answers instead. The dependency graph comes from v1 `/api/dependencies`
(milliseconds), which api_v3 has no HTTP route for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

from correlator.backends.http import BackendClient, BackendConfig, BackendGarbage, BackendRefused
from correlator.backends.jaeger_spans import (
    MalformedSpans,
    SearchBody,
    Span,
    parse_otlp,
    search_spans,
)


@dataclass(frozen=True, slots=True)
class Dependency:
    parent: str
    child: str
    call_count: int


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _spans(parse: Callable[[Any], list[Span]], document: Any) -> list[Span]:
    try:
        return parse(document)
    except MalformedSpans as exc:
        raise BackendGarbage(f"Jaeger answered {exc}") from None


# api_v3 search parameters: Jaeger up to module v1.75.0 (a Jaeger v2 binary) reads only the
# snake_case names (and `query.num_traces` for the depth, which defaults to 0 there: a 500 with
# memory storage);
# later releases read camelCase first and keep snake_case as a deprecated alias. Both spellings
# are sent, so every release reads the same values.
_SNAKE = {
    "serviceName": "service_name",
    "operationName": "operation_name",
    "startTimeMin": "start_time_min",
    "startTimeMax": "start_time_max",
    "searchDepth": "num_traces",
    "durationMin": "duration_min",
}


def _search_params(values: dict[str, str]) -> dict[str, str]:
    params = {}
    for name, value in values.items():
        params[f"query.{name}"] = value
        params[f"query.{_SNAKE[name]}"] = value
    return params


class SearchOptions(TypedDict, total=False):
    """What narrows a trace search (`JaegerBackend.search_body`)."""

    operation: str | None
    limit: int
    min_duration_ms: float | None
    attributes: dict[str, str] | None


def _no_traces(exc: BackendRefused) -> bool:
    return exc.status == 404 and "No traces found" in exc.body


class JaegerBackend:
    def __init__(self, config: BackendConfig) -> None:
        self._client = BackendClient(config)

    async def close(self) -> None:
        await self._client.close()

    async def services(self) -> list[str]:
        answer = await self._client.get_json("/api/v3/services", {})
        if not isinstance(answer, dict) or not isinstance(answer.get("services", []), list):
            raise BackendGarbage("Jaeger answered services that are not a list")
        return [str(s) for s in answer.get("services", [])]

    async def find_traces(
        self, service: str, start: datetime, end: datetime, **options: Unpack[SearchOptions]
    ) -> list[Span]:
        """Every span of up to `limit` traces that touch `service` in the range (`options` as
        `search_body` takes them)."""
        found = await self.search_body(service, start, end, **options)
        return [] if found is None else _spans(search_spans, found)

    async def search_body(
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        operation: str | None = None,
        limit: int = 20,
        min_duration_ms: float | None = None,
        attributes: dict[str, str] | None = None,
    ) -> SearchBody | None:
        """The answer of a search for up to `limit` traces that touch `service` in the range,
        unparsed (None: no traces), for `search_spans` to read where the CPU is to be spent: a
        lone correlation reads it in the analysis processes.

        `attributes` filters only on Jaeger releases whose api_v3 reads `query.attributes`;
        module v1.75.0 ignores it, so callers must not rely on it to narrow the answer.
        """
        params = _search_params(
            {
                "serviceName": service,
                "startTimeMin": _rfc3339(start),
                "startTimeMax": _rfc3339(end),
                "searchDepth": str(limit),
            }
        )
        if operation:
            params |= _search_params({"operationName": operation})
        if min_duration_ms is not None:
            params |= _search_params({"durationMin": f"{min_duration_ms:g}ms"})
        if attributes:
            params["query.attributes"] = json.dumps(attributes)
        try:
            return SearchBody(await self._client.get_bytes("/api/v3/traces", params))
        except BackendRefused as exc:
            if _no_traces(exc):
                return None
            if exc.status != 404:
                raise
        # No api_v3 route: Jaeger before api_v3 answers the v1 search.
        return await self._v1_body(service, start, end, operation, limit)

    async def _v1_body(
        self, service: str, start: datetime, end: datetime, operation: str | None, limit: int
    ) -> SearchBody:
        """The v1 search, for Jaeger before api_v3 (times in microseconds)."""
        params = {
            "service": service,
            "start": str(int(start.timestamp() * 1e6)),
            "end": str(int(end.timestamp() * 1e6)),
            "limit": str(limit),
        }
        if operation:
            params["operation"] = operation
        return SearchBody(await self._client.get_bytes("/api/traces", params), v1=True)

    async def trace(self, trace_id: str) -> list[Span]:
        try:
            answer = await self._client.get_json(f"/api/v3/traces/{quote(trace_id, safe='')}", {})
        except BackendRefused as exc:
            if _no_traces(exc):
                return []
            raise
        return _spans(parse_otlp, answer.get("result", {}))

    async def dependencies(self, end: datetime, lookback: timedelta) -> list[Dependency]:
        params = {
            "endTs": str(int(end.timestamp() * 1000)),
            "lookback": str(int(lookback.total_seconds() * 1000)),
        }
        answer = await self._client.get_json("/api/dependencies", params)
        try:
            return [
                Dependency(str(d["parent"]), str(d["child"]), int(d["callCount"]))
                for d in (answer.get("data") or [])
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendGarbage(f"Jaeger answered malformed dependencies: {exc}") from None
