"""Opening the database: async drivers, SQLite pragmas, and migrations at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from correlator.errors import ConfigError
from correlator.settings import DatabaseSettings, database_scheme

# Held for the length of a migration so that replicas starting together take turns.
_MIGRATION_LOCK_ID = 0x636F7272656C  # "correl"


def async_url(url: str) -> URL:
    """The SQLAlchemy URL with the async driver for the store's scheme."""
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
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed.set(drivername="postgresql+asyncpg")


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """An engine tuned for the store: WAL SQLite or pooled PostgreSQL with lock timeouts."""
    url = async_url(settings.url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": settings.busy_timeout_ms / 1000})
        _configure_sqlite(engine, settings)
        return engine
    server_settings = {
        "application_name": "correlator",
        "lock_timeout": str(settings.busy_timeout_ms),
    }
    return create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": server_settings},
    )


def _configure_sqlite(engine: AsyncEngine, settings: DatabaseSettings) -> None:
    synchronous = settings.sqlite_synchronous.upper()
    busy_timeout_ms = int(settings.busy_timeout_ms)

    @event.listens_for(engine.sync_engine, "connect")
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

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", "correlator.store:migrations")
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe when several replicas start at once."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": _MIGRATION_LOCK_ID}
            )
        await connection.run_sync(_upgrade)
