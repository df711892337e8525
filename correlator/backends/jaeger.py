"""Jaeger query API: traces, services, operations and the service dependency graph.

api_v3 first (OTLP JSON in `{"result": …}`). An empty search is a 404 whose JSON body says
"No traces found": that is an answer (no traces), not a failure. A 404 without that body means
the route does not exist, as on Jaeger before api_v3: then the v1 search (`/api/traces`, times in
microseconds) answers instead. The dependency graph comes from v1 `/api/dependencies`
(milliseconds), which api_v3 has no HTTP route for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from correlator.backends.http import BackendClient, BackendConfig, BackendGarbage, BackendRefused

ERROR_STATUS = 2  # OTLP Status.code ERROR
SPAN_KINDS = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    operation: str
    kind: str
    start: datetime
    duration_ms: float
    error: bool
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dependency:
    parent: str
    child: str
    call_count: int


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _value(value: dict[str, Any]) -> str:
    for kind in ("stringValue", "intValue", "boolValue", "doubleValue"):
        if kind in value:
            return str(value[kind]).lower() if kind == "boolValue" else str(value[kind])
    return json.dumps(value)


def parse_otlp(result: dict[str, Any]) -> list[Span]:
    spans = []
    try:
        for resource_spans in result.get("resourceSpans", []):
            attributes = resource_spans.get("resource", {}).get("attributes", [])
            service = next(
                (_value(a["value"]) for a in attributes if a.get("key") == "service.name"),
                "unknown",
            )
            for scope in resource_spans.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    start_ns = int(span.get("startTimeUnixNano", 0))
                    end_ns = int(span.get("endTimeUnixNano", start_ns))
                    spans.append(
                        Span(
                            trace_id=span["traceId"],
                            span_id=span["spanId"],
                            parent_span_id=span.get("parentSpanId") or None,
                            service=service,
                            operation=span.get("name", ""),
                            kind=SPAN_KINDS.get(int(span.get("kind", 0)), "unspecified"),
                            start=datetime.fromtimestamp(start_ns / 1e9, UTC),
                            duration_ms=(end_ns - start_ns) / 1e6,
                            error=int(span.get("status", {}).get("code", 0)) == ERROR_STATUS,
                            attributes={
                                a["key"]: _value(a["value"]) for a in span.get("attributes", [])
                            },
                        )
                    )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendGarbage(f"Jaeger answered malformed OTLP: {exc}") from None
    return spans


def parse_v1(data: list[dict[str, Any]]) -> list[Span]:
    spans = []
    try:
        for trace in data:
            processes = {pid: p["serviceName"] for pid, p in trace.get("processes", {}).items()}
            for span in trace["spans"]:
                # The parent is a CHILD_OF reference within this trace: a span may also point
                # into other traces (Jaeger's own fixture ui_01 does), which are no parent here.
                parent = next(
                    (
                        r["spanID"]
                        for r in span.get("references", [])
                        if r.get("refType") == "CHILD_OF"
                        and r.get("traceID", span["traceID"]) == span["traceID"]
                    ),
                    None,
                )
                tags = {t["key"]: str(t["value"]) for t in span.get("tags", [])}
                spans.append(
                    Span(
                        trace_id=span["traceID"],
                        span_id=span["spanID"],
                        parent_span_id=parent,
                        service=processes.get(span.get("processID", ""), "unknown"),
                        operation=span.get("operationName", ""),
                        kind=tags.get("span.kind", "unspecified"),
                        start=datetime.fromtimestamp(int(span["startTime"]) / 1e6, UTC),
                        duration_ms=int(span["duration"]) / 1e3,
                        error=tags.get("error") == "True" or tags.get("error") == "true",
                        attributes=tags,
                    )
                )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendGarbage(f"Jaeger answered malformed v1 traces: {exc}") from None
    return spans


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
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        operation: str | None = None,
        limit: int = 20,
        min_duration_ms: float | None = None,
        attributes: dict[str, str] | None = None,
    ) -> list[Span]:
        """Every span of up to `limit` traces that touch `service` in the range.

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
            answer = await self._client.get_json("/api/v3/traces", params)
        except BackendRefused as exc:
            if _no_traces(exc):
                return []
            if exc.status == 404:
                return await self._find_v1(service, start, end, operation, limit)
            raise
        if not isinstance(answer, dict) or "result" not in answer:
            raise BackendGarbage("Jaeger answered traces without a result")
        return parse_otlp(answer["result"])

    async def _find_v1(
        self, service: str, start: datetime, end: datetime, operation: str | None, limit: int
    ) -> list[Span]:
        params = {
            "service": service,
            "start": str(int(start.timestamp() * 1e6)),
            "end": str(int(end.timestamp() * 1e6)),
            "limit": str(limit),
        }
        if operation:
            params["operation"] = operation
        answer = await self._client.get_json("/api/traces", params)
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise BackendGarbage("Jaeger (v1) answered traces without data")
        return parse_v1(answer["data"])

    async def trace(self, trace_id: str) -> list[Span]:
        try:
            answer = await self._client.get_json(f"/api/v3/traces/{quote(trace_id, safe='')}", {})
        except BackendRefused as exc:
            if _no_traces(exc):
                return []
            raise
        return parse_otlp(answer.get("result", {}))

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
