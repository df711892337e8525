"""`/readyz` tells the orchestrator the truth: a dead background loop is 503, and `correlator
serve` exits non-zero when a loop dies so that it is restarted; an unreachable store keeps the
service ready (its 503s are retried) and shows in the body and the correlator_store_up gauge."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiohttp.test_utils import TestClient

from correlator.cli import _run_server
from correlator.metrics import Metrics
from correlator.models.incidents import IncidentFilter
from correlator.runtime.service import create_app
from correlator.settings import Settings, load_settings
from correlator.store import Store, WorkItem
from correlator.web.state import STORE
from tests.support.databases import drop_postgres_database
from tests.support.deliveries import incident
from tests.support.payloads import alert, payload
from tests.support.processes import Service, wait_until


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
    assert re.search(r"worker-\d+", problem["detail"]), problem
    # Unauthenticated: the loop's name only, never the exception's text (it may hold secrets).
    assert "LoopBug" not in problem["detail"], problem


async def test_serve_stops_when_a_loop_dies(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(server={"port": 0})
    store = await Store.open(settings.database)
    try:
        await incident(store)  # work for the worker that will die on it
    finally:
        await store.close()
    died = await asyncio.wait_for(_run_server(settings, handler=dies), 30)
    assert len(died) == 1 and re.match(r"worker-\d+: LoopBug", died[0]), died


async def test_a_store_that_does_not_answer_keeps_the_service_ready_and_says_so(
    app_client: Callable[..., Any], database_url: str
) -> None:
    """PostgreSQL: the database is dropped under the service. SQLite: a file cannot be cut
    off from the process that holds it open, so the store itself stops answering (closed, as
    at shutdown). Either way /readyz stays 200 (every replica shares the store: unready, all
    would leave the Service and Alertmanager would meet connection refused instead of a 503 it
    retries), says the store is unavailable, names nothing of the database, and the
    correlator_store_up gauge is 0."""
    client = await app_client()
    assert await _ready(client) == (200, {"status": "ready", "store": "ok"})
    assert "correlator_store_up 1.0" in await (await client.get("/metrics")).text()
    if database_url.startswith("sqlite"):
        await client.server.app[STORE].close()
    else:
        await drop_postgres_database(database_url)
    status, body = await _ready(client)
    assert (status, body) == (200, {"status": "ready", "store": "unavailable"})
    assert "correlator_store_up 0.0" in await (await client.get("/metrics")).text()
    # An unauthenticated route tells nothing of the database: no host, user, name, file or
    # error.
    answer = json.dumps(body)
    name = database_url.rsplit("/", 1)[-1]
    for detail in ("127.0.0.1", "postgres", "sqlite", "closed", name, "database"):
        assert detail not in answer, (detail, answer)


async def test_a_store_that_hangs_is_reported_unavailable_within_the_probe_timeout(
    app_client: Callable[..., Any], monkeypatch: Any
) -> None:
    """A store that never answers (a partition, a full pool) must not fail the kubelet's
    probe, which would make the replica unready after all: /readyz gives up on it first."""
    client = await app_client()
    store = client.server.app[STORE]

    async def hangs() -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr(store, "ping", hangs)
    started = time.monotonic()
    assert await _ready(client) == (200, {"status": "ready", "store": "unavailable"})
    assert time.monotonic() - started < 3  # the chart's readiness probe times out at 3 s


DRAIN_S = 8.0


async def test_after_sigterm_the_service_drains_unready_then_stops(tmp_path: Path) -> None:
    """With server.drain_s, SIGTERM makes /readyz 503 while the service still answers (and
    stores) for the drain, so a load balancer stops sending before it stops. Each wait is
    bounded by the drain: the 503, /healthz and the stored POST must all come within it."""
    url = f"sqlite:///{tmp_path / 'correlator.db'}"
    service = Service(
        tmp_path, env={"CORRELATOR_DATABASE_URL": url, "CORRELATOR_SERVER_DRAIN_S": str(DRAIN_S)}
    ).start()
    assert service.process is not None
    signalled = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    ready = wait_until(
        lambda: (r := httpx.get(f"{service.url}/readyz", timeout=2)).status_code == 503 and r,
        timeout_s=DRAIN_S,
        what="/readyz 503 after SIGTERM",
    )
    assert "shutting down" in ready.json()["detail"]
    assert httpx.get(f"{service.url}/healthz", timeout=2).status_code == 200
    body = payload([alert("late")], group_key='{}:{alertname="DuringDrain"}')
    stored = httpx.post(f"{service.url}/api/v1/alerts", json=body, timeout=5)
    assert stored.status_code == 200, stored.text  # a sender that has not noticed loses nothing
    assert await asyncio.to_thread(service.process.wait, DRAIN_S + 30) == 0
    assert time.monotonic() - signalled >= DRAIN_S - 0.1  # it served out the drain
    store = await Store.open(load_settings(database={"url": url}).database)
    try:
        found, _ = await store.list_incidents(IncidentFilter())
        assert [i.id for i in found] == [stored.json()["incident_id"]]  # durable
    finally:
        await store.close()
