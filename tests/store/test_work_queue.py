"""The durable work queue: claims, leases, retries, take-over after a crash."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from correlator.models.incidents import IncidentFilter
from correlator.settings import load_settings
from correlator.store import Store
from correlator.store.work import DONE, FAILED, PENDING
from tests.store.test_notifications import record
from tests.support.databases import sqlite_url
from tests.support.payloads import alert, payload


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        """Set to a little ahead of the real clock that stamps the items enqueued so far."""
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def clocked(database_url: str, clock: Clock) -> AsyncIterator[Store]:
    """A store whose notion of now is `clock`, with one work item queued."""
    store = await Store.open(load_settings(database={"url": database_url}).database, clock=clock)
    try:
        await enqueue(store, 1)
        # Opening a PostgreSQL store migrates it, which can take longer than the clock's lead
        # on a loaded machine: the clock starts from the item it is to claim.
        clock.start()
        yield store
    finally:
        await store.close()


async def enqueue(store: Store, count: int) -> None:
    for i in range(count):
        await record(store, payload([alert("a")], group_key=f"g{i}"))


async def states(store: Store) -> list[str]:
    incidents, _ = await store.list_incidents(IncidentFilter())
    result = []
    for incident in sorted(incidents, key=lambda i: i.id):
        detail = await store.get_incident(incident.id)
        assert detail is not None
        result.extend(w.state for w in detail.work_items)
    return result


async def test_items_are_claimed_oldest_first_and_once(store: Store) -> None:
    await enqueue(store, 3)
    claimed = [await store.claim_work(owner="w", lease_s=30) for _ in range(4)]
    assert [item.id if item else None for item in claimed] == [1, 2, 3, None]
    assert await store.queue_depth() == {"pending": 0, "running": 3}


async def test_completed_item_is_not_claimed_again(store: Store) -> None:
    await enqueue(store, 1)
    item = await store.claim_work(owner="w", lease_s=30)
    assert item is not None
    assert await store.complete_work(item_id=item.id, owner="w")
    assert await store.claim_work(owner="w", lease_s=30) is None
    assert await states(store) == [DONE]


async def test_expired_lease_is_taken_over_and_the_old_owner_loses_it(
    clocked: Store, clock: Clock
) -> None:
    item = await clocked.claim_work(owner="dead", lease_s=10)
    assert item is not None
    clock.advance(5)
    assert await clocked.claim_work(owner="other", lease_s=10) is None
    clock.advance(6)
    taken = await clocked.claim_work(owner="other", lease_s=10)
    assert taken is not None and taken.id == item.id and taken.attempts == 2
    assert not await clocked.complete_work(item_id=item.id, owner="dead")
    assert await clocked.complete_work(item_id=item.id, owner="other")


async def test_heartbeat_keeps_the_lease(clocked: Store, clock: Clock) -> None:
    item = await clocked.claim_work(owner="alive", lease_s=10)
    assert item is not None
    for _ in range(3):
        clock.advance(8)
        assert await clocked.heartbeat_work(item_id=item.id, owner="alive", lease_s=10)
    assert await clocked.claim_work(owner="other", lease_s=10) is None


async def test_failed_item_waits_for_its_retry_time_then_gives_up(
    clocked: Store, clock: Clock
) -> None:
    item = await clocked.claim_work(owner="w", lease_s=10)
    assert item is not None
    await clocked.fail_work(
        item_id=item.id, owner="w", error="boom", retry_at=clock.now + timedelta(seconds=60)
    )
    assert await clocked.claim_work(owner="w", lease_s=10) is None
    clock.advance(61)
    retry = await clocked.claim_work(owner="w", lease_s=10)
    assert retry is not None and retry.attempts == 2
    await clocked.fail_work(item_id=retry.id, owner="w", error="still broken", retry_at=None)
    clock.advance(3600)
    assert await clocked.claim_work(owner="w", lease_s=10) is None
    detail = await clocked.get_incident(1)
    assert detail is not None
    assert [(w.state, w.last_error) for w in detail.work_items] == [(FAILED, "still broken")]


async def test_concurrent_claimers_never_share_an_item(store: Store) -> None:
    await enqueue(store, 20)
    claims = await asyncio.gather(
        *(store.claim_work(owner=f"w{i}", lease_s=30) for i in range(30)), return_exceptions=True
    )
    ids = [c.id for c in claims if c is not None and not isinstance(c, BaseException)]
    assert len(ids) == len(set(ids)) == 20


async def test_item_claimed_by_a_process_that_died_is_processed_after_restart(
    database_url: str,
) -> None:
    settings = load_settings(database={"url": database_url}, queue={"lease_s": 0.5}).database
    store = await Store.open(settings)
    await enqueue(store, 2)
    orphan = await store.claim_work(owner="crashed", lease_s=0.5)
    assert orphan is not None
    await store.close()  # the process is gone without recording anything

    reopened = await Store.open(settings)
    try:
        if reopened.dialect == "postgresql":
            await asyncio.sleep(0.6)  # another replica may still hold it until the lease ends
        claimed = {(await reopened.claim_work(owner="new", lease_s=30)).id for _ in range(2)}  # type: ignore[union-attr]
        assert claimed == {1, 2}
        assert await states(reopened) == ["running", "running"]
        assert PENDING not in await states(reopened)
    finally:
        await reopened.close()


async def test_a_claim_walks_the_due_order_instead_of_sorting_the_backlog(tmp_path: Path) -> None:
    """Each claim reads the first due item of each state off the (state, due_at) index. The
    query it replaced made SQLite collect and sort every claimable item: a storm's backlog
    made each claim, and the intake waiting on the same writer, as slow as the backlog was
    long. (PostgreSQL's plan depends on its statistics; its claims are held to the same
    behaviour by the tests above.)"""
    store = await Store.open(load_settings(database={"url": sqlite_url(tmp_path)}).database)
    try:
        await enqueue(store, 3)
        statements: list[tuple[str, Any]] = []
        engine = store._sqlite
        assert engine is not None

        def seen(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", seen)
        assert await store.claim_work(owner="a", lease_s=30) is not None
        event.remove(engine, "before_cursor_execute", seen)
        lookups = [(s, p) for s, p in statements if s.lstrip().startswith("SELECT")]
        assert len(lookups) == 2  # pending, and running under a lapsed lease
        with sqlite3.connect(tmp_path / "correlator.db") as connection:
            for statement, parameters in lookups:
                plan = [
                    row[3]
                    for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
                ]
                assert any("ix_work_items_state_due_at" in step for step in plan), plan
                assert not any("TEMP B-TREE" in step for step in plan), plan
    finally:
        await store.close()
