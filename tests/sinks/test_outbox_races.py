"""The outbox under interleavings that replicas and slow sinks produce: each made to happen
deterministically (a row lock held from a second connection, a sink paused mid-request), on
SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from correlator.metrics import Metrics
from correlator.settings import NotifySettings
from correlator.sinks.deliver import Deliverer
from correlator.sinks.webhook import WebhookSink
from correlator.store import Store, outbox
from tests.support.databases import row_locked
from tests.support.deliveries import PausingReceiver, incident, want
from tests.support.servers import served


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


async def test_a_resolve_stored_while_the_firing_post_is_answered_is_sent(
    store: Store, database_url: str
) -> None:
    """The firing POST is in flight; the resolve is stored while the sink answers it and while
    another session holds the delivery's row: whichever write goes first, the resolve is due."""
    incident_id = await incident(store)
    receiver = PausingReceiver()
    writes = CountedWrites(store)
    async with served(receiver.app) as url:
        sink = WebhookSink("hook", url=f"{url}/hook")
        deliverer = Deliverer(store, NotifySettings(), {"hook": sink}, Metrics())
        try:
            await want(store, incident_id, "firing")
            firing = await store.write(outbox.claim, deliverer.owner, 60.0, store.clock())
            assert firing is not None
            sending = asyncio.create_task(deliverer.deliver(firing))
            await receiver.arrived.wait()
            async with row_locked(database_url, "deliveries", firing.id) as blocked:
                resolving = asyncio.create_task(want(store, incident_id, "resolved"))
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
    incident_id = await incident(store)
    writes = CountedWrites(store)
    async with row_locked(database_url, "incidents", incident_id) as blocked:
        first = asyncio.create_task(want(store, incident_id, "firing"))
        await writes.until(1)
        second = asyncio.create_task(want(store, incident_id, "updated"))
        await writes.until(2)
        await blocked(2)
    assert await first and await second
    (row,) = await store.read(outbox.for_incident, incident_id)
    assert row["state"] == "pending"


async def test_giving_up_a_version_keeps_the_one_wanted_meanwhile(store: Store) -> None:
    incident_id = await incident(store)
    await want(store, incident_id, "firing")
    firing = await store.write(outbox.claim, "me", 60.0, store.clock())
    assert firing is not None
    await want(store, incident_id, "resolved")  # while the firing message is being sent
    now = store.clock()
    await store.write(
        lambda c: outbox.failed(
            c, delivery=firing, owner="me", error="410 gone", now=now, retry_at=None
        )
    )
    resolve = await store.write(outbox.claim, "me", 60.0, store.clock())
    assert resolve is not None and resolve.desired["status"] == "resolved"
    assert resolve.attempts == 1
