"""Incidents past `database.retention_days` are deleted with their alerts, notifications, work,
report and deliveries, on SQLite and PostgreSQL; one still being worked on is kept; the loop
that does it outlives a store that refuses."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from correlator.backoff import Backoff
from correlator.errors import StoreUnavailable
from correlator.models.report import Report
from correlator.settings import load_settings
from correlator.store import Store, outbox
from correlator.store.retention import Pruner, prune
from correlator.store.schema import (
    alerts,
    deliveries,
    incidents,
    notifications,
    reports,
    work_items,
)
from tests.support.deliveries import incident

TABLES = (incidents, alerts, notifications, work_items, reports, deliveries)


async def _rows(store: Store, incident_id: int) -> dict[str, int]:
    def count(connection: Any) -> dict[str, int]:
        out = {}
        for table in TABLES:
            column = table.c.id if table is incidents else table.c.incident_id
            query = select(func.count()).select_from(table).where(column == incident_id)
            out[table.name] = int(connection.execute(query).scalar_one())
        return out

    return await store.read(count)


async def _full_incident(store: Store, group: str) -> int:
    """An incident with every kind of row: alerts, a notification, work, report, delivery."""
    incident_id = await incident(store, group=group)
    now = store.clock()
    report = Report(incident_id=incident_id, generated_at=now, status="complete")
    await store.save_report(incident_id, None, "complete", report)
    await store.write(
        lambda c: outbox.want(
            c, incident_id=incident_id, sink="chat", message={"title": group}, now=now
        )
    )
    return incident_id


async def _age(store: Store, incident_id: int, days: float, tables: Any = TABLES) -> None:
    moment = store.clock() - timedelta(days=days)

    def backdate(connection: Any) -> None:
        for table in tables:
            if "updated_at" in table.c:
                column = table.c.id if table is incidents else table.c.incident_id
                connection.execute(
                    update(table).where(column == incident_id).values(updated_at=moment)
                )

    await store.write(backdate)


async def test_incidents_past_retention_are_deleted_with_everything_they_own(
    store: Store,
) -> None:
    old = await _full_incident(store, '{}:{alertname="Old"}')
    recent = await _full_incident(store, '{}:{alertname="Recent"}')
    await _age(store, old, 31)
    await _age(store, recent, 29)
    assert all(await _rows(store, old))
    assert await prune(store, retention_days=30) == 1
    assert set((await _rows(store, old)).values()) == {0}, await _rows(store, old)
    kept = await _rows(store, recent)
    assert all(kept.values()), kept
    assert await store.get_incident(old) is None
    assert await store.get_incident(recent) is not None


async def test_an_old_incident_whose_delivery_is_still_under_way_is_kept(store: Store) -> None:
    busy = await _full_incident(store, '{}:{alertname="Busy"}')
    await _age(store, busy, 40, tables=(incidents, alerts, work_items, reports))
    assert await prune(store, retention_days=30) == 0
    assert await store.get_incident(busy) is not None


class Refusing:
    """A store that refuses its first writes, as a database restarting would."""

    def __init__(self, store: Store, refusals: int) -> None:
        self._store, self.refusals, self.clock = store, refusals, store.clock

    async def write(self, function: Any, *args: Any) -> Any:
        if self.refusals:
            self.refusals -= 1
            raise StoreUnavailable("connection refused")
        return await self._store.write(function, *args)


async def test_the_retention_loop_waits_out_a_refusing_store(store: Store) -> None:
    old = await _full_incident(store, '{}:{alertname="Old"}')
    await _age(store, old, 31)
    refusing = Refusing(store, refusals=3)
    pruner = Pruner(
        refusing,  # type: ignore[arg-type]
        retention_days=30,
        backoff=Backoff(base_s=0.01, max_s=0.05),
    )
    task = asyncio.create_task(pruner.run())
    try:
        for _ in range(200):
            if await store.get_incident(old) is None:
                break
            await asyncio.sleep(0.05)
        assert await store.get_incident(old) is None
        assert refusing.refusals == 0 and not task.done()  # refused three times, still running
    finally:
        task.cancel()


async def test_serve_deletes_what_is_past_retention(app_client: Any, database_url: str) -> None:
    seeded = await Store.open(load_settings(database={"url": database_url}).database)
    try:
        old = await _full_incident(seeded, '{}:{alertname="Old"}')
        await _age(seeded, old, 8)
    finally:
        await seeded.close()
    client = await app_client(database={"retention_days": 7}, queue={"workers": 0})
    for _ in range(200):
        if (await client.get(f"/api/v1/incidents/{old}")).status == 404:
            break
        await asyncio.sleep(0.05)
    assert (await client.get(f"/api/v1/incidents/{old}")).status == 404
