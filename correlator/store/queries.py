"""Reading incidents back (the filtered, paginated listing and one incident in full), and their
correlation reports.

The reports table keeps each `Report` as JSON: `_dumped` on the way in and `_loaded` on the way
out are the one boundary between the model and the stored document, so a body written by any
release is read through `Report.model_validate` (which upgrades older shapes) here and only
here."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from correlator.models.incidents import (
    AlertRecord,
    IncidentAlerts,
    IncidentDetail,
    IncidentFilter,
    IncidentSummary,
    NotificationRecord,
    WorkRecord,
)
from correlator.models.report import Missing, Report
from correlator.store import outbox
from correlator.store.rows import indexed_text
from correlator.store.schema import alerts, incidents, notifications, reports, work_items

log = logging.getLogger(__name__)

_SUMMARY_COLUMNS = [column for column in incidents.c if column.name != "key"]


def _summary_query() -> Select[Any]:
    total = (
        select(func.count())
        .where(alerts.c.incident_id == incidents.c.id)
        .scalar_subquery()
        .label("alerts_total")
    )
    firing = (
        select(func.coalesce(func.sum(case((alerts.c.status == "firing", 1), else_=0)), 0))
        .where(alerts.c.incident_id == incidents.c.id)
        .scalar_subquery()
        .label("alerts_firing")
    )
    return select(*_SUMMARY_COLUMNS, total, firing)


def _conditions(incident_filter: IncidentFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if incident_filter.status is not None:
        conditions.append(incidents.c.status == incident_filter.status.value)
    # Namespace and alertname match any alert of the incident: a group may span several.
    if incident_filter.namespace is not None:
        conditions.append(
            exists().where(
                and_(
                    alerts.c.incident_id == incidents.c.id,
                    alerts.c.namespace == indexed_text(incident_filter.namespace),
                )
            )
        )
    if incident_filter.alertname is not None:
        conditions.append(
            exists().where(
                and_(
                    alerts.c.incident_id == incidents.c.id,
                    alerts.c.alertname == indexed_text(incident_filter.alertname),
                )
            )
        )
    # A time range selects the incidents that were open at some moment inside it.
    if incident_filter.since is not None:
        conditions.append(
            or_(incidents.c.resolved_at.is_(None), incidents.c.resolved_at >= incident_filter.since)
        )
    if incident_filter.until is not None:
        conditions.append(incidents.c.started_at <= incident_filter.until)
    if incident_filter.before_id is not None:
        conditions.append(incidents.c.id < incident_filter.before_id)
    return conditions


def list_incidents(
    connection: Connection, incident_filter: IncidentFilter
) -> tuple[list[IncidentSummary], int | None]:
    """Newest first; returns the page and the id to continue before, if there is more."""
    query = (
        _summary_query()
        .where(*_conditions(incident_filter))
        .order_by(incidents.c.id.desc())
        .limit(incident_filter.limit + 1)
    )
    rows = (connection.execute(query)).all()
    items = [IncidentSummary.model_validate(row._asdict()) for row in rows[: incident_filter.limit]]
    next_before = items[-1].id if len(rows) > incident_filter.limit else None
    return items, next_before


def incident_alerts(connection: Connection, incident_id: int) -> IncidentAlerts | None:
    """The incident with its alerts (two queries; `get_incident` adds the rest)."""
    row = (connection.execute(_summary_query().where(incidents.c.id == incident_id))).one_or_none()
    if row is None:
        return None
    alert_rows = connection.execute(
        select(alerts)
        .where(alerts.c.incident_id == incident_id)
        .order_by(alerts.c.starts_at, alerts.c.fingerprint)
    )
    return IncidentAlerts(
        **row._asdict(), alerts=[AlertRecord.model_validate(r._asdict()) for r in alert_rows]
    )


def get_incident(connection: Connection, incident_id: int) -> IncidentDetail | None:
    """The incident with its alerts, its notification timeline and its work items."""
    incident = incident_alerts(connection, incident_id)
    if incident is None:
        return None
    timeline_rows = connection.execute(
        select(notifications)
        .where(notifications.c.incident_id == incident_id)
        .order_by(notifications.c.id)
    )
    work_rows = connection.execute(
        select(work_items).where(work_items.c.incident_id == incident_id).order_by(work_items.c.id)
    )
    return IncidentDetail(
        **dict(incident),
        timeline=[NotificationRecord.model_validate(r._asdict()) for r in timeline_rows],
        work_items=[WorkRecord.model_validate(r._asdict()) for r in work_rows],
        report=get_report(connection, incident_id),
        deliveries=outbox.for_incident(connection, incident_id),
    )


def save_report(
    connection: Connection,
    incident_id: int,
    notification_id: int | None,
    status: str,
    report: Report,
    now: datetime,
    question: str | None = None,
    analysed_at: datetime | None = None,
) -> bool:
    """Store the incident's report unless one built from a newer notification is already
    there (two workers analysing one incident: the newest state wins). True if stored.
    `question`/`analysed_at`: what the analysis answered and when, for `shared_reports`."""
    newer = reports.c.notification_id > notification_id if notification_id is not None else None
    existing = connection.execute(
        select(reports.c.notification_id).where(reports.c.incident_id == incident_id)
    ).one_or_none()
    values = {
        "notification_id": notification_id,
        "status": status,
        "body": _dumped(report),
        "updated_at": now,
        "question": question,
        "analysed_at": analysed_at,
    }
    if existing is None:
        connection.execute(
            insert(reports).values(incident_id=incident_id, created_at=now, **values)
        )
        return True
    query = update(reports).where(reports.c.incident_id == incident_id)
    if newer is not None:
        query = query.where(or_(reports.c.notification_id.is_(None), ~newer))
    return bool(connection.execute(query.values(**values)).rowcount)


def shared_reports(
    connection: Connection, questions: Sequence[str], since: datetime, limit: int = 16
) -> list[Report]:
    """The reports stored under any of `questions` from analyses run at or after `since`,
    newest first (at most `limit`)."""
    rows = connection.execute(
        select(reports.c.incident_id, reports.c.updated_at, reports.c.body)
        .where(reports.c.question.in_(list(questions)), reports.c.analysed_at >= since)
        .order_by(reports.c.analysed_at.desc())
        .limit(limit)
    )
    return [_loaded(row.incident_id, row.updated_at, row.body) for row in rows]


def get_report(connection: Connection, incident_id: int) -> Report | None:
    row = connection.execute(
        select(reports.c.updated_at, reports.c.body).where(reports.c.incident_id == incident_id)
    ).one_or_none()
    return _loaded(incident_id, row.updated_at, row.body) if row is not None else None


def _dumped(report: Report) -> dict[str, Any]:
    """The stored document: the JSON the API serves (`model_dump(mode="json")`)."""
    return report.model_dump(mode="json")


def _loaded(incident_id: int, updated_at: datetime, body: Mapping[str, Any] | None) -> Report:
    """The stored document as a `Report`, whichever release wrote it. The row fills what a body
    cannot lack today (its incident, when it was written); a body that still does not
    validate is shown as a partial report saying so, rather than failing its incident's page
    and API."""
    document = {"incident_id": incident_id, "generated_at": updated_at, **(body or {})}
    try:
        return Report.model_validate(document)
    except ValidationError as exc:
        # Where, not what: the values are alert content.
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors()[:10])
        log.warning("the stored report of incident %s does not validate: %s", incident_id, where)
        return Report(
            incident_id=incident_id,
            generated_at=updated_at,
            status="partial",
            missing=[
                Missing(
                    backend="store",
                    what="report",
                    reason=f"the stored report cannot be read ({exc.error_count()} errors)",
                )
            ],
        )
