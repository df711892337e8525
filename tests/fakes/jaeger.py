"""A Jaeger query test server: api_v3 over HTTP, v1 dependencies, and (legacy mode) v1 search.

Follows ../shared/contracts/jaeger/NOTES.md: api_v3 answers OTLP JSON in `{"result": …}`;
search needs `query.startTimeMin` and `query.startTimeMax` (camelCase or snake_case), min
before max, RFC 3339 times, Go durations; an empty search or an unknown trace is a 404 whose
JSON body is sent as text/plain (`{"error":{"httpCode":404,"message":"No traces found"}}`);
parameter errors are 400s with the parser's words. `/api/dependencies` (ms) merges the calls
between services of stored spans. With `legacy=True` there is no api_v3 at all (plain 404s)
and the removed v1 search `/api/traces` (µs) answers instead.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_DURATION = re.compile(r"^(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)$")
_UNIT_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


@dataclass
class FakeSpan:
    trace_id: str
    span_id: str
    service: str
    operation: str
    start_ns: int
    duration_ns: int
    parent_span_id: str | None = None
    kind: str = "server"
    error: bool = False
    attributes: dict[str, str] = field(default_factory=dict)


def otlp_traces(spans: list[FakeSpan], *, scope: str = "") -> dict[str, Any]:
    """OTLP/JSON `TracesData` for `spans`, one resource per service: what an instrumented app
    pushes (tests/support/jaeger.py) and what api_v3 answers inside `{"result": …}`."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        otlp: dict[str, Any] = {
            "traceId": span.trace_id,
            "spanId": span.span_id,
            "name": span.operation,
            "kind": KINDS.get(span.kind, 0),
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.start_ns + span.duration_ns),
        }
        if span.parent_span_id:
            otlp["parentSpanId"] = span.parent_span_id
        if span.error:
            otlp["status"] = {"code": 2}
        if span.attributes:
            otlp["attributes"] = [
                {"key": k, "value": {"stringValue": v}} for k, v in span.attributes.items()
            ]
        by_service.setdefault(span.service, []).append(otlp)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": scope} if scope else {}, "spans": found}],
            }
            for service, found in by_service.items()
        ]
    }


def _error(status: int, message: str) -> web.Response:
    body = json.dumps({"error": {"httpCode": status, "message": message}}) + "\n"
    return web.Response(
        status=status,
        text=body,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _param(request: web.Request, canonical: str, alias: str | None) -> tuple[str, str | None]:
    if request.query.get(canonical):
        return canonical, request.query[canonical]
    if alias and request.query.get(alias):
        return alias, request.query[alias]
    return canonical, None


def _time(name: str, value: str) -> int:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f'malformed parameter {name}: parsing time "{value}" as RFC3339') from None
    return int(moment.timestamp() * 1e9)


def _duration(name: str, value: str) -> int:
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f'malformed parameter {name}: time: invalid duration "{value}"')
    return int(float(match.group(1)) * _UNIT_NS[match.group(3)])


# What differs between the Jaeger releases imitated (`version=`), each checked against the real
# binary in tests/backends/test_jaeger.py:
# - "1.75" (module v1.75.0, the approved Jaeger v2 binary the tests build;
#   cmd/query/app/apiv3/http_gateway.go at v1.75.0): api_v3 search reads only snake_case names
#   and `query.num_traces`; without a depth the memory store refuses the search (500); success
#   bodies carry no Content-Type of their own, so Go sniffs `text/plain; charset=utf-8`.
# - "newer" (../shared/contracts/jaeger/NOTES.md, 2026-08): camelCase canonical names with
#   snake_case aliases, `query.searchDepth` (default 100), JSON success bodies.
VERSIONS = ("1.75", "newer")


