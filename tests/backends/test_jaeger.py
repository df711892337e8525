"""The Jaeger backend against the Jaeger test server: api_v3, the v1 fallback, dependencies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from correlator.backends.http import BackendConfig, BackendRefused
from correlator.backends.jaeger import JaegerBackend
from tests.fakes.jaeger import FakeJaeger, FakeSpan
from tests.support.servers import served

NOW_NS = int(time.time()) * 1_000_000_000
MS = 1_000_000


def checkout_trace(
    trace_id: str, *, slow_db: bool = False, failing: bool = False
) -> list[FakeSpan]:
    start = NOW_NS - 60_000 * MS
    return [
        FakeSpan(trace_id, "0000000000000001", "frontend", "GET /checkout", start, 300 * MS),
        FakeSpan(
            trace_id,
            "0000000000000002",
            "checkout",
            "PlaceOrder",
            start + 5 * MS,
            280 * MS,
            parent_span_id="0000000000000001",
            error=failing,
        ),
        FakeSpan(
            trace_id,
            "0000000000000003",
            "postgres",
            "INSERT orders",
            start + 10 * MS,
            (250 if slow_db else 5) * MS,
            parent_span_id="0000000000000002",
            kind="client",
        ),
    ]


def window() -> tuple[datetime, datetime]:
    end = datetime.fromtimestamp(NOW_NS / 1e9, UTC)
    return end - timedelta(hours=1), end


@pytest.fixture
async def jaeger() -> AsyncIterator[tuple[FakeJaeger, JaegerBackend, str]]:
    fake = FakeJaeger()
    fake.add(*checkout_trace("a" * 32, slow_db=True), *checkout_trace("b" * 32, failing=True))
    async with served(fake.app) as url:
        backend = JaegerBackend(BackendConfig(name="Jaeger", url=url))
        try:
            yield fake, backend, url
        finally:
            await backend.close()


async def test_search_returns_every_span_of_matching_traces(jaeger: Any) -> None:
    _, backend, _ = jaeger
    start, end = window()
    spans = await backend.find_traces("checkout", start, end)
    assert {s.trace_id for s in spans} == {"a" * 32, "b" * 32}
    db = next(s for s in spans if s.trace_id == "a" * 32 and s.service == "postgres")
    assert db.duration_ms == 250 and db.kind == "client" and db.parent_span_id == "0000000000000002"
    assert any(s.error and s.service == "checkout" for s in spans)
    slow = await backend.find_traces("postgres", start, end, min_duration_ms=100)
    assert {s.trace_id for s in slow} == {"a" * 32}


async def test_an_empty_search_is_no_traces_not_an_error(jaeger: Any) -> None:
    _, backend, _ = jaeger
    start, end = window()
    assert await backend.find_traces("nobody", start, end) == []
    assert await backend.trace("c" * 32) == []


async def test_hostile_values_are_encoded_not_interpreted(jaeger: Any) -> None:
    _, backend, _ = jaeger
    start, end = window()
    assert await backend.find_traces("checkout&query.serviceName=frontend", start, end) == []
    with pytest.raises(BackendRefused, match="malformed parameter trace_id"):
        await backend.trace("../services?x=1")


async def test_the_dependency_graph_comes_from_the_calls(jaeger: Any) -> None:
    _, backend, _ = jaeger
    deps = await backend.dependencies(window()[1] + timedelta(minutes=1), timedelta(hours=2))
    assert {(d.parent, d.child, d.call_count) for d in deps} == {
        ("checkout", "postgres", 2),
        ("frontend", "checkout", 2),
    }


async def test_services(jaeger: Any) -> None:
    _, backend, _ = jaeger
    assert await backend.services() == ["checkout", "frontend", "postgres"]


async def test_older_jaeger_without_api_v3_is_searched_through_v1() -> None:
    fake = FakeJaeger(legacy=True)
    fake.add(*checkout_trace("d" * 32, failing=True))
    async with served(fake.app) as url:
        backend = JaegerBackend(BackendConfig(name="Jaeger", url=url))
        try:
            start, end = window()
            spans = await backend.find_traces("checkout", start, end)
        finally:
            await backend.close()
    assert sorted(s.service for s in spans) == ["checkout", "frontend", "postgres"]
    assert next(s for s in spans if s.service == "checkout").error


async def test_the_test_server_answers_errors_as_jaeger_does(jaeger: Any) -> None:
    _, _, url = jaeger
    async with httpx.AsyncClient(base_url=url) as http:
        missing = await http.get("/api/v3/traces", params={"query.serviceName": "x"})
        assert missing.status_code == 400
        assert (
            missing.json()["error"]["message"]
            == "query.startTimeMin and query.startTimeMax are required"
        )
        empty = await http.get(
            "/api/v3/traces",
            params={
                "query.service_name": "nobody",
                "query.start_time_min": "2026-01-01T00:00:00Z",
                "query.start_time_max": "2026-01-02T00:00:00Z",
            },
        )
        assert empty.status_code == 404 and empty.headers["content-type"].startswith("text/plain")
        assert empty.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
        backwards = await http.get(
            "/api/v3/traces",
            params={
                "query.startTimeMin": "2026-01-02T00:00:00Z",
                "query.startTimeMax": "2026-01-01T00:00:00Z",
            },
        )
        assert (
            backwards.json()["error"]["message"]
            == "query.startTimeMin must be before query.startTimeMax"
        )
