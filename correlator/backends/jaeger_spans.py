"""Jaeger's span documents as spans: OTLP JSON (api_v3, and OTLP trace files) and Jaeger's v1
JSON (`/api/traces`, and the JSON the Jaeger UI downloads). Pure, values in and values out: the
HTTP client (backends/jaeger.py) parses its answers with it, and rca/ the trace files of
datasets and incident bundles, with no HTTP client imported. A malformed document raises
MalformedSpans; each caller translates it where the bytes came in (BackendGarbage for the
client, BundleError for a bundle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

ERROR_STATUS = 2  # OTLP Status.code ERROR
SPAN_KINDS = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}


class MalformedSpans(ValueError):
    """A span document that is not what OTLP JSON or Jaeger's v1 JSON promises."""


class Span(NamedTuple):
    """One span. A named tuple, not a dataclass: a correlation reads thousands, and making a
    frozen dataclass cost half of reading an OTLP answer."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    operation: str
    kind: str
    start: datetime
    duration_ms: float
    error: bool
    attributes: Mapping[str, str] = MappingProxyType({})


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
        raise MalformedSpans(f"malformed OTLP: {exc}") from None
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
        raise MalformedSpans(f"malformed v1 traces: {exc}") from None
    return spans


@dataclass(frozen=True, slots=True)
class SearchBody:
    """A trace search's answer as it came, unparsed (`search_spans` reads it, in the analysis
    processes during a correlation): api_v3's `{"result": OTLP}`, or v1's `{"data": [...]}`."""

    body: bytes
    v1: bool = False


def search_spans(found: SearchBody) -> list[Span]:
    """The spans of a trace search's answer; MalformedSpans if it is not JSON of the shape its
    API promises."""
    try:
        document = orjson.loads(found.body)
    except orjson.JSONDecodeError:
        text = found.body[:200].decode("utf-8", "replace").strip()
        raise MalformedSpans(f"something that is not JSON: {text}") from None
    if found.v1:
        if not isinstance(document, dict) or not isinstance(document.get("data"), list):
            raise MalformedSpans("(v1) traces without data")
        return parse_v1(document["data"])
    if not isinstance(document, dict) or "result" not in document:
        raise MalformedSpans("traces without a result")
    return parse_otlp(document["result"])
