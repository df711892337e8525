"""Rows stored before the intake read every namespace label correlation reads get their
namespace from migration 0005, so `?namespace=` finds old incidents too (both stores)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, insert

from correlator.models.incidents import IncidentFilter
from correlator.settings import DatabaseSettings, load_settings
from correlator.store import Store
from correlator.store.engine import create_postgres_engine, create_sqlite_engine
from correlator.store.schema import alerts, incidents


async def on_connection(settings: DatabaseSettings, work: Callable[[Connection], Any]) -> None:
    if settings.url.startswith("sqlite"):
        engine = create_sqlite_engine(settings)
        with engine.begin() as connection:
            work(connection)
        engine.dispose()
    else:
        async_engine = create_postgres_engine(settings)
        async with async_engine.begin() as connection:
            await connection.run_sync(work)
        await async_engine.dispose()


def upgrade_to(revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", "correlator.store:migrations")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return run


def old_rows(connection: Connection) -> None:
    """An incident and its alert as the intake stored them when it read only `namespace`."""
    now = datetime.now(UTC)
    group = {"alertname": "IstioErrors"}
    common = {"alertname": "IstioErrors", "destination_workload_namespace": "shop"}
    incident_id = connection.execute(
        insert(incidents).returning(incidents.c.id),
        {
            "key": "k" * 64, "receiver": "r", "group_key": "g", "status": "firing",
            "alertname": "IstioErrors", "namespace": None, "group_labels": group,
            "common_labels": common, "common_annotations": {}, "external_url": "",
            "truncated_alerts": 0, "notification_count": 1, "started_at": now,
            "resolved_at": None, "created_at": now, "updated_at": now,
        },
    ).scalar_one()  # fmt: skip
    connection.execute(
        insert(alerts),
        [
            {
                "incident_id": incident_id, "fingerprint": f"f{i}", "starts_at": now,
                "status": "firing", "ends_at": None, "alertname": "IstioErrors",
                "namespace": None, "labels": labels, "annotations": {}, "generator_url": "",
                "content_sha": "0" * 64, "first_seen_at": now, "updated_at": now,
            }
            for i, labels in enumerate(
                [common, {"alertname": "IstioErrors"}, {"exported_namespace": "\x00x"}]
            )
        ],
    )  # fmt: skip


async def test_old_rows_get_the_namespace_correlation_reads(database_url: str) -> None:
    settings = load_settings(database={"url": database_url}).database
    await on_connection(settings, upgrade_to("0004"))
    await on_connection(settings, old_rows)
    store = await Store.open(settings)  # migrates to the newest revision
    try:
        found, _ = await store.list_incidents(IncidentFilter(namespace="shop"))
        assert [i.alertname for i in found] == ["IstioErrors"]
        detail = await store.get_incident(found[0].id)
        assert detail is not None
        namespaces = await store.read(
            lambda c: [
                r[0]
                for r in c.execute(
                    alerts.select().with_only_columns(alerts.c.namespace).order_by(alerts.c.id)
                )
            ]
        )
        # The alert without any namespace label stays without one; a NUL never reaches a column.
        assert namespaces == ["shop", None, "\ufffdx"]
    finally:
        await store.close()
