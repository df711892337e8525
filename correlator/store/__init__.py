"""The store: incidents, alerts, the notification timeline and the work queue.

`Store` is the only door to the database. Database errors are translated here, once, into
`StoreUnavailable`, which callers answer with 503 (intake) or a later retry (workers).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from correlator.errors import StoreUnavailable
from correlator.models.incidents import (
    IncidentDetail,
    IncidentFilter,
    IncidentSummary,
    IntakeResult,
    ReceivedNotification,
)
from correlator.settings import DatabaseSettings, mask_url
from correlator.store import engine as _engine
from correlator.store import queries, work
from correlator.store.intake import record_notification
from correlator.store.work import WorkItem

__all__ = ["Clock", "Store", "WorkItem", "utc_now"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Async access to the database; open with `await Store.open(settings)`."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    async def open(cls, settings: DatabaseSettings, *, clock: Clock = utc_now) -> Store:
        """Connect, migrate the schema, and in embedded mode release orphaned work items."""
        engine = _engine.create_engine(settings)
        store = cls(engine, clock=clock)
        try:
            await _engine.migrate(engine)
            if store.dialect == "sqlite":
                # One process owns a SQLite store, so anything still "running" belonged to a
                # previous run of this process that died: make it claimable at once.
                async with store._write() as connection:
                    released = await work.release_all(connection, now=clock())
                if released:
                    log.info("released unfinished work items", extra={"count": released})
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StoreUnavailable(
                f"cannot open the store at {mask_url(settings.url)}: {_reason(exc)}"
            ) from exc
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as connection:
                yield connection
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(_reason(exc)) from exc

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as connection:
                yield connection
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(_reason(exc)) from exc

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        async with self._read() as connection:
            await connection.execute(text("SELECT 1"))

    async def record_batch(
        self, batch: Sequence[ReceivedNotification]
    ) -> list[IntakeResult | StoreUnavailable]:
        """Store notifications in one transaction (group commit), one savepoint each.

        A notification whose own data the database refuses fails alone; a failure of the
        transaction (lock timeout, lost connection, failed commit) fails them all. Only the
        results returned after the commit are durable.
        """
        results: list[IntakeResult | StoreUnavailable] = []
        async with self._write() as connection:
            for received in batch:
                if len(batch) == 1:
                    results.append(await record_notification(connection, received))
                    continue
                try:
                    async with connection.begin_nested():
                        results.append(await record_notification(connection, received))
                except (IntegrityError, DataError) as exc:
                    log.error("notification refused by the database", extra={"error": _reason(exc)})
                    results.append(StoreUnavailable(_reason(exc)))
        return results

    async def list_incidents(
        self, incident_filter: IncidentFilter
    ) -> tuple[list[IncidentSummary], int | None]:
        async with self._read() as connection:
            return await queries.list_incidents(connection, incident_filter)

    async def get_incident(self, incident_id: int) -> IncidentDetail | None:
        async with self._read() as connection:
            return await queries.get_incident(connection, incident_id)

    async def claim_work(self, *, owner: str, lease_s: float) -> WorkItem | None:
        async with self._write() as connection:
            return await work.claim(connection, owner=owner, lease_s=lease_s, now=self.clock())

    async def heartbeat_work(self, *, item_id: int, owner: str, lease_s: float) -> bool:
        async with self._write() as connection:
            return await work.heartbeat(
                connection, item_id=item_id, owner=owner, lease_s=lease_s, now=self.clock()
            )

    async def complete_work(self, *, item_id: int, owner: str) -> bool:
        async with self._write() as connection:
            return await work.complete(connection, item_id=item_id, owner=owner, now=self.clock())

    async def fail_work(
        self, *, item_id: int, owner: str, error: str, retry_at: datetime | None
    ) -> bool:
        async with self._write() as connection:
            return await work.fail(
                connection,
                item_id=item_id,
                owner=owner,
                error=error,
                now=self.clock(),
                retry_at=retry_at,
            )

    async def queue_depth(self) -> dict[str, int]:
        async with self._read() as connection:
            return await work.depth(connection)


def _reason(exc: BaseException) -> str:
    """A one-line reason without SQL parameters (they may carry alert content)."""
    original = getattr(exc, "orig", None)
    if isinstance(exc, SQLAlchemyError) and isinstance(original, BaseException):
        exc = original
    text_ = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text_}"[:500]
