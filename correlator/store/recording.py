"""Recording webhook notifications: incidents, alerts, timeline entries and work items (the
SQL under the intake's group commit, correlator/intake.py).

Set-based: a batch of notifications costs a fixed handful of statements (bulk upsert of the
incidents, one read of their alerts, bulk inserts and updates), not a handful per
notification, because every statement is a round trip to the database. Notifications for
the same incident are applied in arrival order, in "waves" in which each incident appears
once.

On PostgreSQL the incident upsert also writes whole, in the same statement, the incidents it
creates (`fresh.py`); the rows are built in `rows.py` for both paths.

Called inside a transaction that the caller commits. Concurrent writers for the same incident
are serialised by the incident upsert's row lock, so replicas sharing PostgreSQL never create a
second incident or alert for the same identity.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from correlator.analysis.scope import NAMESPACE_LABELS
from correlator.models.alerts import AlertStatus
from correlator.models.incidents import IntakeResult, ReceivedNotification
from correlator.store.fresh import MAX_ALERTS as MAX_FRESH_ALERTS
from correlator.store.fresh import record_fresh
from correlator.store.rows import (
    AlertKey,
    Applied,
    alert_row,
    changed,
    incident_row,
    notification_row,
    request,
    upserted,
)
from correlator.store.schema import alerts, incidents, notifications
from correlator.store.work import QueuePolicy, enqueue

DEFAULT_POLICY = QueuePolicy()


@functools.cache
def _incident_upsert(dialect: str) -> Any:
    """Built once per dialect: constructing a statement costs more than running a cached one."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(incidents)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
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
    ).returning(incidents.c.key, incidents.c.id, incidents.c.notification_count, incidents.c.status)


_FULL_CHANGE = (
    "status",
    "ends_at",
    "content_sha",
    "updated_at",
    "labels",
    "annotations",
    "generator_url",
    "details",
)
_RESOLVE_CHANGE = ("status", "ends_at", "content_sha", "updated_at")
# What the sender adds (Grafana's values and links) is kept current, but is no change that
# calls for a new correlation: Grafana's values move at every evaluation.
_DETAILS_CHANGE = ("details", "updated_at")


def _waves(batch: Sequence[ReceivedNotification]) -> list[list[int]]:
    """Indexes of the batch split so that each incident appears once per wave, in order."""
    waves: list[list[int]] = []
    seen: dict[str, int] = defaultdict(int)
    for index, received in enumerate(batch):
        key = received.payload.incident_key
        wave = seen[key]
        seen[key] += 1
        if wave == len(waves):
            waves.append([])
        waves[wave].append(index)
    return waves


