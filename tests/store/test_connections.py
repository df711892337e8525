"""The store's PostgreSQL connections: one the server closed is replaced at checkout with no
error, and a read runs without a transaction around it (no BEGIN, no ROLLBACK)."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import Connection, text

from correlator.settings import load_settings
from correlator.store import Store
from tests.store.test_notifications import record
from tests.support.databases import postgres_database
from tests.support.payloads import alert, payload

# This test's store's connections only: tests in other processes run beside it (pytest -n 2).
_OURS = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE application_name = 'correlator' AND datname = current_database()"
)


async def _pooled(store: Store, n: int) -> None:
    """Leave `n` connections in the store's pool: n reads held open at once."""
    gate = asyncio.Event()
    inside = 0

    def hold(connection: Connection) -> None:
        connection.execute(text("SELECT 1"))

    async def read() -> None:
        nonlocal inside
        inside += 1
        if inside == n:
            gate.set()
        await gate.wait()
        await store.read(hold)

    await asyncio.gather(*(read() for _ in range(n)))


async def test_connections_the_server_closed_are_replaced_without_an_error() -> None:
    async with postgres_database() as url:
        store = await Store.open(load_settings(database={"url": url}).database)
        admin = await asyncpg.connect(url)
        try:
            await _pooled(store, 3)
            before = {row["pid"] for row in await admin.fetch(_OURS)}
            assert before, "the store keeps its connections in a pool"
            for pid in before:
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
            for _ in range(200):  # until the server has let them go
                if not await admin.fetch(_OURS):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the closed sockets reach the store's event loop

            # Every pooled connection is dead: each call still succeeds, on a new one.
            await store.ping()
            result = await record(store, payload([alert("a1")]))
            detail = await store.get_incident(result.incident_id)
            assert detail is not None and len(detail.alerts) == 1
            after = {row["pid"] for row in await admin.fetch(_OURS)}
            assert after and not after & before
        finally:
            await admin.close()
            await store.close()


async def test_a_read_runs_outside_a_transaction() -> None:
    def two_statements(connection: Connection) -> bool:
        # now() is when the transaction began: two statements of one transaction agree.
        first = connection.execute(text("SELECT now()")).scalar()
        connection.execute(text("SELECT pg_sleep(0.02)"))
        return bool(first != connection.execute(text("SELECT now()")).scalar())

    async with postgres_database() as url:
        store = await Store.open(load_settings(database={"url": url}).database)
        try:
            assert await store.read(two_statements)
            assert not await store.write(two_statements)  # a write is one transaction
        finally:
            await store.close()
