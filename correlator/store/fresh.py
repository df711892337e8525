"""New alert groups in one statement, on PostgreSQL.

A new group writes four rows that depend on each other's ids: its incident, its alerts, its
notification and its work item. Written as four statements, with BEGIN and COMMIT, that is six
round trips, and on a busy event loop each waits for its turn: under load an acknowledgement
on PostgreSQL took twice as long as on SQLite, whose transaction is one hop to a thread. Here
the incident upsert, and for the incidents it created the other three inserts, are one
statement (data-modifying CTEs, the rows handed over as JSON).

The rows are those the usual path writes for a new incident (`rows.py` builds them), each
value as its column type binds it; the statement only joins the ids. An incident that existed
is upserted alike and nothing else is written for it: the usual path goes on from its upsert.

Its `created_only` form leaves an incident that exists alone. One statement that writes only
whole new groups needs no transaction around it (it is one by itself), so the intake runs it
first, outside BEGIN and COMMIT: a batch of new groups is then one round trip, not three
(`Store.record_batch`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, text
from sqlalchemy.dialects import postgresql

from correlator.models.alerts import AlertStatus
from correlator.models.incidents import IntakeResult
from correlator.store.rows import (
    Applied,
    alert_row,
    incident_row,
    notification_row,
    request,
    upserted,
)
from correlator.store.schema import JSONText, UTCDateTime, alerts, incidents, notifications
from correlator.store.schema import work_items as work
from correlator.store.work import QueuePolicy, work_row

# A wave of at most this many alerts is written here on PostgreSQL: its rows are built as if
# every incident were new, which costs little for small groups and would for a re-notification
# of a group of thousands.
MAX_ALERTS = 1000

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
# Columns the upsert refreshes on an incident that exists (as `recording._incident_upsert`).
REFRESHED = (
    "group_labels",
    "common_labels",
    "common_annotations",
    "external_url",
    "truncated_alerts",
    "updated_at",
)


def _columns(table: Table, names: Sequence[str]) -> str:
    """`name type, …` for json_to_recordset, each type as PostgreSQL stores the column."""
    return ", ".join(f"{name} {table.c[name].type.compile(dialect=_DIALECT)}" for name in names)


def _written(table: Table, *joined: str) -> tuple[str, ...]:
    """The columns a row carries: all but the id and those the statement joins in (a column
    a row leaves out is NULL, as when it is inserted directly: none has a default)."""
    return tuple(c.name for c in table.columns if c.name not in ("id", *joined))


@functools.cache
def statement(created_only: bool = False) -> Any:
    """The statement (built once); `created_only`: incidents that exist are left as they are
    (nothing is written for them), for a statement that commits on its own."""
    incident = _written(incidents)
    alert = _written(alerts, "incident_id")
    notification = _written(notifications, "incident_id")
    item = _written(work, "incident_id", "notification_id")
    refreshed = ", ".join(f"{name} = excluded.{name}" for name in REFRESHED)
    conflict = (
        "NOTHING"
        if created_only
        else f"UPDATE SET {refreshed}, notification_count = incidents.notification_count + 1"
    )

    def listed(names: Sequence[str], alias: str) -> str:
        return ", ".join(f"{alias}.{name}" for name in names)

    def created(table: Table, names: Sequence[str]) -> str:
        """The insert of `table`'s rows that belong to the incidents the upsert created."""
        return f"""
    INSERT INTO {table.name} (incident_id, {", ".join(names)})
    SELECT new.id, {listed(names, "x")}
    FROM json_to_recordset(CAST(:{table.name} AS json))
        AS x(ord integer, key varchar, {_columns(table, names)})
    JOIN new ON new.key = x.key
    ORDER BY x.ord"""  # noqa: S608

    # Only the schema's own column names are formatted in: every value is a bound parameter.
    sql = f"""
WITH up AS (
    INSERT INTO incidents ({", ".join(incident)})
    SELECT {listed(incident, "r")}
    FROM json_to_recordset(CAST(:incidents AS json))
        AS r(ord integer, {_columns(incidents, incident)})
    ORDER BY r.ord
    ON CONFLICT (key) DO {conflict}
    RETURNING key, id, notification_count, status
), new AS (
    SELECT key, id FROM up WHERE notification_count = 1
), a AS ({created(alerts, alert)}
), n AS ({created(notifications, notification)}
    RETURNING id, incident_id
), w AS (
    INSERT INTO work_items (incident_id, notification_id, {", ".join(item)})
    SELECT n.incident_id, n.id, {listed(item, "x")}
    FROM json_to_recordset(CAST(:work AS json))
        AS x(ord integer, key varchar, {_columns(work, item)})
    JOIN new ON new.key = x.key
    JOIN n ON n.incident_id = new.id
    ORDER BY x.ord
    RETURNING id, notification_id
)
SELECT up.key, up.id, up.notification_count, up.status,
    n.id AS notification_id, w.id AS work_item_id
FROM up LEFT JOIN n ON n.incident_id = up.id LEFT JOIN w ON w.notification_id = n.id
"""  # noqa: S608
    return text(sql)


