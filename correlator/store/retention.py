"""Retention: incidents quiet for longer than `database.retention_days` are deleted, with
everything that hangs off them (alerts, notifications, work items, reports, deliveries, kept
inputs, confirmed causes); the kept inputs (incident bundles) go sooner, after
`correlation.keep_inputs.retention_days`, whatever becomes of their incident.

Every replica runs the loop: deletions are idempotent batches, so replicas pruning at once only
share the work.

An incident is quiet when neither it (its last notification) nor its work or its deliveries
changed since the cut-off: one still being analysed or sent is kept. Deletion goes in small
batches, children first, so it needs neither the database's cascades (SQLite enforces them
only with a pragma) nor long transactions that would hold up the intake.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, not_, select
from sqlalchemy.engine import Connection

from correlator.backoff import Backoff
from correlator.errors import StoreUnavailable
from correlator.store import Store
from correlator.store.replay import prune_bundles
from correlator.store.schema import (
    alerts,
    bundles,
    causes,
    deliveries,
    incidents,
    notifications,
    reports,
    work_items,
)

log = logging.getLogger(__name__)
BATCH = 500
INTERVAL_S = 3600.0


def prune_batch(connection: Connection, before: datetime, limit: int = BATCH) -> int:
    """Delete up to `limit` incidents quiet since before `before`; how many were deleted."""
    recent_work = exists().where(
        and_(work_items.c.incident_id == incidents.c.id, work_items.c.updated_at >= before)
    )
    recent_delivery = exists().where(
        and_(deliveries.c.incident_id == incidents.c.id, deliveries.c.updated_at >= before)
    )
    ids = list(
        connection.execute(
            select(incidents.c.id)
            .where(incidents.c.updated_at < before, not_(recent_work), not_(recent_delivery))
            .order_by(incidents.c.id)
            .limit(limit)
        ).scalars()
    )
    if not ids:
        return 0
    for table in (deliveries, reports, bundles, causes, work_items, notifications, alerts):
        connection.execute(delete(table).where(table.c.incident_id.in_(ids)))
    connection.execute(delete(incidents).where(incidents.c.id.in_(ids)))
    return len(ids)


async def prune(store: Store, *, retention_days: float, now: datetime | None = None) -> int:
    """Delete every incident quiet for longer than `retention_days`; how many were deleted."""
    before = (now or store.clock()) - timedelta(days=retention_days)
    deleted = 0
    while True:
        count = await store.write(prune_batch, before)
        deleted += count
        if count < BATCH:
            return deleted
        await asyncio.sleep(0)  # let the intake's writes in between batches


async def prune_inputs(store: Store, *, retention_days: float, now: datetime | None = None) -> int:
    """Delete every incident bundle kept longer than `retention_days` ago; how many."""
    before = (now or store.clock()) - timedelta(days=retention_days)
    # A bundle weighs up to keep_inputs.max_bytes: fewer per transaction than incidents.
    batch = max(1, BATCH // 10)
    deleted = 0
    while True:
        count = await store.write(prune_bundles, before, batch)
        deleted += count
        if count < batch:
            return deleted
        await asyncio.sleep(0)


class Pruner:
    """The background loop: prunes every `interval_s`; a store that refuses is waited out
    with backoff, never ending the loop."""

    def __init__(
        self,
        store: Store,
        *,
        retention_days: float,
        inputs_retention_days: float = 0.0,
        interval_s: float = INTERVAL_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.retention_days = retention_days
        self.inputs_retention_days = inputs_retention_days
        self.interval_s = interval_s
        self.backoff = backoff or Backoff(base_s=1.0, max_s=min(300.0, interval_s))

    async def run(self) -> None:
        backoff = self.backoff
        while True:
            try:
                deleted = inputs = 0
                if self.retention_days > 0:
                    deleted = await prune(self.store, retention_days=self.retention_days)
                if self.inputs_retention_days > 0:
                    inputs = await prune_inputs(
                        self.store, retention_days=self.inputs_retention_days
                    )
            except StoreUnavailable as exc:
                delay = backoff.next_delay_s()
                log.warning(
                    "cannot delete old incidents; trying again in %.0f s",
                    delay,
                    extra={"error": str(exc)},
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if deleted:
                log.info(
                    "deleted incidents past retention",
                    extra={"incidents": deleted, "retention_days": self.retention_days},
                )
            if inputs:
                log.info(
                    "deleted kept inputs past retention",
                    extra={"bundles": inputs, "retention_days": self.inputs_retention_days},
                )
            await asyncio.sleep(self.interval_s)
