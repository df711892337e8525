"""An incident and its outbox rows, and a webhook receiver the test answers when it likes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from correlator.metrics import Metrics
from correlator.models.alerts import WebhookPayload
from correlator.models.incidents import IntakeResult, ReceivedNotification
from correlator.runtime.consumer import Consumer
from correlator.runtime.queues import Outbox
from correlator.settings import NotifySettings
from correlator.sinks.base import Sink
from correlator.store import Store, outbox
from tests.support.payloads import alert, payload

Deliverer = Consumer[outbox.Delivery, dict[str, Any]]


def outbox_consumer(
    store: Store, settings: NotifySettings, sinks: dict[str, Sink], metrics: Metrics
) -> Deliverer:
    """One consumer of the outbox, as `correlator serve` runs them."""
    return Consumer(Outbox(store, settings, sinks, metrics))


class PausingReceiver:
    """A webhook endpoint that holds each request until the test lets it answer 200."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.arrived = asyncio.Event()
        self.answer = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)

    async def hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrived.set()
        await self.answer.wait()
        self.events.append(request.headers["X-Correlator-Event"])
        return web.Response(status=204)


async def incident(store: Store, *, group: str = '{}:{alertname="HighCPU"}') -> int:
    """A stored incident (one firing alert); returns its id."""
    raw = json.dumps(payload([alert("f1")], group_key=group)).encode()
    received = ReceivedNotification(
        payload=WebhookPayload.model_validate_json(raw),
        received_at=datetime.now(UTC),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )
    (result,) = await store.record_batch([received])
    assert isinstance(result, IntakeResult), result
    return result.incident_id


def message(incident_id: int, status: str) -> dict[str, Any]:
    return {"incident_id": incident_id, "status": status, "title": f"checkout {status}"}


async def want(store: Store, incident_id: int, status: str) -> bool:
    """Record the message the webhook sink `hook` should show now."""
    wanted, now = message(incident_id, status), store.clock()
    return await store.write(
        lambda c: outbox.want(c, incident_id=incident_id, sink="hook", message=wanted, now=now)
    )
