"""The deliverer outlives a store that refuses, and keeps its lease while a send is slow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from correlator.metrics import Metrics
from correlator.settings import NotifySettings, load_settings
from correlator.sinks.base import SinkRejected
from correlator.sinks.webhook import WebhookSink
from correlator.store import Store, outbox
from correlator.store.schema import deliveries
from tests.support.databases import row_locked
from tests.support.deliveries import PausingReceiver, incident, outbox_consumer, want
from tests.support.servers import served


@pytest.fixture
async def quick_store(database_url: str) -> AsyncIterator[Store]:
    """A store whose writes give up on a held lock after 0.3 s."""
    settings = load_settings(database={"url": database_url, "busy_timeout_ms": 300})
    opened = await Store.open(settings.database)
    try:
        yield opened
    finally:
        await opened.close()


async def _until(predicate: Callable[[], object], what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _states(store: Store, incident_id: int) -> list[str]:
    return [row["state"] for row in await store.read(outbox.for_incident, incident_id)]


async def test_the_deliverer_outlives_a_store_that_refuses_to_record_a_send(
    quick_store: Store, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = quick_store
    receiver = PausingReceiver()
    async with served(receiver.app) as url:
        sink = WebhookSink("hook", url=f"{url}/hook")
        settings = NotifySettings(retry_base_s=0.05)
        deliverer = outbox_consumer(store, settings, {"hook": sink}, Metrics())
        running = asyncio.create_task(deliverer.run())
        try:
            first = await incident(store)
            await want(store, first, "firing")
            deliverer.wake.set()
            await receiver.arrived.wait()
            (row_id,) = await store.read(
                lambda c: c.execute(select(deliveries.c.id)).scalars().all()
            )
            with caplog.at_level(logging.WARNING, logger="correlator.runtime.consumer"):
                async with row_locked(database_url, "deliveries", row_id):
                    receiver.answer.set()  # the sink accepts; recording that is refused
                    await _until(
                        lambda: running.done() or "cannot record the delivery" in caplog.text,
                        "a refused write of the delivery",
                    )
                    assert not running.done(), running
            await _until(lambda: receiver.events == ["incident.firing"], "the first send")
            second = await incident(store, group="later")
            await want(store, second, "firing")
            deliverer.wake.set()
            await _until(lambda: len(receiver.events) == 2, "the next incident's send")
            for incident_id in (first, second):
                for _ in range(100):
                    if await _states(store, incident_id) == ["delivered"]:
                        break
                    await asyncio.sleep(0.05)
                assert await _states(store, incident_id) == ["delivered"]
        finally:
            deliverer.stop()
            await asyncio.wait_for(running, 10)
            await sink.close()
    assert receiver.events == ["incident.firing", "incident.firing"]  # one each, none twice


async def test_a_slow_send_keeps_its_lease(store: Store) -> None:
    """A send slower than the lease is renewed while it runs: another replica looking after
    the first lease would have lapsed finds nothing to claim."""
    receiver = PausingReceiver()
    async with served(receiver.app) as url:
        sink = WebhookSink("hook", url=f"{url}/hook")
        deliverer = outbox_consumer(store, NotifySettings(lease_s=0.6), {"hook": sink}, Metrics())
        try:
            incident_id = await incident(store)
            await want(store, incident_id, "firing")
            claimed = await store.write(outbox.claim, deliverer.owner, 0.6, store.clock())
            assert claimed is not None
            first_expiry = await _lease_expiry(store)
            sending = asyncio.create_task(deliverer.process(claimed))
            await receiver.arrived.wait()
            for _ in range(100):  # renewed twice over, while the sink still holds the request
                if await _lease_expiry(store) > first_expiry + timedelta(seconds=0.3):
                    break
                await asyncio.sleep(0.05)
            lapsed = first_expiry + timedelta(milliseconds=10)
            assert await store.write(outbox.claim, "another-replica", 0.6, lapsed) is None
            receiver.answer.set()
            await sending
        finally:
            await sink.close()
    assert receiver.events == ["incident.firing"]
    assert await _states(store, incident_id) == ["delivered"]


async def _lease_expiry(store: Store) -> Any:
    return await store.read(lambda c: c.execute(select(deliveries.c.lease_expires_at)).scalar_one())


class QuotingSink:
    """A sink whose platform refuses, quoting the URL it was given (credentials and all)."""

    name = "hook"
    severities: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()

    async def send(self, message: dict[str, Any], remote: dict[str, Any], remember: Any) -> Any:
        raise SinkRejected("hook: POST https://hook:pw-SECRET@hooks.example/in: 410 gone")

    async def close(self) -> None:
        return None


async def test_a_refusal_quoting_a_url_is_recorded_and_logged_without_its_password(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    deliverer = outbox_consumer(store, NotifySettings(), {"hook": QuotingSink()}, Metrics())
    incident_id = await incident(store)
    await want(store, incident_id, "firing")
    claimed = await store.write(outbox.claim, deliverer.owner, 60.0, store.clock())
    assert claimed is not None
    with caplog.at_level(logging.WARNING):
        await deliverer.process(claimed)
    (row,) = await store.read(outbox.for_incident, incident_id)
    assert row["state"] == "failed"
    assert "https://***@hooks.example/in" in row["last_error"]
    assert "pw-SECRET" not in row["last_error"] + caplog.text + repr(caplog.records[0].__dict__)
