"""Several replicas on one PostgreSQL: starting together, and storing the same group at the
same moment. Each interleaving is forced with a lock held from another session."""

from __future__ import annotations

import asyncio

import asyncpg

from correlator.models.incidents import IntakeResult
from correlator.settings import load_settings
from correlator.store import Store
from correlator.store.engine import _MIGRATION_LOCK_ID
from tests.store.test_notifications import received
from tests.support.databases import postgres_database, write_lock
from tests.support.payloads import alert, payload


async def _waiting(url: str, n: int) -> None:
    watcher = await asyncpg.connect(url)
    try:
        for _ in range(1000):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"fewer than {n} sessions waiting on a lock")
    finally:
        await watcher.close()


async def test_replicas_migrating_at_once_all_start_on_one_schema() -> None:
    async with postgres_database() as url:
        holder = await asyncpg.connect(url)
        try:
            await holder.execute("BEGIN")
            await holder.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_ID)
            settings = load_settings(database={"url": url}).database
            opening = [asyncio.create_task(Store.open(settings)) for _ in range(3)]
            await _waiting(url, 3)  # all three are about to migrate the same empty database
            await holder.execute("COMMIT")
            stores = await asyncio.gather(*opening)
        finally:
            await holder.close()
        try:
            for store in stores:
                await store.ping()
            versions = await asyncpg.connect(url)
            try:
                assert await versions.fetchval("SELECT count(*) FROM alembic_version") == 1
            finally:
                await versions.close()
        finally:
            for store in stores:
                await store.close()


async def test_the_same_group_stored_at_once_by_two_replicas_is_one_incident() -> None:
    """PostgreSQL only: a SQLite store belongs to one process."""
    group = '{}:{alertname="Flood"}'
    first = received(payload([alert("a")], group_key=group))
    second = received(payload([alert("a"), alert("b")], group_key=group))
    async with postgres_database() as url:
        settings = load_settings(database={"url": url}).database
        one, other = await Store.open(settings), await Store.open(settings)
        try:
            async with write_lock(url):
                storing = [
                    asyncio.create_task(one.record_batch([first])),
                    asyncio.create_task(other.record_batch([second])),
                ]
                await _waiting(url, 2)
            results = [result for batch in await asyncio.gather(*storing) for result in batch]
            assert all(isinstance(r, IntakeResult) for r in results), results
            ids = {r.incident_id for r in results if isinstance(r, IntakeResult)}
            assert len(ids) == 1
            detail = await one.get_incident(ids.pop())
        finally:
            await one.close()
            await other.close()
    assert detail is not None
    assert detail.notification_count == 2
    assert sorted(a.fingerprint for a in detail.alerts) == ["a", "b"]
    assert len(detail.work_items) == 2
