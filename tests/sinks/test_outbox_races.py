"""The outbox under interleavings that replicas and slow sinks produce: each made to happen
deterministically (a row lock held from a second connection, a sink paused mid-request), on
SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from correlator.metrics import Metrics
from correlator.models.alerts import WebhookPayload
from correlator.models.incidents import IntakeResult, ReceivedNotification
from correlator.settings import NotifySettings
from correlator.sinks.deliver import Deliverer
from correlator.sinks.webhook import WebhookSink
from correlator.store import Store, outbox
from tests.support.databases import row_locked
from tests.support.payloads import alert, payload
from tests.support.servers import served


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


async def _incident(store: Store) -> int:
    raw = json.dumps(payload([alert("f1")])).encode()
    received = ReceivedNotification(
        payload=WebhookPayload.model_validate_json(raw),
        received_at=datetime.now(UTC),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )
    (result,) = await store.record_batch([received])
    assert isinstance(result, IntakeResult), result
    return result.incident_id


def _message(incident_id: int, status: str) -> dict[str, Any]:
    return {"incident_id": incident_id, "status": status, "title": f"checkout {status}"}


class CountedWrites:
    """Counts the store's write transactions under way, to know when one is queued."""

    def __init__(self, store: Store) -> None:
        self.in_flight = 0
        original = store.write

        async def write(function: Callable[..., Any], *args: Any) -> Any:
            self.in_flight += 1
            try:
                return await original(function, *args)
            finally:
                self.in_flight -= 1

        store.write = write  # type: ignore[method-assign]

    async def until(self, n: int) -> None:
        for _ in range(1000):
            if self.in_flight >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"fewer than {n} writes under way")


async def _want(store: Store, incident_id: int, status: str) -> Awaitable[bool]:
    message, now = _message(incident_id, status), store.clock()
    return await store.write(
        lambda c: outbox.want(c, incident_id=incident_id, sink="hook", message=message, now=now)
    )


async def test_a_resolve_stored_while_the_firing_post_is_answered_is_sent(
    store: Store, database_url: str
) -> None:
    """The firing POST is in flight; the resolve is stored while the sink answers it and while
    another session holds the delivery's row: whichever write goes first, the resolve is due."""
    incident_id = await _incident(store)
    receiver = PausingReceiver()
    writes = CountedWrites(store)
    async with served(receiver.app) as url:
        sink = WebhookSink("hook", url=f"{url}/hook")
        deliverer = Deliverer(store, NotifySettings(), {"hook": sink}, Metrics())
        try:
            await _want(store, incident_id, "firing")
            firing = await store.write(outbox.claim, deliverer.owner, 60.0, store.clock())
            assert firing is not None
            sending = asyncio.create_task(deliverer.deliver(firing))
            await receiver.arrived.wait()
            async with row_locked(database_url, "deliveries", firing.id) as blocked:
                resolving = asyncio.create_task(_want(store, incident_id, "resolved"))
                await writes.until(1)
                receiver.answer.set()  # the sink accepts the firing message now
                await writes.until(2)  # …and the deliverer is recording it
                await blocked(2)
            assert await resolving
            await sending
            resolve = await store.write(outbox.claim, deliverer.owner, 60.0, store.clock())
            assert resolve is not None, await store.read(outbox.for_incident, incident_id)
            assert resolve.desired["status"] == "resolved"
            await deliverer.deliver(resolve)
        finally:
            await sink.close()
    assert receiver.events == ["incident.firing", "incident.resolved"]
    (row,) = await store.read(outbox.for_incident, incident_id)
    assert row["state"] == "delivered"


async def test_two_replicas_recording_the_first_message_at_once_both_succeed(
    store: Store, database_url: str
) -> None:
    """Both find no delivery row and insert one at the same moment (held back by a lock on the
    incident, which the insert's foreign key needs): neither fails, one row holds the later."""
    incident_id = await _incident(store)
    writes = CountedWrites(store)
    async with row_locked(database_url, "incidents", incident_id) as blocked:
        first = asyncio.create_task(_want(store, incident_id, "firing"))
        await writes.until(1)
        second = asyncio.create_task(_want(store, incident_id, "updated"))
        await writes.until(2)
        await blocked(2)
    assert await first and await second
    (row,) = await store.read(outbox.for_incident, incident_id)
    assert row["state"] == "pending"


async def test_giving_up_a_version_keeps_the_one_wanted_meanwhile(store: Store) -> None:
    incident_id = await _incident(store)
    await _want(store, incident_id, "firing")
    firing = await store.write(outbox.claim, "me", 60.0, store.clock())
    assert firing is not None
    await _want(store, incident_id, "resolved")  # while the firing message is being sent
    now = store.clock()
    await store.write(
        lambda c: outbox.failed(
            c, delivery=firing, owner="me", error="410 gone", now=now, retry_at=None
        )
    )
    resolve = await store.write(outbox.claim, "me", 60.0, store.clock())
    assert resolve is not None and resolve.desired["status"] == "resolved"
    assert resolve.attempts == 1
