"""Throwaway databases: a SQLite file, or a fresh database on the real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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
