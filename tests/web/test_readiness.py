"""`/readyz` tells the orchestrator the truth: a dead background loop or an unreachable store
is 503, and `correlator serve` exits non-zero when a loop dies so that it is restarted."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from correlator.cli import _run_server
from correlator.metrics import Metrics
from correlator.settings import Settings
from correlator.store import Store, WorkItem
from correlator.web.app import create_app
from tests.support.databases import drop_postgres_database
from tests.support.deliveries import incident
from tests.support.payloads import alert, payload


class LoopBug(BaseException):
    """What no loop catches: stands for a bug that ends a loop."""


async def dies(item: WorkItem) -> None:
    raise LoopBug(f"handler bug on work item {item.id}")


async def _ready(client: TestClient[Any, Any]) -> tuple[int, dict[str, Any]]:
    answer = await client.get("/readyz")
    return answer.status, await answer.json()


async def test_a_dead_worker_loop_makes_the_service_unready(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings(), metrics=Metrics(), handler=dies)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    assert (await _ready(client))[0] == 200
    body = payload([alert("f1")])
    assert (await client.post("/api/v1/alerts", json=body)).status == 200
    for _ in range(200):
        status, problem = await _ready(client)
        if status == 503:
            break
        await asyncio.sleep(0.05)
    assert status == 503, problem
    assert re.search(r"worker-\d+", problem["detail"]) and "LoopBug" in problem["detail"]


async def test_serve_stops_when_a_loop_dies(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(server={"port": 0})
    store = await Store.open(settings.database)
    try:
        await incident(store)  # work for the worker that will die on it
    finally:
        await store.close()
    died = await asyncio.wait_for(_run_server(settings, handler=dies), 30)
    assert len(died) == 1 and re.match(r"worker-\d+: LoopBug", died[0]), died


async def test_an_unreachable_store_makes_the_service_unready(
    app_client: Callable[..., Any], database_url: str
) -> None:
    client = await app_client()
    assert (await _ready(client))[0] == 200
    if database_url.startswith("sqlite"):
        return  # a SQLite file cannot become unreachable while its process holds it open
    await drop_postgres_database(database_url)
    status, problem = await _ready(client)
    assert status == 503 and "store" in problem["detail"], problem
