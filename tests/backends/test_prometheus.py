"""The Prometheus backend against the real Prometheus, and against servers that misbehave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from aiohttp import web
from multidict import CIMultiDict

from correlator.backends.http import (
    BackendConfig,
    BackendGarbage,
    BackendRefused,
    BackendUnavailable,
)
from correlator.backends.prometheus import PrometheusBackend
from correlator.backends.promql import selector
from tests.support.processes import Prometheus, free_port
from tests.support.servers import served

HOSTILE = [
    'quote"inside',
    "back\\slash",
    "new\nline",
    "close}brace",
    'x"} or vector(1) or {v="',
    '|= "error"',
    "ünïcödé",
]


def openmetrics_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    now = int(time.time()) - 30
    lines = ["# TYPE hostile gauge"]
    for index, value in enumerate(HOSTILE):
        for minute in range(60, -1, -1):
            lines.append(
                f'hostile{{v="{openmetrics_label(value)}"}} {index + 1} {now - minute * 60}'
            )
    lines += ["# TYPE requests counter"]
    for minute in range(60, -1, -1):
        lines.append(f'requests_total{{app="api"}} {(60 - minute) * 100} {now - minute * 60}')
    text = "\n".join(lines) + "\n# EOF\n"
    server = Prometheus(tmp_path_factory.mktemp("prom"), rule_files=[], openmetrics=text).start()
    try:
        yield server
    finally:
        server.stop()


async def test_hostile_label_values_select_exactly_their_series(backend: PrometheusBackend) -> None:
    now = datetime.now(UTC)
    for index, value in enumerate(HOSTILE):
        samples = await backend.query(selector("hostile", {"v": value}), now)
        assert [(s.labels["v"], s.value) for s in samples] == [(value, index + 1)], value
    injected = await backend.query(selector("hostile", {"v": '"} or vector(1) or {v="'}), now)
    assert injected == []  # a value nobody has, not the vector(1) it tried to smuggle in


async def test_range_queries_become_time_indexed_frames(backend: PrometheusBackend) -> None:
    end = datetime.now(UTC)
    frame = await backend.query_range(
        'sum by (app) (rate(requests_total{app="api"}[5m]))', end - timedelta(minutes=30), end, 60
    )
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert list(frame.columns) == [(("app", "api"),)]
    assert len(frame) >= 25
    assert frame.iloc[-1, 0] == pytest.approx(100 / 60, rel=0.05)


async def test_series_and_label_values(backend: PrometheusBackend) -> None:
    end = datetime.now(UTC)
    series = await backend.series('{__name__="hostile"}', end - timedelta(hours=1), end)
    assert sorted(s["v"] for s in series) == sorted(HOSTILE)
    assert "api" in await backend.label_values("app")


async def test_a_bad_query_is_refused_with_prometheus_own_words(backend: PrometheusBackend) -> None:
    with pytest.raises(BackendRefused, match="parse error"):
        await backend.query("sum(rate(x[5m]", datetime.now(UTC))


# --- servers that misbehave ---------------------------------------------------------------


def misbehaving(handler: web.RequestHandler) -> web.Application:  # type: ignore[type-arg]
    app = web.Application()
    app.router.add_get("/api/v1/query", handler)
    return app


async def query(url: str, **options: object) -> object:
    config = BackendConfig(name="Prometheus", url=url, **options)  # type: ignore[arg-type]
    client = PrometheusBackend(config)
    try:
        return await client.query("up", datetime.now(UTC))
    finally:
        await client.close()


async def test_unreachable_prometheus_is_unavailable_not_a_crash() -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="unreachable"):
        await query(f"http://127.0.0.1:{free_port()}", retries=1)
    assert time.monotonic() - started < 5


async def test_a_slow_prometheus_times_out() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({})

    async with served(misbehaving(slow)) as url:
        with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.3 s"):
            await query(url, timeout_s=0.3, retries=0)


async def test_server_errors_are_retried_then_reported() -> None:
    calls = []

    async def failing(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=503, text="overloaded")

    async with served(misbehaving(failing)) as url:
        with pytest.raises(BackendUnavailable, match="503: overloaded"):
            await query(url, retries=2)
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"{not json", "application/json", "not JSON"),
        # What Python's json took and JSON is not: a bare NaN, invalid UTF-8, and nesting a
        # recursive parser runs out of stack on.
        (b'{"status":"success","data":NaN}', "application/json", "not JSON"),
        (b'{"status":"succ\xff\xfe"}', "application/json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "not JSON"),
        (
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}',
            "application/json",
            "malformed vector",
        ),
        (
            b'{"status":"success","data":{"resultType":"scalar"}}',
            "application/json",
            "malformed scalar",
        ),
        (b'{"status":"success"}', "application/json", "unexpected document"),
        (b"[]", "application/json", "unexpected document"),
        (b'{"status":"success","data":[1,2]}', "application/json", "a query with data"),
    ],
)
async def test_garbage_answers_are_reported_as_garbage(
    body: bytes, content_type: str, error: str
) -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    async with served(misbehaving(garbage)) as url:
        with pytest.raises(BackendGarbage, match=error):
            await query(url)


async def test_an_oversized_answer_is_cut_off() -> None:
    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 200_000, content_type="application/json")

    async with served(misbehaving(huge)) as url:
        with pytest.raises(BackendGarbage, match="more than 100000 bytes"):
            await query(url, max_body_bytes=100_000)


async def test_credentials_and_tenant_are_sent() -> None:
    seen: CIMultiDict[str] = CIMultiDict()  # header names are case-insensitive

    async def record(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": []}}
        )

    async with served(misbehaving(record)) as url:
        await query(url, bearer_token="s3cret", org_id="team-a", headers={"X-Extra": "1"})
    assert seen["Authorization"] == "Bearer s3cret"
    assert seen["X-Scope-OrgID"] == "team-a" and seen["X-Extra"] == "1"
