"""The Jaeger parsers, and the Jaeger test server's bodies, held to Jaeger's own fixtures
(tests/contracts/jaeger: api_v3 snapshots and the OTLP → v1 conversion pair from
jaegertracing/jaeger, Apache-2.0)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from correlator.backends.jaeger_spans import parse_otlp, parse_v1
from tests.fakes.jaeger import FakeJaeger, FakeSpan
from tests.support.servers import served

FIXTURES = Path(__file__).resolve().parents[1] / "contracts" / "jaeger"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def shape(value: Any) -> Any:
    """The keys of a JSON body at every level (lists by their first element)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_the_api_v3_trace_snapshot_parses_with_kind_and_error_status() -> None:
    for name in ("GetTrace.json", "FindTraces.json"):
        (span,) = parse_otlp(fixture(name)["result"])
        assert span.trace_id == "00000000000000000000000000000001"
        assert span.span_id == "0000000000000002" and span.parent_span_id is None
        assert (span.operation, span.kind, span.error) == ("foobar", "server", True)
        assert span.service == "unknown"  # the snapshot's resource has no service.name


def test_jaegers_own_otlp_to_v1_conversion_parses_to_the_same_spans() -> None:
    """One trace as OTLP (api_v3) and as Jaeger converted it to v1 JSON: both parsers must read
    the same spans, so the v1 fallback ranks as api_v3 does."""
    from_otlp = parse_otlp(fixture("otlp2jaeger-in.json"))
    from_v1 = parse_v1(fixture("otlp2jaeger-out.json")["data"])

    def key(span: Any) -> tuple[Any, ...]:
        return (
            span.trace_id,
            span.span_id,
            span.parent_span_id,
            span.service,
            span.operation,
            span.kind,
            span.start,
            round(span.duration_ms, 6),
            span.error,
        )

    assert sorted(map(key, from_otlp)) == sorted(map(key, from_v1))
    assert {s.service for s in from_otlp} == {"telemetrygen"}
    assert {s.kind for s in from_otlp} == {"server"}
    assert from_otlp[0].start == datetime.fromtimestamp(1706678909.209712, UTC)


def test_the_v1_ui_fixture_parses_services_errors_and_same_trace_parents() -> None:
    trace = fixture("ui_01.json")
    spans = {(s.span_id, s.operation): s for s in parse_v1([trace])}
    services = {s.span_id: s.service for s in spans.values()}
    assert services["0000000000000002"] == "service-x"
    assert services["0000000000000003"] == "service-y"
    assert any(s.error for s in spans.values() if s.span_id == "0000000000000002")
    by_id = {s.span_id: s for s in spans.values()}
    assert by_id["0000000000000003"].parent_span_id == "0000000000000002"
    # Its first CHILD_OF points into another trace: the parent is the one in this trace.
    assert by_id["0000000000000004"].parent_span_id == "0000000000000002"
    assert by_id["0000000000000005"].parent_span_id == "0000000000000004"


async def test_the_test_servers_bodies_have_the_snapshots_shape() -> None:
    fake = FakeJaeger()
    fake.add(FakeSpan("0" * 31 + "1", "0" * 15 + "2", "foo", "foobar", 10**18, 10**6, error=True))
    async with served(fake.app) as url, httpx.AsyncClient(base_url=url) as http:
        trace = (await http.get(f"/api/v3/traces/{'0' * 31}1")).json()
        services = (await http.get("/api/v3/services")).json()
    ours, theirs = shape(trace), shape(fixture("GetTrace.json"))
    span_ours = ours["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span_theirs = theirs["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert set(span_theirs) <= set(span_ours)
    assert span_ours["status"] == span_theirs["status"] and span_ours["kind"] == "int"
    assert shape(services) == shape(fixture("GetServices.json"))