def _value(table: Table, name: str, value: Any) -> Any:
    """`value` as its column binds it, in JSON: JSON columns as their text, times as ISO 8601
    with their offset (PostgreSQL reads them back to the microsecond)."""
    if value is None:
        return None
    kind = table.c[name].type
    if isinstance(kind, JSONText):
        return kind.process_bind_param(value, _DIALECT)
    if isinstance(kind, UTCDateTime):
        bound = kind.process_bind_param(value, _DIALECT)
        return bound.isoformat() if isinstance(bound, datetime) else bound
    return value


def _records(
    table: Table, names: Sequence[str], rows: Sequence[tuple[str | None, Mapping[str, Any]]]
) -> str:
    """The rows as a JSON array for json_to_recordset, in order, each with its incident key.
    Not ASCII-escaped: a value the database cannot hold fails as it would bound directly."""
    return json.dumps(
        [
            {
                "ord": ord_,
                **({"key": key} if key is not None else {}),
                **{name: _value(table, name, row.get(name)) for name in names},
            }
            for ord_, (key, row) in enumerate(rows)
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def record_new(
    connection: Connection,
    incident_rows: Sequence[Mapping[str, Any]],
    alert_rows: Sequence[tuple[str, Mapping[str, Any]]],
    notification_rows: Sequence[tuple[str, Mapping[str, Any]]],
    work_rows: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    created_only: bool = False,
) -> list[Any]:
    """Upsert the incidents (rows in `rows.incident_row`'s form; each key once), and for
    those it created insert their alerts, notification and work item (each row with its
    incident's key, without incident or notification ids). One row per incident: key, id,
    notification_count, status, and notification_id and work_item_id where it was new.
    `created_only`: an incident that exists is not upserted, and has no row."""
    return list(
        connection.execute(
            statement(created_only),
            {
                "incidents": _records(
                    incidents, _written(incidents), [(None, row) for row in incident_rows]
                ),
                "alerts": _records(alerts, _written(alerts, "incident_id"), alert_rows),
                "notifications": _records(
                    notifications, _written(notifications, "incident_id"), notification_rows
                ),
                "work": _records(work, _written(work, "incident_id", "notification_id"), work_rows),
            },
        )
    )


def record_fresh(
    connection: Connection,
    applied: Sequence[Applied],
    namespaces: Sequence[str],
    policy: QueuePolicy,
    *,
    created_only: bool = False,
) -> dict[int, IntakeResult]:
    """PostgreSQL: upsert the wave's incidents and write whole, in the same statement, those
    it creates (`fresh.record_new`); the others are left upserted for the usual path (with
    `created_only`, left alone). The results of those written, by position in the wave."""
    incident_rows, alert_rows, notification_rows, work_rows = [], [], [], []
    for item in applied:
        key = item.received.payload.incident_key
        row = incident_row(item.received, item.alerts, namespaces)
        incident_rows.append(row)
        # As the usual path writes a new incident: every alert new, nothing else changed.
        new = Applied(item.received, item.alerts, new_incident=True)
        new.status_before = new.status_after = AlertStatus(row["status"])
        new.new_rows = [
            alert_row(alert, 0, item.received.received_at, namespaces) for alert in item.alerts
        ]
        alert_rows += [(key, alert) for alert in new.new_rows]
        notification_rows.append((key, notification_row(new)))
        work_rows.append((key, work_row(request(new, 0), policy)))
    rows = record_new(
        connection,
        incident_rows,
        alert_rows,
        notification_rows,
        work_rows,
        created_only=created_only,
    )
    by_key = {written.key: written for written in rows}
    upserted([item for item in applied if item.received.payload.incident_key in by_key], rows)
    recorded = {}
    for i, item in enumerate(applied):
        answer = by_key.get(item.received.payload.incident_key)
        if answer is None or answer.notification_id is None:
            continue  # it existed: the usual path goes on (from its upsert, if it was made)
        recorded[i] = IntakeResult(
            incident_id=item.incident_id,
            notification_id=int(answer.notification_id),
            work_item_id=int(answer.work_item_id),
            new_incident=True,
            changed=True,
            incident_status=item.status_after,
        )
    return recorded
