"""The composition root's start and stop: consumers stop before the background loops unwind,
and a start-up that fails half-way stops what had started without calling it a death."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import correlator.runtime.service as service
from correlator.models.alerts import WebhookPayload
from correlator.models.incidents import ReceivedNotification
from correlator.settings import load_settings
from correlator.store import Store, WorkItem
from correlator.web.state import LOOPS
from tests.support.payloads import alert, payload


async def _new_item(store: Store, group: str) -> None:
    raw = json.dumps(payload([alert("f1")], group_key=group)).encode()
    received = ReceivedNotification(
        payload=WebhookPayload.model_validate_json(raw),
        received_at=datetime.now(UTC),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )
    await store.record_batch([received])


async def test_consumers_claim_nothing_once_shutdown_began(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background loop slow to end (the provisioner giving its lease back to a slow API
    server) while another replica stores a work item: no consumer of this one starts it."""
    started_during_shutdown: list[int] = []
    shutting_down = asyncio.Event()

    async def handler(item: WorkItem) -> None:
        if shutting_down.is_set():
            started_during_shutdown.append(item.incident_id)

    class SlowToEnd:
        def __init__(self, store: Store, **_: Any) -> None:
            self.store = store

        async def run(self) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                shutting_down.set()
                await _new_item(self.store, '{}:{alertname="Late"}')
                await asyncio.sleep(1.0)  # the consumers poll every 0.2 s meanwhile
                raise

    monkeypatch.setattr(service, "Pruner", SlowToEnd)  # the one background loop it starts
    settings = load_settings(
        database={"url": f"sqlite:///{tmp_path}/c.db", "retention_days": 7},
        queue={"analysis_pool": "thread", "poll_interval_s": 0.2},
    )
    runner = web.AppRunner(service.create_app(settings, handler=handler))
    await runner.setup()
    await asyncio.sleep(0.3)
    await runner.cleanup()
    assert shutting_down.is_set()
    assert started_during_shutdown == [], "a consumer started new work after shutdown began"


async def test_a_start_up_failing_half_way_stops_what_started_and_no_loop_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_intake(self: Any, app: web.Application) -> Any:
        raise RuntimeError("intake cannot start")
        yield

    monkeypatch.setattr(service._Parts, "intake", failing_intake)
    settings = load_settings(
        database={"url": f"sqlite:///{tmp_path}/c.db"}, queue={"analysis_pool": "thread"}
    )
    app = service.create_app(settings)
    runner = web.AppRunner(app)
    with pytest.raises(RuntimeError, match="intake cannot start"):
        await runner.setup()
    loops = app[LOOPS]
    assert loops.tasks and not all(task.done() for task in loops.tasks)  # consumers started
    await runner.cleanup()
    assert all(task.done() for task in loops.tasks)
    assert loops.died == [] and not loops.fatal.is_set()
