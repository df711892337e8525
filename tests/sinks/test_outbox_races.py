"""The outbox under interleavings that replicas and slow sinks produce: each made to happen
deterministically (a row lock held from a second connection, a sink paused mid-request).

The races run on PostgreSQL, in both orders. SQLite has one writer that runs whole
transactions one after the other, so its variants race nothing: they say so in their names
and check the outcome of the one order SQLite can produce."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from correlator.metrics import Metrics
from correlator.settings import NotifySettings, load_settings
from correlator.sinks.webhook import WebhookSink
from correlator.store import Store, outbox
from correlator.store.schema import deliveries
from tests.support.databases import postgres_database, row_locked, sqlite_url
from tests.support.deliveries import PausingReceiver, incident, message, outbox_consumer, want
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


async def _row(store: Store, incident_id: int) -> dict[str, Any]:
    """The incident's one delivery row, with the message it holds."""
    columns = (
        deliveries.c.state,
        deliveries.c.desired,
        deliveries.c.desired_sha,
        deliveries.c.delivered_sha,
    )
    rows = await store.read(
        lambda c: c.execute(select(*columns).where(deliveries.c.incident_id == incident_id)).all()
    )
    (row,) = rows
    return dict(row._asdict())


RESOLVE_FIRST = "the resolve's write takes the row first"
RECORD_FIRST = "the deliverer's record of the firing send takes the row first"


@pytest.mark.postgres
@pytest.mark.parametrize("order", [RESOLVE_FIRST, RECORD_FIRST])
async def test_a_resolve_racing_the_record_of_the_firing_send_is_due_in_either_order(
    order: str,
) -> None:
    """The firing POST is in flight; the resolve is stored while the deliverer records the
    answer. A row lock held from a second connection queues both writes in the order the test
    chooses (PostgreSQL grants a row's waiters in turn); released, each order must leave the
    resolve due, with the firing message recorded as the one delivered."""
    async with postgres_database() as url:
        store = await Store.open(load_settings(database={"url": url}).database)
        try:
            await _resolve_during_the_firing_send(store, url, order)
        finally:
            await store.close()


@pytest.mark.parametrize("order", [RESOLVE_FIRST, RECORD_FIRST])
async def test_a_resolve_and_the_record_of_the_firing_send_one_after_the_other_on_sqlite(
    tmp_path: Path, order: str
) -> None:
    """SQLite, without a race: its one writer runs whole transactions one after the other, so
    the resolve's write and the record of the firing send never interleave; held behind the
    database's write lock, they run in the order queued. This checks each order's outcome
    when the writes are sequential; the interleavings are checked on PostgreSQL above."""
    url = sqlite_url(tmp_path)
    store = await Store.open(load_settings(database={"url": url}).database)
    try:
        await _resolve_during_the_firing_send(store, url, order)
    finally:
        await store.close()


async def _resolve_during_the_firing_send(store: Store, database_url: str, order: str) -> None:
    incident_id = await incident(store)
    receiver = PausingReceiver()
    writes = CountedWrites(store)
    firing_message, resolved_message = (
        message(incident_id, "firing"),
        message(incident_id, "resolved"),
    )
    async with served(receiver.app) as url:
        sink = WebhookSink("hook", url=f"{url}/hook")
        deliverer = outbox_consumer(store, NotifySettings(), {"hook": sink}, Metrics())
        try:
            await want(store, incident_id, "firing")
            firing = await store.write(outbox.claim, deliverer.owner, 60.0, store.clock())
            assert firing is not None
            sending = asyncio.create_task(deliverer.process(firing))
            await receiver.arrived.wait()
            async with row_locked(database_url, "deliveries", firing.id) as blocked:
                if order == RESOLVE_FIRST:
                    resolving = asyncio.create_task(want(store, incident_id, "resolved"))
                    await writes.until(1)
                    await blocked(1)
                    receiver.answer.set()  # the sink accepts the firing message now
                    await writes.until(2)  # …and the deliverer is recording it
                else:
                    receiver.answer.set()
                    await writes.until(1)  # the deliverer is recording the firing send
                    await blocked(1)
                    resolving = asyncio.create_task(want(store, incident_id, "resolved"))
                    await writes.until(2)
                await blocked(2)
            assert await resolving
            await sending
            row = await _row(store, incident_id)
            assert row == {
                "state": "pending",
                "desired": resolved_message,
                "desired_sha": outbox.content_sha(resolved_message),
                "delivered_sha": outbox.content_sha(firing_message),
            }, order
            resolve = await store.write(outbox.claim, deliverer.owner, 60.0, store.clock())
            assert resolve is not None, await store.read(outbox.for_incident, incident_id)
            assert resolve.desired == resolved_message
            await deliverer.process(resolve)
        finally:
            await sink.close()
    assert receiver.events == ["incident.firing", "incident.resolved"]
    assert await _row(store, incident_id) == {
        "state": "delivered",
        "desired": resolved_message,
        "desired_sha": outbox.content_sha(resolved_message),
        "delivered_sha": outbox.content_sha(resolved_message),
    }


@pytest.mark.postgres
@pytest.mark.parametrize("first_status", ["firing", "updated"])
async def test_two_replicas_inserting_the_first_message_at_once_keep_the_later_in_either_order(
    first_status: str,
) -> None:
    """Both find no delivery row and insert one at the same moment, held back by a lock on the
    incident (which the insert's foreign key needs); the test queues them in either order.
    Neither fails, and the one row holds the message of the one that wrote last."""
    second_status = "updated" if first_status == "firing" else "firing"
    async with postgres_database() as url:
        store = await Store.open(load_settings(database={"url": url}).database)
        try:
            incident_id = await incident(store)
            writes = CountedWrites(store)
            async with row_locked(url, "incidents", incident_id) as blocked:
                first = asyncio.create_task(want(store, incident_id, first_status))
                await writes.until(1)
                await blocked(1)
                second = asyncio.create_task(want(store, incident_id, second_status))
                await writes.until(2)
                await blocked(2)
            assert await first and await second
            later = message(incident_id, second_status)
            assert await _row(store, incident_id) == {
                "state": "pending",
                "desired": later,
                "desired_sha": outbox.content_sha(later),
                "delivered_sha": None,
            }
        finally:
            await store.close()


async def test_two_first_messages_written_one_after_the_other_keep_the_later_on_sqlite(
    tmp_path: Path,
) -> None:
    """SQLite, without a race: with one writer the second insert never meets the first one
    uncommitted, so this checks only that the later of two first messages queued behind the
    write lock is the one kept (the insert-or-replace path); the race is checked on PostgreSQL."""
    url = sqlite_url(tmp_path)
    store = await Store.open(load_settings(database={"url": url}).database)
    try:
        incident_id = await incident(store)
        writes = CountedWrites(store)
        async with row_locked(url, "incidents", incident_id):
            first = asyncio.create_task(want(store, incident_id, "firing"))
            await writes.until(1)
            second = asyncio.create_task(want(store, incident_id, "updated"))
            await writes.until(2)
        assert await first and await second
        later = message(incident_id, "updated")
        assert await _row(store, incident_id) == {
            "state": "pending",
            "desired": later,
            "desired_sha": outbox.content_sha(later),
            "delivered_sha": None,
        }
    finally:
        await store.close()


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
