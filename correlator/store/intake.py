"""Writing one webhook notification: incident, alerts, timeline entry and work item.

Called inside a transaction (and a savepoint) that the caller commits. Concurrent writers for
the same incident are serialised by the incident upsert's row lock, so replicas sharing
PostgreSQL never create a second incident or alert for the same identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from correlator.models.alerts import AlertStatus, WebhookAlert
from correlator.models.incidents import IntakeResult, ReceivedNotification
from correlator.store.schema import alerts, incidents, notifications, work_items

# Longest text kept in an indexed label column; PostgreSQL refuses btree entries over ~2.7 kB.
INDEXED_TEXT_MAX = 256
WORK_KIND_CORRELATE = "correlate"


def indexed_text(value: str | None) -> str | None:
    """A label value fit for an indexed column: no NUL (PostgreSQL refuses it), bounded."""
    if value is None:
        return None
    return value.replace("\x00", "\ufffd")[:INDEXED_TEXT_MAX]


def content_sha(alert: WebhookAlert) -> str:
    """Digest of everything a re-notification can change about one alert."""
    content = [
        alert.status.value,
        alert.ends_at.isoformat() if alert.ends_at else None,
        alert.labels,
        alert.annotations,
        alert.generator_url,
    ]
    encoded = json.dumps(content, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def _upsert(connection: AsyncConnection) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def _alert_row(alert: WebhookAlert, incident_id: int, now: datetime) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at,
        "status": alert.status.value,
        "ends_at": alert.ends_at,
        "alertname": indexed_text(alert.labels.get("alertname")),
        "namespace": indexed_text(alert.labels.get("namespace")),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generator_url,
        "content_sha": content_sha(alert),
        "first_seen_at": now,
        "updated_at": now,
    }


async def record_notification(
    connection: AsyncConnection, received: ReceivedNotification
) -> IntakeResult:
    """Store one notification; the caller owns the transaction."""
    payload = received.payload
    now = received.received_at
    group_alerts = payload.unique_alerts()
    labels = {**payload.common_labels, **payload.group_labels}

    insert_incident = _upsert(connection)(incidents).values(
        key=payload.incident_key,
        receiver=payload.receiver,
        group_key=payload.group_key,
        status=payload.status.value,
        alertname=indexed_text(labels.get("alertname")),
        namespace=indexed_text(labels.get("namespace")),
        group_labels=payload.group_labels,
        common_labels=payload.common_labels,
        common_annotations=payload.common_annotations,
        external_url=payload.external_url,
        truncated_alerts=payload.truncated_alerts,
        notification_count=1,
        started_at=min(alert.starts_at for alert in group_alerts),
        resolved_at=None,
        created_at=now,
        updated_at=now,
    )
    excluded = insert_incident.excluded
    insert_incident = insert_incident.on_conflict_do_update(
        index_elements=[incidents.c.key],
        set_={
            "group_labels": excluded.group_labels,
            "common_labels": excluded.common_labels,
            "common_annotations": excluded.common_annotations,
            "external_url": excluded.external_url,
            "truncated_alerts": excluded.truncated_alerts,
            "notification_count": incidents.c.notification_count + 1,
            "updated_at": excluded.updated_at,
        },
    ).returning(incidents.c.id, incidents.c.notification_count, incidents.c.status)
    incident = (await connection.execute(insert_incident)).one()
    incident_id = int(incident.id)
    new_incident = incident.notification_count == 1
    status_before = AlertStatus(incident.status)

    existing: dict[tuple[str, datetime], Any] = {}
    if not new_incident:
        rows = await connection.execute(
            select(
                alerts.c.id,
                alerts.c.fingerprint,
                alerts.c.starts_at,
                alerts.c.status,
                alerts.c.content_sha,
            ).where(alerts.c.incident_id == incident_id)
        )
        existing = {(row.fingerprint, row.starts_at): row for row in rows}

    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    for alert in group_alerts:
        row = _alert_row(alert, incident_id, now)
        known = existing.get(alert.key)
        if known is None:
            new_rows.append(row)
        elif known.content_sha != row["content_sha"]:
            changed_rows.append({"b_id": known.id, **_changeable(row)})

    # Alerts we hold as firing that the group no longer carries have ended: Alertmanager
    # drops an alert from its group once it resolved (and omits it when send_resolved is off),
    # and a re-fired alert comes back with a new startsAt. A truncated firing group does not
    # carry every alert, so nothing can be concluded from an absence there.
    complete = payload.status is AlertStatus.RESOLVED or payload.truncated_alerts == 0
    if complete:
        carried = {alert.key for alert in group_alerts}
        for key, known in existing.items():
            if known.status == AlertStatus.FIRING.value and key not in carried:
                changed_rows.append(
                    {
                        "b_id": known.id,
                        "status": AlertStatus.RESOLVED.value,
                        "ends_at": now,
                        "content_sha": "",
                        "updated_at": now,
                    }
                )

    if new_rows:
        await connection.execute(insert(alerts), new_rows)
    await _apply_changes(connection, changed_rows)

    status_after = status_before
    if new_rows or changed_rows or new_incident:
        status_after = await _refresh_incident(connection, incident_id, now)

    changed = bool(new_rows or changed_rows) or status_after is not status_before or new_incident
    firing = sum(1 for alert in group_alerts if alert.status is AlertStatus.FIRING)
    notification_id = (
        await connection.execute(
            insert(notifications)
            .values(
                incident_id=incident_id,
                received_at=now,
                status=payload.status.value,
                alerts_firing=firing,
                alerts_resolved=len(group_alerts) - firing,
                truncated_alerts=payload.truncated_alerts,
                new_alerts=len(new_rows),
                changed_alerts=len(changed_rows),
                changed=changed,
                incident_status=status_after.value,
                payload_sha256=received.payload_sha256,
                trace_id=received.trace_id,
            )
            .returning(notifications.c.id)
        )
    ).scalar_one()
    work_item_id = (
        await connection.execute(
            insert(work_items)
            .values(
                kind=WORK_KIND_CORRELATE,
                incident_id=incident_id,
                notification_id=notification_id,
                state="pending",
                attempts=0,
                available_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(work_items.c.id)
        )
    ).scalar_one()
    return IntakeResult(
        incident_id=incident_id,
        notification_id=int(notification_id),
        work_item_id=int(work_item_id),
        new_incident=new_incident,
        changed=changed,
        incident_status=status_after,
    )


def _changeable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": row["status"],
        "ends_at": row["ends_at"],
        "content_sha": row["content_sha"],
        "updated_at": row["updated_at"],
        "labels": row["labels"],
        "annotations": row["annotations"],
        "generator_url": row["generator_url"],
    }


async def _apply_changes(
    connection: AsyncConnection, changed_rows: Sequence[dict[str, Any]]
) -> None:
    # Two statement shapes: a full update from the payload, and the short inferred resolve.
    full = [row for row in changed_rows if "labels" in row]
    short = [row for row in changed_rows if "labels" not in row]
    columns = ("status", "ends_at", "content_sha", "updated_at")
    if full:
        statement = (
            update(alerts)
            .where(alerts.c.id == bindparam("b_id"))
            .values(
                {
                    name: bindparam(name)
                    for name in (*columns, "labels", "annotations", "generator_url")
                }
            )
        )
        await connection.execute(statement, list(full))
    if short:
        statement = (
            update(alerts)
            .where(alerts.c.id == bindparam("b_id"))
            .values({name: bindparam(name) for name in columns})
        )
        await connection.execute(statement, list(short))


async def _refresh_incident(
    connection: AsyncConnection, incident_id: int, now: datetime
) -> AlertStatus:
    """Recompute status, start and end from the alerts; returns the new status."""
    stats = (
        await connection.execute(
            select(
                func.coalesce(
                    func.sum(case((alerts.c.status == AlertStatus.FIRING.value, 1), else_=0)), 0
                ).label("firing"),
                func.min(alerts.c.starts_at).label("started_at"),
                func.max(alerts.c.ends_at).label("ended_at"),
            ).where(alerts.c.incident_id == incident_id)
        )
    ).one()
    status = AlertStatus.FIRING if stats.firing else AlertStatus.RESOLVED
    resolved_at = None if status is AlertStatus.FIRING else (stats.ended_at or now)
    await connection.execute(
        update(incidents)
        .where(incidents.c.id == incident_id)
        .values(status=status.value, started_at=stats.started_at, resolved_at=resolved_at)
    )
    return status