def record_notifications(
    connection: Connection,
    batch: Sequence[ReceivedNotification],
    namespaces: Sequence[str] = NAMESPACE_LABELS,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> list[IntakeResult]:
    """Store a batch of notifications in the caller's transaction; results in batch order.
    An alert's namespace is the first of `namespaces` it carries (as correlation reads it);
    `policy` says which need a correlation and how soon."""
    results: list[IntakeResult | None] = [None] * len(batch)
    for wave in _waves(batch):
        outcomes = _record_wave(connection, [batch[index] for index in wave], namespaces, policy)
        for index, outcome in zip(wave, outcomes, strict=True):
            results[index] = outcome
    return [result for result in results if result is not None]


def one_statement(batch: Sequence[ReceivedNotification], keys: Sequence[str]) -> bool:
    """Whether the batch (its incidents' `keys`, in order) could be written whole by
    `record_created`: one wave (each incident once), not so many alerts that building them
    all as new would cost."""
    return len(set(keys)) == len(batch) and (
        sum(len(received.payload.alerts) for received in batch) <= MAX_FRESH_ALERTS
    )


def record_created(
    connection: Connection,
    batch: Sequence[ReceivedNotification],
    namespaces: Sequence[str] = NAMESPACE_LABELS,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> list[IntakeResult | None]:
    """PostgreSQL, a `one_statement` batch, on a connection that commits each statement: the
    notifications whose incidents this creates, written whole in one statement; None for those
    whose incident exists, of which nothing is written (`record_notifications` goes on)."""
    every = [Applied(received, received.payload.unique_alerts()) for received in batch]
    recorded = record_fresh(connection, every, namespaces, policy, created_only=True)
    return [recorded.get(i) for i in range(len(every))]


def _record_wave(
    connection: Connection,
    wave: list[ReceivedNotification],
    namespaces: Sequence[str],
    policy: QueuePolicy,
) -> list[IntakeResult]:
    every = [Applied(received, received.payload.unique_alerts()) for received in wave]
    recorded: dict[int, IntakeResult] = {}  # by position in the wave: written whole already
    fresh = connection.dialect.name == "postgresql"
    if fresh and sum(len(item.alerts) for item in every) <= MAX_FRESH_ALERTS:
        recorded = record_fresh(connection, every, namespaces, policy)
    else:
        rows = connection.execute(
            _incident_upsert(connection.dialect.name),
            [incident_row(a.received, a.alerts, namespaces) for a in every],
        )
        upserted(every, rows)
    applied = [item for i, item in enumerate(every) if i not in recorded]
    if not applied:
        return [recorded[i] for i in range(len(every))]

    existing: dict[int, dict[AlertKey, Any]] = defaultdict(dict)
    known_ids = [item.incident_id for item in applied if not item.new_incident]
    if known_ids:
        rows = connection.execute(
            select(
                alerts.c.id,
                alerts.c.incident_id,
                alerts.c.fingerprint,
                alerts.c.starts_at,
                alerts.c.status,
                alerts.c.content_sha,
                alerts.c.details,
            ).where(alerts.c.incident_id.in_(known_ids))
        )
        for row in rows:
            existing[row.incident_id][(row.fingerprint, row.starts_at)] = row

    full_changes: list[dict[str, Any]] = []
    resolve_changes: list[dict[str, Any]] = []
    details_changes: list[dict[str, Any]] = []
    for item in applied:
        full, resolved, details = _diff(item, existing[item.incident_id], namespaces)
        full_changes += full
        resolve_changes += resolved
        details_changes += details
        item.changed = len(full) + len(resolved)

    new_rows = [row for item in applied for row in item.new_rows]
    if new_rows:
        connection.execute(insert(alerts), new_rows)
    _update_alerts(connection, full_changes, _FULL_CHANGE)
    _update_alerts(connection, resolve_changes, _RESOLVE_CHANGE)
    _update_alerts(connection, details_changes, _DETAILS_CHANGE)
    _refresh_incidents(  # a new incident's row was written whole by the upsert
        connection,
        [item for item in applied if not item.new_incident and (item.new_rows or item.changed)],
    )

    # Within a wave each incident appears once, so ids are matched by incident, not by order
    # (an ordered bulk RETURNING degrades to one statement per row on SQLite).
    inserted = connection.execute(
        insert(notifications).returning(notifications.c.id, notifications.c.incident_id),
        [notification_row(item) for item in applied],
    )
    notification_of = {int(row.incident_id): int(row.id) for row in inserted}
    work_of = enqueue(
        connection, [request(item, notification_of[item.incident_id]) for item in applied], policy
    )
    return [
        recorded[i] if i in recorded else _result(item, notification_of, work_of)
        for i, item in enumerate(every)
    ]


def _result(
    item: Applied, notification_of: dict[int, int], work_of: dict[int, int]
) -> IntakeResult:
    notification_id = notification_of[item.incident_id]
    return IntakeResult(
        incident_id=item.incident_id,
        notification_id=notification_id,
        work_item_id=work_of.get(notification_id),
        new_incident=item.new_incident,
        changed=changed(item),
        incident_status=item.status_after,
    )


def _diff(
    item: Applied, existing: dict[AlertKey, Any], namespaces: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """New alert rows (kept on the item), full updates, inferred resolves and updates of the
    sender's details alone."""
    now = item.received.received_at
    full: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for alert in item.alerts:
        row = alert_row(alert, item.incident_id, now, namespaces)
        known = existing.get(alert.key)
        if known is None:
            item.new_rows.append(row)
        elif known.content_sha != row["content_sha"]:
            full.append({"b_id": known.id, **{name: row[name] for name in _FULL_CHANGE}})
        elif known.details != row["details"]:
            details.append({"b_id": known.id, "details": row["details"], "updated_at": now})

    # Alerts held as firing that the group no longer carries have ended: Alertmanager drops
    # an alert from its group once it resolved (and omits it when send_resolved is off), and
    # a re-fired alert comes back with a new startsAt. A truncated firing group does not carry
    # every alert, so nothing can be concluded from an absence there.
    resolved: list[dict[str, Any]] = []
    payload = item.received.payload
    if payload.status is AlertStatus.RESOLVED or payload.truncated_alerts == 0:
        carried = {alert.key for alert in item.alerts}
        for key, known in existing.items():
            if known.status == AlertStatus.FIRING.value and key not in carried:
                resolved.append(
                    {
                        "b_id": known.id,
                        "status": AlertStatus.RESOLVED.value,
                        "ends_at": now,
                        "content_sha": "",
                        "updated_at": now,
                    }
                )
    return full, resolved, details


def _update_alerts(
    connection: Connection, changes: list[dict[str, Any]], columns: tuple[str, ...]
) -> None:
    if changes:
        connection.execute(_alert_update(columns), changes)


@functools.cache
def _alert_update(columns: tuple[str, ...]) -> Any:
    return (
        update(alerts)
        .where(alerts.c.id == bindparam("b_id"))
        .values({name: bindparam(name) for name in columns})
    )


def _refresh_incidents(connection: Connection, touched: list[Applied]) -> None:
    """Recompute status, start and end of incidents whose alerts changed."""
    if not touched:
        return
    firing = func.coalesce(
        func.sum(case((alerts.c.status == AlertStatus.FIRING.value, 1), else_=0)), 0
    )
    stats = connection.execute(
        select(
            alerts.c.incident_id,
            firing.label("firing"),
            func.min(alerts.c.starts_at).label("started_at"),
            func.max(alerts.c.ends_at).label("ended_at"),
        )
        .where(alerts.c.incident_id.in_({item.incident_id for item in touched}))
        .group_by(alerts.c.incident_id)
    )
    by_incident = {row.incident_id: row for row in stats}
    changes = []
    for item in touched:
        row = by_incident[item.incident_id]
        item.status_after = AlertStatus.FIRING if row.firing else AlertStatus.RESOLVED
        resolved_at = (
            None
            if item.status_after is AlertStatus.FIRING
            else (row.ended_at or item.received.received_at)
        )
        changes.append(
            {
                "b_id": item.incident_id,
                "status": item.status_after.value,
                "started_at": row.started_at,
                "resolved_at": resolved_at,
            }
        )
    connection.execute(
        update(incidents)
        .where(incidents.c.id == bindparam("b_id"))
        .values(
            status=bindparam("status"),
            started_at=bindparam("started_at"),
            resolved_at=bindparam("resolved_at"),
        ),
        changes,
    )
