"""The store: incidents, alerts, the notification timeline and the work queue.

`Store` is the only door to the database. The SQL lives in plain functions that take a
`Connection` (recording.py, queries.py, work.py); the Store runs each as one whole transaction:
on PostgreSQL through asyncpg, on SQLite in a thread of its own (one writer thread, as SQLite
has one writer, and a few readers, as WAL lets readers run beside it). Database errors are
translated here, once, into `StoreUnavailable`, which callers answer with 503 (intake) or a
later retry (workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from correlator.analysis.scope import NAMESPACE_LABELS
from correlator.errors import StoreRefused, StoreUnavailable
from correlator.models.incidents import (
    IncidentAlerts,
    IncidentDetail,
    IncidentFilter,
    IncidentSummary,
    IntakeResult,
    ReceivedNotification,
)
from correlator.models.report import Report
from correlator.priority import ServingFirst
from correlator.settings import DatabaseSettings, database_scheme, mask_url
from correlator.store import engine as _engine
from correlator.store import queries, recording, work
from correlator.store.recording import DEFAULT_POLICY, record_notifications
from correlator.store.work import QueuePolicy, WorkItem
from correlator.store.writer import PriorityWriter

__all__ = ["Clock", "Store", "WorkItem", "utc_now"]

RECORDED_KEYS = 10_000  # incident keys remembered (`Store._recorded`): about 1 MiB

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Result = TypeVar("Result")
_DATABASE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Async access to the database; open with `await Store.open(settings)`."""

    def __init__(
        self,
        *,
        sqlite: Engine | None = None,
        postgres: AsyncEngine | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if (sqlite is None) == (postgres is None):
            raise ValueError("a Store has exactly one engine")
        self._sqlite = sqlite
        self._postgres = postgres
        # Statements that commit on their own: reads, and the intake's one-statement writes.
        self._autocommit = _engine.autocommit_of(postgres) if postgres is not None else None
        # Incident keys this store recorded lately: their next notification skips the
        # one-statement write, which would only find that the incident exists.
        self._recorded: OrderedDict[str, None] = OrderedDict()
        self.clock = clock
        # Background work's store calls wait their turn behind notifications being received
        # (correlator/priority.py); set by the composition root.
        self.serving_first: ServingFirst | None = None
        self._writer: PriorityWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        if sqlite is not None:
            self._writer = PriorityWriter("correlator-sqlite-writer")
            self._readers = ThreadPoolExecutor(
                _engine.SQLITE_READERS, thread_name_prefix="correlator-sqlite-reader"
            )

    @property
    def dialect(self) -> str:
        return "sqlite" if self._sqlite is not None else "postgresql"

    @classmethod
    async def open(cls, settings: DatabaseSettings, *, clock: Clock = utc_now) -> Store:
        """Connect, migrate the schema, and in embedded mode release orphaned work items."""
        if database_scheme(settings.url) == "sqlite":
            store = cls(sqlite=_engine.create_sqlite_engine(settings), clock=clock)
        else:
            store = cls(postgres=_engine.create_postgres_engine(settings), clock=clock)
        try:
            await store.write(_engine.upgrade)
            if store.dialect == "sqlite":
                # One process owns a SQLite store, so anything still "running" belonged to a
                # previous run of this process that died: make it claimable at once.
                now = clock()
                released = await store.write(lambda c: work.release_all(c, now=now))
                if released:
                    log.info("released unfinished work items", extra={"count": released})
        except StoreUnavailable as exc:
            await store.close()
            raise StoreUnavailable(
                f"cannot open the store at {mask_url(settings.url)}: {exc}"
            ) from exc
        return store

    async def close(self, *, timeout_s: float = 10.0) -> None:
        """Finish the transactions under way, then release every connection and thread;
        give up waiting after `timeout_s` (a connection cut mid-operation can hang)."""
        try:
            await asyncio.wait_for(self._close(), timeout_s)
        except TimeoutError:
            log.warning("the store did not close within %.0f s; leaving it to the exit", timeout_s)

    async def _close(self) -> None:
        if self._sqlite is not None:
            for executor in (self._writer, self._readers):
                if executor is not None:
                    await asyncio.get_running_loop().run_in_executor(
                        None, functools.partial(executor.shutdown, wait=True)
                    )
            self._sqlite.dispose()
        if self._postgres is not None:
            await self._postgres.dispose()

    async def write(self, function: Callable[..., Result], *args: Any) -> Result:
        """Run `function(connection, *args)` as one write transaction, committed on return."""
        try:
            return await self._run(function, args, write=True)
        except (IntegrityError, DataError) as exc:
            raise StoreUnavailable(_reason(exc)) from exc

    async def read(self, function: Callable[..., Result], *args: Any) -> Result:
        """Run `function(connection, *args)` in a read transaction."""
        return await self._run(function, args, write=False)

    async def _run(
        self,
        function: Callable[..., Result],
        args: tuple[Any, ...],
        *,
        write: bool,
        urgent: bool = False,
    ) -> Result:
        """Run one transaction (see `_transaction`); background work's calls take their turn
        behind notifications being received (`correlator/priority.py`)."""
        if urgent or self.serving_first is None:
            return await self._transaction(function, args, write=write, urgent=urgent)
        async with self.serving_first.turn():
            return await self._transaction(function, args, write=write, urgent=urgent)

    async def _transaction(
        self,
        function: Callable[..., Result],
        args: tuple[Any, ...],
        *,
        write: bool,
        urgent: bool = False,
        one_statement: bool = False,
    ) -> Result:
        """Run one transaction; database errors become StoreUnavailable, except the
        database's refusals of data (IntegrityError, DataError), which callers may isolate.
        An `urgent` write (the intake's) goes before the other writes waiting on SQLite. A
        PostgreSQL write of `one_statement` runs without BEGIN and COMMIT (it is its own
        transaction)."""
        try:
            if self._sqlite is not None:
                if write and urgent:
                    assert self._writer is not None
                    return await asyncio.wrap_future(
                        self._writer.submit_urgent(_in_transaction, self._sqlite, function, args)
                    )
                executor = self._writer if write else self._readers
                return await asyncio.get_running_loop().run_in_executor(
                    executor, _in_transaction, self._sqlite, function, args
                )
            assert self._postgres is not None
            if write and not one_statement:
                async with self._postgres.begin() as connection:
                    return await connection.run_sync(function, *args)
            assert self._autocommit is not None
            async with self._autocommit.connect() as connection:
                return await connection.run_sync(function, *args)
        except (IntegrityError, DataError):
            raise
        except DBAPIError as exc:
            if _refuses_data(exc):  # a driver that does not say DataError (asyncpg)
                raise DataError(exc.statement, exc.params, exc.orig or exc) from exc
            raise StoreUnavailable(_reason(exc)) from exc
        except _DATABASE_ERRORS as exc:
            raise StoreUnavailable(_reason(exc)) from exc
        except RuntimeError as exc:  # an executor that was shut down: the service is stopping
            raise StoreUnavailable(f"the store is closed: {exc}") from exc

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        await self.read(_select_one)

    async def record_batch(
        self,
        batch: Sequence[ReceivedNotification],
        *,
        namespaces: Sequence[str] = NAMESPACE_LABELS,
        policy: QueuePolicy = DEFAULT_POLICY,
    ) -> list[IntakeResult | StoreUnavailable | StoreRefused]:
        """Store notifications in one transaction (group commit).

        On PostgreSQL a batch of new groups is first written in one statement that commits on
        its own (`recording.record_created`: one round trip instead of BEGIN, statement and
        COMMIT); the notifications of incidents that exist go on in a transaction.

        If the database refuses the data of one of them, the batch is written again one
        notification per transaction, so that only the refused one fails (StoreRefused: the
        same data would be refused again). A failure of the transaction itself (lock
        timeout, lost connection, failed commit) fails all those it held. Only results
        returned after the commit are durable.
        """
        results: list[IntakeResult | StoreUnavailable | StoreRefused | None]
        results = [None] * len(batch)
        keys = [received.payload.incident_key for received in batch]
        if (
            self._postgres is not None
            and not any(key in self._recorded for key in keys)
            and recording.one_statement(batch, keys)
        ):
            # One statement: if the database refuses a value, nothing was written, and the
            # usual path finds which notification it was.
            with contextlib.suppress(IntegrityError, DataError):
                results = list(
                    await self._transaction(
                        recording.record_created,
                        (batch, namespaces, policy),
                        write=True,
                        one_statement=True,
                    )
                )
        rest = [i for i, result in enumerate(results) if result is None]
        if rest:
            try:
                usual = await self._record_usual([batch[i] for i in rest], namespaces, policy)
            except StoreUnavailable as exc:
                if len(rest) == len(batch):
                    raise
                usual = [exc] * len(rest)  # those written in one statement stay written
            for i, outcome in zip(rest, usual, strict=True):
                results[i] = outcome
        if self._postgres is not None:
            self._remember(
                [k for k, r in zip(keys, results, strict=True) if isinstance(r, IntakeResult)]
            )
        return [result for result in results if result is not None]

    def _remember(self, keys: list[str]) -> None:
        """Note incident keys just recorded, forgetting the oldest past RECORDED_KEYS."""
        for key in keys:
            self._recorded[key] = None
            self._recorded.move_to_end(key)
        while len(self._recorded) > RECORDED_KEYS:
            self._recorded.popitem(last=False)

    async def _record_usual(
        self,
        batch: Sequence[ReceivedNotification],
        namespaces: Sequence[str],
        policy: QueuePolicy,
    ) -> list[IntakeResult | StoreUnavailable | StoreRefused]:
        """`record_batch` in one transaction, and one by one if the database refuses data."""
        try:
            return list(
                await self._run(
                    record_notifications, (batch, namespaces, policy), write=True, urgent=True
                )
            )
        except (IntegrityError, DataError) as exc:
            if len(batch) == 1:
                log.error("notification refused by the database", extra={"error": _reason(exc)})
                return [StoreRefused(_reason(exc))]
        results: list[IntakeResult | StoreUnavailable | StoreRefused] = []
        for received in batch:
            results.extend(await self._record_usual([received], namespaces, policy))
        return results

    async def list_incidents(
        self, incident_filter: IncidentFilter
    ) -> tuple[list[IncidentSummary], int | None]:
        return await self.read(queries.list_incidents, incident_filter)

    async def get_incident(self, incident_id: int) -> IncidentDetail | None:
        return await self.read(queries.get_incident, incident_id)

    async def incident_alerts(self, incident_id: int) -> IncidentAlerts | None:
        """The incident with its alerts only: what an analysis reads (two queries, not six)."""
        return await self.read(queries.incident_alerts, incident_id)

    async def save_report(
        self,
        incident_id: int,
        notification_id: int | None,
        status: str,
        report: Report,
        *,
        question: str | None = None,
        analysed_at: datetime | None = None,
    ) -> IncidentAlerts | None:
        """Store the incident's report unless one built from a newer notification is there;
        returns the incident as it stands with this report (it may have resolved meanwhile),
        read in the same transaction under the report's row lock, or None if not stored."""
        now = self.clock()

        def save_and_read(connection: Connection) -> IncidentAlerts | None:
            stored = queries.save_report(
                connection,
                incident_id,
                notification_id,
                status,
                report,
                now,
                question,
                analysed_at,
            )
            return queries.incident_alerts(connection, incident_id) if stored else None

        return await self.write(save_and_read)

    async def shared_reports(self, questions: Sequence[str], since: datetime) -> list[Report]:
        """The reports stored under any of `questions`, analysed at or after `since` (any
        replica), newest first."""
        return await self.read(queries.shared_reports, questions, since)

    async def get_report(self, incident_id: int) -> Report | None:
        return await self.read(queries.get_report, incident_id)

    async def claim_work(self, *, owner: str, lease_s: float) -> WorkItem | None:
        now = self.clock()
        return await self.write(lambda c: work.claim(c, owner=owner, lease_s=lease_s, now=now))

    async def heartbeat_work(self, *, item_id: int, owner: str, lease_s: float) -> bool:
        now = self.clock()
        return await self.write(
            lambda c: work.heartbeat(c, item_id=item_id, owner=owner, lease_s=lease_s, now=now)
        )

    async def complete_work(self, *, item_id: int, owner: str) -> bool:
        now = self.clock()
        return await self.write(lambda c: work.complete(c, item_id=item_id, owner=owner, now=now))

    async def fail_work(
        self, *, item_id: int, owner: str, error: str, retry_at: datetime | None
    ) -> bool:
        now = self.clock()
        return await self.write(
            lambda c: work.fail(
                c, item_id=item_id, owner=owner, error=error, now=now, retry_at=retry_at
            )
        )

    async def queue_depth(self) -> dict[str, int]:
        return await self.read(work.depth)

    async def oldest_pending(self) -> datetime | None:
        return await self.read(work.oldest_pending)


def _select_one(connection: Connection) -> object:
    return connection.execute(text("SELECT 1")).scalar_one()


def _in_transaction(
    engine: Engine, function: Callable[..., Result], args: tuple[Any, ...]
) -> Result:
    with engine.begin() as connection:
        return function(connection, *args)


def _refuses_data(exc: DBAPIError) -> bool:
    """A refusal of the values (SQLSTATE class 22 data exception, 23 integrity constraint),
    not of the transaction: isolating the notification that carries them helps."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in ("22", "23")


def _reason(exc: BaseException) -> str:
    """A one-line reason without SQL parameters (they may carry alert content)."""
    original = getattr(exc, "orig", None)
    if isinstance(exc, SQLAlchemyError) and isinstance(original, BaseException):
        exc = original
    text_ = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text_}"[:500]
