"""The alerting apps' traces need no call graph: they are asked for while the graph is, so a
first alert's slowest source (often Jaeger's traces) does not wait for the graph first."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from correlator.analysis.windows import incident_windows
from correlator.pipeline import Pipeline
from tests.pipeline.test_pipeline import slow_database
from tests.support.servers import served


async def test_the_alerting_apps_traces_are_asked_for_while_the_graph_is_awaited(
    make_settings: Any,
) -> None:
    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    release = asyncio.Event()
    traces_asked: list[bool] = []  # for each traces request: was the graph still held?

    @web.middleware
    async def hold_the_graph(request: web.Request, handler: Any) -> Any:
        if request.path == "/api/dependencies":
            await release.wait()
        elif request.path.startswith("/api/v3/traces"):
            traces_asked.append(not release.is_set())
        return await handler(request)

    jaeger.app.middlewares.append(hold_the_graph)
    async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
        pipeline = Pipeline(
            make_settings(
                jaeger={"url": jaeger_url, "cache_s": 0}, loki={"url": loki_url, "cache_s": 0}
            )
        )
        try:
            windows = incident_windows(now - timedelta(minutes=3), now)
            gathering = asyncio.ensure_future(pipeline.gather(["api"], ["shop"], windows))
            deadline = time.monotonic() + 5
            while len(traces_asked) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            release.set()  # the graph answers now
            telemetry, fetch, services = await gathering
        finally:
            await pipeline.close()
    assert traces_asked[:2] == [True, True]  # both windows, before the graph had answered
    assert not telemetry.spans.empty and "api" in services
    assert not [m for m in fetch.missing if m["backend"] == "jaeger"], fetch.missing
    assert fetch.timings_ms["traces"] > 0 and fetch.timings_ms["graph"] > 0
