"""Throwaway databases: a SQLite file, or a fresh database on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

PG_ADMIN_DSN = os.environ.get(
    "CORRELATOR_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def create_postgres_database() -> str:
    """Create an empty database on the real PostgreSQL; returns its URL."""
    name = f"correlator_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


async def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A database for one test, dropped afterwards; yields its URL."""
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'correlator.db'}"


@asynccontextmanager
async def write_lock(url: str) -> AsyncIterator[None]:
    """Hold a lock that blocks every write (not reads) to the store, as a stuck writer does."""
    if url.startswith("sqlite:///"):
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    connection = await asyncpg.connect(url)
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("LOCK TABLE incidents IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        await transaction.rollback()
        await connection.close()


@asynccontextmanager
async def row_locked(url: str, table: str, row_id: int) -> AsyncIterator[Callable[[int], Any]]:
    """Hold one row's lock from a second connection, as another replica mid-transaction does
    (on SQLite, which has no row locks, the database's write lock). Yields `blocked(n)`, which
    waits until `n` other sessions are queued behind that lock (PostgreSQL; on SQLite the
    caller knows its writes queue behind the one writer)."""
    if url.startswith("sqlite:///"):
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")

        async def nothing_to_see(_: int) -> None:
            return None

        try:
            yield nothing_to_see
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    holder = await asyncpg.connect(url)
    watcher = await asyncpg.connect(url)
    transaction = holder.transaction()
    await transaction.start()
    await holder.execute(f"SELECT id FROM {table} WHERE id = $1 FOR UPDATE", row_id)  # noqa: S608

    async def blocked(n: int) -> None:
        for _ in range(600):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"fewer than {n} sessions queued behind the lock on {table}")

    try:
        yield blocked
    finally:
        await transaction.rollback()
        await holder.close()
        await watcher.close()
