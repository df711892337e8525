"""Opening the database: drivers, SQLite pragmas, and migrations at start-up.

PostgreSQL is reached through asyncpg (an AsyncEngine). SQLite is a file on this machine:
it gets a plain pysqlite Engine, and the Store runs each whole transaction in a thread, so a
transaction costs one hop between threads rather than one per statement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from correlator.errors import ConfigError
from correlator.settings import DatabaseSettings, database_scheme

SQLITE_READERS = 2

# Held for the length of a migration so that replicas starting together take turns.
_MIGRATION_LOCK_ID = 0x636F7272656C  # "correl"


def driver_url(url: str) -> URL:
    """The SQLAlchemy URL with the driver correlator uses for the store's scheme."""
    parsed = make_url(url)
    if database_scheme(url) == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise ConfigError(
                "database.url: an in-memory SQLite database would lose every alert on restart; "
                "give a file path, e.g. sqlite:///correlator.db"
            )
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigError(f"database.url: directory {parent} does not exist")
        return parsed.set(drivername="sqlite+pysqlite")
    return parsed.set(drivername="postgresql+asyncpg")


def create_sqlite_engine(settings: DatabaseSettings) -> Engine:
    """A pysqlite engine in WAL mode, for a store that one process owns."""
    engine = sa_create_engine(
        driver_url(settings.url),
        connect_args={"timeout": settings.busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=SQLITE_READERS + 1,
    )
    _configure_sqlite(engine, settings)
    return engine


def create_postgres_engine(settings: DatabaseSettings) -> AsyncEngine:
    """A pooled asyncpg engine whose writes give up on a lock after busy_timeout_ms.

    A pooled connection the server has closed (a restart, a terminated backend, an idle
    timeout) is replaced when it is checked out, without a round trip: asyncpg saw its socket
    close. SQLAlchemy's `pool_pre_ping` asks the server instead, and for asyncpg that is three
    round trips (BEGIN, a query, ROLLBACK) before every transaction, a third of a new alert
    group's round trips at intake."""
    server_settings = {
        "application_name": "correlator",
        "lock_timeout": str(settings.busy_timeout_ms),
    }
    engine = create_async_engine(
        driver_url(settings.url),
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        connect_args={"server_settings": server_settings},
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_if_closed)
    return engine


def autocommit_of(engine: AsyncEngine) -> AsyncEngine:
    """The engine, on the same pool, without BEGIN and COMMIT (or ROLLBACK) around each
    statement. For reads: under READ COMMITTED each statement sees its own snapshot inside a
    transaction too, so a read gains nothing from one but two round trips. For a write that is
    one statement (the intake's new groups): it is a transaction by itself."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _replace_if_closed(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    # The pool answers DisconnectionError by opening a new connection in this one's place.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _configure_sqlite(engine: Engine, settings: DatabaseSettings) -> None:
    synchronous = settings.sqlite_synchronous.upper()
    busy_timeout_ms = int(settings.busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take control
        # of it (the recipe in SQLAlchemy's SQLite dialect documentation).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def upgrade(connection: Connection) -> None:
    """Bring the schema to the newest revision, in the caller's transaction."""
    if connection.dialect.name == "postgresql":
        # Replicas starting together take turns.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": _MIGRATION_LOCK_ID}
        )
    config = Config()
    config.set_main_option("script_location", "correlator.store:migrations")
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
