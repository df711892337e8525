"""The Jaeger backend against the Jaeger test server: api_v3, the v1 fallback, dependencies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from correlator.backends.http import BackendConfig, BackendRefused
from correlator.backends.jaeger import JaegerBackend
from correlator.backends.jaeger_spans import search_spans
from tests.fakes.jaeger import FakeJaeger, FakeSpan
from tests.support.jaeger import Jaeger
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


SCENARIO = [*checkout_trace("a" * 32, slow_db=True), *checkout_trace("b" * 32, failing=True)]
# The same assertions run against the real Jaeger v2 (the approved v1.75.0, built from the Go
# module proxy) and the test server imitating it and a newer release; only fault injection
# (no api_v3 at all) stays with the test server alone.
KINDS_OF_JAEGER = ["jaeger-v1.75", "test-server-1.75", "test-server-newer"]


@pytest.fixture(scope="module")
def real_jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    jaeger = Jaeger(tmp_path_factory.mktemp("jaeger")).start()
    try:
        jaeger.push(SCENARIO)
        yield jaeger
    finally:
        jaeger.stop()


@pytest.fixture(params=KINDS_OF_JAEGER)
async def jaeger(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[str, JaegerBackend, str]]:
    async with AsyncExitStack() as stack:
        if request.param == "jaeger-v1.75":
            url = request.getfixturevalue("real_jaeger").url
        else:
            fake = FakeJaeger(version=request.param.removeprefix("test-server-"))
            fake.add(*SCENARIO)
            url = await stack.enter_async_context(served(fake.app))
        backend = JaegerBackend(BackendConfig(name="Jaeger", url=url))
        stack.push_async_callback(backend.close)
        yield request.param, backend, url


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
    assert sorted(await backend.services()) == ["checkout", "frontend", "postgres"]


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


async def test_a_search_is_limited_to_its_depth(jaeger: Any) -> None:
    _, backend, _ = jaeger
    start, end = window()
    spans = await backend.find_traces("checkout", start, end, limit=1)
    assert len({s.trace_id for s in spans}) == 1 and len(spans) == 3


async def test_a_backwards_range_finds_nothing_or_is_refused(jaeger: Any) -> None:
    kind, backend, _ = jaeger
    start, end = window()
    if kind.endswith("newer"):
        with pytest.raises(BackendRefused, match="must be before"):
            await backend.find_traces("checkout", end, start)
    else:  # v1.75 does not check the order: the range holds no trace
        assert await backend.find_traces("checkout", end, start) == []


async def test_the_v1_search_parser_reads_what_jaeger_answers(real_jaeger: Jaeger) -> None:
    """The v1 parser, used against Jaeger before api_v3, on the v1 search v1.75 still serves."""
    backend = JaegerBackend(BackendConfig(name="Jaeger", url=real_jaeger.url))
    try:
        start, end = window()
        spans = search_spans(await backend._v1_body("checkout", start, end, None, 20))
    finally:
        await backend.close()
    assert {s.trace_id for s in spans} == {"a" * 32, "b" * 32}
    failing = next(s for s in spans if s.trace_id == "b" * 32 and s.service == "checkout")
    assert failing.error and failing.parent_span_id == "0000000000000001"
    db = next(s for s in spans if s.trace_id == "a" * 32 and s.service == "postgres")
    assert db.kind == "client" and db.duration_ms == 250


async def test_errors_are_answered_as_each_jaeger_does(jaeger: Any) -> None:
    kind, _, url = jaeger
    snake = not kind.endswith("newer")
    low, high = (
        ("query.start_time_min", "query.start_time_max")
        if snake
        else ("query.startTimeMin", "query.startTimeMax")
    )
    async with httpx.AsyncClient(base_url=url) as http:
        missing = await http.get("/api/v3/traces", params={"query.serviceName": "x"})
        assert missing.status_code == 400
        assert missing.headers["content-type"] == "text/plain; charset=utf-8"
        assert missing.json() == {
            "error": {"httpCode": 400, "message": f"{low} and {high} are required"}
        }
        # camelCase alone is not read by v1.75: the bounds are missing there.
        camel = await http.get(
            "/api/v3/traces",
            params={
                "query.serviceName": "nobody",
                "query.startTimeMin": "2026-01-01T00:00:00Z",
                "query.startTimeMax": "2026-01-02T00:00:00Z",
                "query.searchDepth": "5",
            },
        )
        assert camel.status_code == (400 if snake else 404)
        empty = await http.get(
            "/api/v3/traces",
            params={
                "query.service_name": "nobody",
                "query.start_time_min": "2026-01-01T00:00:00Z",
                "query.start_time_max": "2026-01-02T00:00:00Z",
                "query.num_traces": "5",
            },
        )
        assert empty.status_code == 404 and empty.headers["content-type"].startswith("text/plain")
        assert empty.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
        unknown = await http.get(f"/api/v3/traces/{'c' * 32}")
        assert unknown.status_code == 404
        assert unknown.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
        malformed = await http.get(
            "/api/v3/traces",
            params={
                "query.service_name": "x",
                "query.start_time_min": "yesterday",
                "query.start_time_max": "2026-01-02T00:00:00Z",
                "query.num_traces": "5",
            },
        )
        assert malformed.status_code == 400
        assert malformed.json()["error"]["message"].startswith(
            "malformed parameter query.start_time_min: parsing time"
        )
        if snake:  # no depth: v1.75's memory store refuses the search
            depthless = await http.get(
                "/api/v3/traces",
                params={
                    "query.service_name": "checkout",
                    "query.start_time_min": "2026-01-01T00:00:00Z",
                    "query.start_time_max": "2026-01-02T00:00:00Z",
                },
            )
            assert depthless.status_code == 500
        services = await http.get("/api/v3/services")
        assert services.headers["content-type"] == (
            "text/plain; charset=utf-8" if snake else "application/json; charset=utf-8"
        )
