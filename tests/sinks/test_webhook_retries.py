"""The generic webhook through the deliverer: a retry repeats its delivery id, so a receiver
can deduplicate; a 403, 404 or 410 is given up at once and recorded with the incident."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from correlator.metrics import Metrics
from correlator.settings import NotifySettings
from correlator.sinks.webhook import WebhookSink
from correlator.store import Store, outbox
from tests.support.deliveries import Deliverer, incident, outbox_consumer, want
from tests.support.servers import served


class ScriptedReceiver:
    """Answers each POST with the next status of its script, recording the headers."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.deliveries: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)

    async def hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.deliveries.append(request.headers["X-Correlator-Delivery"])
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)


async def _deliver_until_settled(store: Store, deliverer: Deliverer, incident_id: int) -> Any:
    for _ in range(10):
        # Claimed as if the backoff had passed: the retry delay is not what is tested here.
        later = store.clock() + timedelta(hours=1)
        claimed = await store.write(outbox.claim, deliverer.owner, 60.0, later)
        if claimed is None:
            break
        await deliverer.process(claimed)
    (row,) = await store.read(outbox.for_incident, incident_id)
    return row


async def test_a_retried_post_carries_the_same_delivery_id(store: Store) -> None:
    receiver = ScriptedReceiver(503, 502)
    async with served(receiver.app) as url:
        sink = WebhookSink("hook", url=f"{url}/hook")
        deliverer = outbox_consumer(store, NotifySettings(), {"hook": sink}, Metrics())
        try:
            incident_id = await incident(store)
            await want(store, incident_id, "firing")
            row = await _deliver_until_settled(store, deliverer, incident_id)
        finally:
            await sink.close()
    assert row["state"] == "delivered"
    assert len(receiver.deliveries) == 3 and len(set(receiver.deliveries)) == 1


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_a_refusal_for_good_is_given_up_and_recorded(store: Store, status: int) -> None:
    receiver = ScriptedReceiver(status)
    metrics = Metrics()
    async with served(receiver.app) as url:
        sink = WebhookSink("hook", url=f"{url}/hook")
        deliverer = outbox_consumer(store, NotifySettings(), {"hook": sink}, metrics)
        try:
            incident_id = await incident(store)
            await want(store, incident_id, "firing")
            row = await _deliver_until_settled(store, deliverer, incident_id)
        finally:
            await sink.close()
    assert row["state"] == "failed" and row["attempts"] == 1
    assert str(status) in row["last_error"]
    assert len(receiver.deliveries) == 1
    given_up = metrics.registry.get_sample_value(
        "correlator_sink_deliveries_total", {"sink": "hook", "outcome": "given_up"}
    )
    assert given_up == 1.0
