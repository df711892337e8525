"""The durable work queue: claim with a lease, heartbeat, complete, retry or give up.

A claimed item carries a lease (owner + expiry). A replica that dies stops renewing it, and
once it expires any replica may claim the item again, so no work is lost. On PostgreSQL the
claim skips rows another replica is claiming (`FOR UPDATE SKIP LOCKED`); SQLite serialises
writers, so it needs no such clause.

Per incident there is at most one item queued and one running: a newer item supersedes the
queued one (the newest notification is what the report must reflect), and an incident whose
item runs is not claimed again until it is done. Claims take the earliest `due_at` first: a
new incident is due at once (by its severity), a refresh a bounded delay later, so refreshes
wait behind a storm of new incidents but never starve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, exists, func, insert, select, update
from sqlalchemy.orm import aliased

from correlator.store.schema import reports, work_items

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
SUPERSEDED = "superseded"
ERROR_TEXT_MAX = 2000
URGENT = ("critical", "page", "error", "high", "p1", "sev1", "emergency")
WARNING = ("warning", "ticket", "medium", "p2", "sev2")


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """What the intake enqueues and how soon it is due."""

    # A re-notification that brought nothing new refreshes a report older than this, else
    # it is only recorded in the timeline (Alertmanager re-sends every group_interval).
    refresh_age_s: float = 300.0
    # How long a refresh (anything but a new incident) may wait behind newer incidents.
    refresh_delay_s: float = 60.0
    # Extra delay by severity label: urgent first, then warnings, then the rest.
    severity_delay_s: Mapping[str, float] = field(
        default_factory=lambda: {**dict.fromkeys(URGENT, 0.0), **dict.fromkeys(WARNING, 5.0)}
    )
    other_severity_delay_s: float = 10.0

    def due(self, received_at: datetime, *, new_incident: bool, severity: str | None) -> datetime:
        delay = self.severity_delay_s.get((severity or "").lower(), self.other_severity_delay_s)
        if not new_incident:
            delay += self.refresh_delay_s
        return received_at + timedelta(seconds=delay)


@dataclass(frozen=True, slots=True)
class WorkItem:
    id: int
    kind: str
    incident_id: int
    notification_id: int | None
    attempts: int
    created_at: datetime | None = None  # when its notification was stored


WORK_KIND_CORRELATE = "correlate"


@dataclass(frozen=True, slots=True)
class Request:
    """A stored notification that may need a correlation."""

    incident_id: int
    notification_id: int
    received_at: datetime
    new_incident: bool
    changed: bool  # it changed the group (a new incident or alert, a status, a resolve)
    severity: str | None


def enqueue(connection: Connection, requests: list[Request], policy: QueuePolicy) -> dict[int, int]:
    """Work for the notifications that need a correlation; {notification id: work item id}.

    A notification that changed something supersedes the incident's queued item (the report
    must reflect the newest state; one queued per incident). One that changed nothing only
    refreshes a report older than `policy.refresh_age_s`, and only if nothing is queued or
    running for the incident already."""
    if not requests:
        return {}
    now = requests[0].received_at
    changed = [r for r in requests if r.changed]
    unchanged = [r for r in requests if not r.changed]
    # A new incident has nothing queued to supersede: no statement for it.
    superseding = [r.incident_id for r in changed if not r.new_incident]
    if superseding:
        connection.execute(
            update(work_items)
            .where(
                work_items.c.incident_id.in_(superseding),
                work_items.c.state == PENDING,
            )
            .values(state=SUPERSEDED, updated_at=now)
        )
    if unchanged:
        ids = [r.incident_id for r in unchanged]
        busy = set(
            connection.execute(
                select(work_items.c.incident_id).where(
                    work_items.c.incident_id.in_(ids), work_items.c.state.in_((PENDING, RUNNING))
                )
            ).scalars()
        )
        fresh_after = now - timedelta(seconds=policy.refresh_age_s)
        fresh = set(
            connection.execute(
                select(reports.c.incident_id).where(
                    reports.c.incident_id.in_(ids), reports.c.updated_at >= fresh_after
                )
            ).scalars()
        )
        unchanged = [r for r in unchanged if r.incident_id not in busy | fresh]
    work = changed + unchanged
    if not work:
        return {}
    queued = connection.execute(
        insert(work_items).returning(work_items.c.id, work_items.c.notification_id),
        [work_row(r, policy) for r in work],
    )
    return {int(row.notification_id): int(row.id) for row in queued}


def work_row(request: Request, policy: QueuePolicy) -> dict[str, object]:
    """The queued work item of a request that needs a correlation."""
    return {
        "kind": WORK_KIND_CORRELATE,
        "incident_id": request.incident_id,
        "notification_id": request.notification_id,
        "state": PENDING,
        "attempts": 0,
        "available_at": request.received_at,
        "created_at": request.received_at,
        "updated_at": request.received_at,
        "due_at": policy.due(
            request.received_at, new_incident=request.new_incident, severity=request.severity
        ),
    }


def claim(connection: Connection, *, owner: str, lease_s: float, now: datetime) -> WorkItem | None:
    """Take the available item (or one whose lease expired) that is due first, for `owner`,
    unless another item of its incident is running under a live lease.

    Each state is asked on its own, walking the (state, due_at) index and stopping at the
    first: one query with an `OR` of the two made both databases collect and sort the whole
    backlog on every claim (migration 0009)."""
    other = aliased(work_items)
    running = exists().where(
        other.c.incident_id == work_items.c.incident_id,
        other.c.id != work_items.c.id,
        other.c.state == RUNNING,
        other.c.lease_expires_at >= now,
    )
    firsts = []
    for claimable in (
        and_(work_items.c.state == PENDING, work_items.c.available_at <= now),
        and_(work_items.c.state == RUNNING, work_items.c.lease_expires_at < now),
    ):
        first = connection.execute(
            select(work_items.c.id, work_items.c.due_at)
            .where(claimable, ~running)
            .order_by(work_items.c.due_at, work_items.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if first is not None:
            firsts.append((first.due_at, int(first.id)))
    if not firsts:
        return None
    candidate = min(firsts)[1]
    row = (
        connection.execute(
            update(work_items)
            .where(work_items.c.id == candidate)
            .values(
                state=RUNNING,
                attempts=work_items.c.attempts + 1,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s),
                updated_at=now,
            )
            .returning(
                work_items.c.id,
                work_items.c.kind,
                work_items.c.incident_id,
                work_items.c.notification_id,
                work_items.c.attempts,
                work_items.c.created_at,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return WorkItem(
        id=int(row.id),
        kind=row.kind,
        incident_id=int(row.incident_id),
        notification_id=row.notification_id,
        attempts=int(row.attempts),
        created_at=row.created_at,
    )


def _owned(item_id: int, owner: str) -> object:
    return and_(
        work_items.c.id == item_id,
        work_items.c.state == RUNNING,
        work_items.c.lease_owner == owner,
    )


def heartbeat(
    connection: Connection, *, item_id: int, owner: str, lease_s: float, now: datetime
) -> bool:
    """Extend the lease; False if the item is no longer ours (it expired and was taken)."""
    result = connection.execute(
        update(work_items)
        .where(_owned(item_id, owner))  # type: ignore[arg-type]
        .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
    )
    return bool(result.rowcount)


def complete(connection: Connection, *, item_id: int, owner: str, now: datetime) -> bool:
    result = connection.execute(
        update(work_items)
        .where(_owned(item_id, owner))  # type: ignore[arg-type]
        .values(
            state=DONE, lease_owner=None, lease_expires_at=None, updated_at=now, last_error=None
        )
    )
    return bool(result.rowcount)


def fail(
    connection: Connection,
    *,
    item_id: int,
    owner: str,
    error: str,
    now: datetime,
    retry_at: datetime | None,
) -> bool:
    """Record a failed attempt: back to pending at `retry_at`, or given up when None."""
    values: dict[str, object] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
        "last_error": error[:ERROR_TEXT_MAX],
    }
    if retry_at is None:
        values["state"] = FAILED
    else:
        values.update(state=PENDING, available_at=retry_at)
        # A newer item of the incident queued meanwhile supersedes the retry.
        incident = select(work_items.c.incident_id).where(work_items.c.id == item_id)
        newer = connection.execute(
            select(func.count()).where(
                work_items.c.incident_id == incident.scalar_subquery(),
                work_items.c.state == PENDING,
                work_items.c.id > item_id,
            )
        ).scalar_one()
        if newer:
            values["state"] = SUPERSEDED
    result = connection.execute(
        update(work_items).where(_owned(item_id, owner)).values(values)  # type: ignore[arg-type]
    )
    return bool(result.rowcount)


def release_all(connection: Connection, *, now: datetime) -> int:
    """Put every running item back to pending (embedded mode: no other process holds one)."""
    result = connection.execute(
        update(work_items)
        .where(work_items.c.state == RUNNING)
        .values(
            state=PENDING, lease_owner=None, lease_expires_at=None, available_at=now, updated_at=now
        )
    )
    return int(result.rowcount)


def oldest_pending(connection: Connection) -> datetime | None:
    """When the longest-waiting queued item was created: the age of the backlog."""
    value: datetime | None = connection.execute(
        select(func.min(work_items.c.created_at)).where(work_items.c.state == PENDING)
    ).scalar_one()
    return value


def depth(connection: Connection) -> dict[str, int]:
    """Items per state that is not finished: the queue depth."""
    rows = connection.execute(
        select(work_items.c.state, func.count())
        .where(work_items.c.state.in_((PENDING, RUNNING)))
        .group_by(work_items.c.state)
    )
    counts = {PENDING: 0, RUNNING: 0}
    counts.update({state: int(count) for state, count in rows})
    return counts