class FakeJaeger:
    def __init__(self, *, legacy: bool = False, version: str = "1.75") -> None:
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}")
        self.version = version
        self.spans: list[FakeSpan] = []
        self.app = web.Application()
        if not legacy:
            self.app.router.add_get("/api/v3/services", self.services)
            self.app.router.add_get("/api/v3/operations", self.operations)
            self.app.router.add_get("/api/v3/traces", self.find_traces)
            self.app.router.add_get("/api/v3/traces/{trace_id}", self.get_trace)
        else:
            self.app.router.add_get("/api/traces", self.find_traces_v1)
        self.app.router.add_get("/api/dependencies", self.dependencies)

    def add(self, *spans: FakeSpan) -> None:
        self.spans.extend(spans)

    # --- answers ---------------------------------------------------------------------------

    @staticmethod
    def _otlp(spans: list[FakeSpan]) -> dict[str, Any]:
        return otlp_traces(spans)

    async def services(self, request: web.Request) -> web.Response:
        return self._json({"services": sorted({s.service for s in self.spans})})

    async def operations(self, request: web.Request) -> web.Response:
        service = request.query.get("service")
        found = sorted(
            {
                (s.operation, s.kind or "internal")
                for s in self.spans
                if service in (None, s.service)
            }
        )
        return web.json_response({"operations": [{"name": n, "spanKind": k} for n, k in found]})

    def _search_param(self, request: web.Request, camel: str, snake: str) -> tuple[str, str | None]:
        if self.version == "1.75":
            return snake, request.query.get(snake) or None
        return _param(request, camel, snake)

    def _json(self, body: dict[str, Any]) -> web.Response:
        if self.version == "1.75":
            return web.Response(text=json.dumps(body), content_type="text/plain", charset="utf-8")
        return web.json_response(body)

    async def find_traces(self, request: web.Request) -> web.Response:
        snake = self.version == "1.75"
        low_word, high_word = (
            ("query.start_time_min", "query.start_time_max")
            if snake
            else ("query.startTimeMin", "query.startTimeMax")
        )
        try:
            low_name, low = self._search_param(
                request, "query.startTimeMin", "query.start_time_min"
            )
            high_name, high = self._search_param(
                request, "query.startTimeMax", "query.start_time_max"
            )
            if low is None or high is None:
                return _error(400, f"{low_word} and {high_word} are required")
            start, end = _time(low_name, low), _time(high_name, high)
            if start >= end and not snake:
                return _error(400, "query.startTimeMin must be before query.startTimeMax")
            _, service = self._search_param(request, "query.serviceName", "query.service_name")
            _, operation = self._search_param(
                request, "query.operationName", "query.operation_name"
            )
            if snake:
                _, depth = self._search_param(request, "", "query.num_traces")
            else:
                _, depth = _param(request, "query.searchDepth", "query.search_depth")
                depth = depth or request.query.get("query.num_traces")
            limit = int(depth) if depth else (0 if snake else 100)
            min_name, minimum = self._search_param(
                request, "query.durationMin", "query.duration_min"
            )
            min_ns = _duration(min_name, minimum) if minimum else 0
            # v1.75's gateway builds an empty attribute map whatever the query says.
            attributes = {} if snake else json.loads(request.query.get("query.attributes", "{}"))
        except ValueError as exc:
            return _error(400, str(exc))
        if limit <= 0:
            return _error(500, "search depth must be greater than 0 and less than max traces")
        matching: list[str] = []
        for span in sorted(self.spans, key=lambda s: s.start_ns, reverse=True):
            if (
                service in (None, span.service)
                and operation in (None, span.operation)
                and start <= span.start_ns <= end
                and span.duration_ns >= min_ns
                and all(span.attributes.get(k) == v for k, v in attributes.items())
                and span.trace_id not in matching
            ):
                matching.append(span.trace_id)
        chosen = set(matching[:limit])
        if not chosen:
            return _error(404, "No traces found")
        return self._json({"result": self._otlp([s for s in self.spans if s.trace_id in chosen])})

    async def get_trace(self, request: web.Request) -> web.Response:
        trace_id = request.match_info["trace_id"]
        if not re.fullmatch(r"[0-9a-fA-F]{1,32}", trace_id):
            return _error(400, f"malformed parameter trace_id: {trace_id}")
        spans = [s for s in self.spans if s.trace_id == trace_id.lower().zfill(32)]
        if not spans:
            return _error(404, "No traces found")
        return self._json({"result": self._otlp(spans)})

    async def find_traces_v1(self, request: web.Request) -> web.Response:
        service = request.query.get("service")
        start = int(request.query.get("start", "0")) * 1000
        end = int(request.query.get("end", str(2**62 // 1000))) * 1000
        traces: dict[str, list[FakeSpan]] = {}
        for span in self.spans:
            if start <= span.start_ns <= end and any(
                s.service == service for s in self.spans if s.trace_id == span.trace_id
            ):
                traces.setdefault(span.trace_id, []).append(span)
        data = []
        for trace_id, spans in traces.items():
            services = sorted({s.service for s in spans})
            processes = {
                f"p{i}": {"serviceName": name, "tags": []} for i, name in enumerate(services)
            }
            pid = {name: f"p{i}" for i, name in enumerate(services)}
            data.append(
                {
                    "traceID": trace_id,
                    "processes": processes,
                    "warnings": None,
                    "spans": [
                        {
                            "traceID": s.trace_id,
                            "spanID": s.span_id,
                            "operationName": s.operation,
                            "references": [
                                {
                                    "refType": "CHILD_OF",
                                    "traceID": s.trace_id,
                                    "spanID": s.parent_span_id,
                                }
                            ]
                            if s.parent_span_id
                            else [],
                            "startTime": s.start_ns // 1000,
                            "duration": s.duration_ns // 1000,
                            "tags": [{"key": "error", "type": "bool", "value": True}]
                            if s.error
                            else [],
                            "processID": pid[s.service],
                        }
                        for s in spans
                    ],
                }
            )
        return web.json_response(
            {"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None}
        )

    async def dependencies(self, request: web.Request) -> web.Response:
        try:
            end_ms = int(request.query.get("endTs", str(2**62)))
            lookback_ms = int(request.query.get("lookback", str(24 * 3600 * 1000)))
        except ValueError as exc:
            body = {
                "data": None,
                "total": 0,
                "limit": 0,
                "offset": 0,
                "errors": [{"code": 400, "msg": f"unable to parse param: {exc}"}],
            }
            return web.Response(
                status=400, text=json.dumps(body), content_type="text/plain", charset="utf-8"
            )
        by_id = {(s.trace_id, s.span_id): s for s in self.spans}
        calls: Counter[tuple[str, str]] = Counter()
        for span in self.spans:
            parent = by_id.get((span.trace_id, span.parent_span_id or ""))
            if (
                parent
                and parent.service != span.service
                and end_ms - lookback_ms <= span.start_ns / 1e6 <= end_ms
            ):
                calls[(parent.service, span.service)] += 1
        data = [{"parent": p, "child": c, "callCount": n} for (p, c), n in sorted(calls.items())]
        return web.json_response(
            {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None}
        )
