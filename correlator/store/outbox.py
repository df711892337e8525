"""The outbox: what each sink should show about each incident, and what it shows already.

`want` records the message a sink should show now (a new report, a resolve): the row becomes
due unless that exact message was already delivered, so a re-notification with nothing new
sends nothing. A deliverer claims a due row with a lease (as the work queue does), sends, and
records the version it delivered together with what the sink needs to edit its message later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from correlator.store.schema import deliveries

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
ERROR_TEXT_MAX = 2000


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    incident_id: int
    sink: str
    desired: dict[str, Any]
    desired_sha: str
    delivered_sha: str | None
    remote: dict[str, Any]
    attempts: int


def content_sha(message: dict[str, Any]) -> str:
    """Digest of one message's content (an alert's is store/recording.alert_content_sha)."""
    return hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()


def want(
    connection: Connection,
    *,
    incident_id: int,
    sink: str,
    message: dict[str, Any],
    now: datetime,
    material: dict[str, Any] | None = None,
) -> bool:
    """Record the message `sink` should show for the incident; True if that is news. Whether it
    is news is decided on `material` (default: the whole message).

    Decided in one statement on the row (no read before the write): a deliverer recording a
    send, or another replica, may change the row at any moment in between."""
    sha = content_sha(material if material is not None else message)
    if _replace_desired(connection, incident_id=incident_id, sink=sink, message=message,
                        sha=sha, now=now):  # fmt: skip
        return True
    inserted = connection.execute(
        _insert(connection)
        .values(
            incident_id=incident_id,
            sink=sink,
            state=PENDING,
            desired=message,
            desired_sha=sha,
            delivered_sha=None,
            remote={},
            attempts=0,
            available_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["incident_id", "sink"])
    )
    if inserted.rowcount:
        return True
    # Another transaction created the row after our update looked: decide against it now.
    return _replace_desired(
        connection, incident_id=incident_id, sink=sink, message=message, sha=sha, now=now
    )


def _replace_desired(
    connection: Connection,
    *,
    incident_id: int,
    sink: str,
    message: dict[str, Any],
    sha: str,
    now: datetime,
) -> bool:
    """Make `message` the desired one unless it already is; a row not being sent becomes due.
    A send under way keeps its lease: `delivered` sees the newer version and makes it due."""
    sending = deliveries.c.state == SENDING
    result = connection.execute(
        update(deliveries)
        .where(
            deliveries.c.incident_id == incident_id,
            deliveries.c.sink == sink,
            deliveries.c.desired_sha != sha,
        )
        .values(
            desired=message,
            desired_sha=sha,
            updated_at=now,
            state=case((sending, SENDING), else_=PENDING),
            available_at=case((sending, deliveries.c.available_at), else_=now),
            attempts=case((sending, deliveries.c.attempts), else_=0),
        )
    )
    return bool(result.rowcount)


def _insert(connection: Connection) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql_insert(deliveries)
    return sqlite_insert(deliveries)


def claim(connection: Connection, owner: str, lease_s: float, now: datetime) -> Delivery | None:
    due = or_(
        and_(deliveries.c.state == PENDING, deliveries.c.available_at <= now),
        and_(deliveries.c.state == SENDING, deliveries.c.lease_expires_at < now),
    )
    candidate = (
        select(deliveries.c.id)
        .where(due)
        .order_by(deliveries.c.available_at, deliveries.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = connection.execute(
        update(deliveries)
        .where(deliveries.c.id == candidate)
        .values(
            state=SENDING,
            attempts=deliveries.c.attempts + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            updated_at=now,
        )
        .returning(
            deliveries.c.id,
            deliveries.c.incident_id,
            deliveries.c.sink,
            deliveries.c.desired,
            deliveries.c.desired_sha,
            deliveries.c.delivered_sha,
            deliveries.c.remote,
            deliveries.c.attempts,
        )
    ).one_or_none()
    if row is None:
        return None
    return Delivery(
        id=int(row.id),
        incident_id=int(row.incident_id),
        sink=row.sink,
        desired=dict(row.desired),
        desired_sha=row.desired_sha,
        delivered_sha=row.delivered_sha,
        remote=dict(row.remote),
        attempts=int(row.attempts),
    )


def _owned(delivery_id: int, owner: str) -> Any:
    return and_(
        deliveries.c.id == delivery_id,
        deliveries.c.state == SENDING,
        deliveries.c.lease_owner == owner,
    )


def renew(
    connection: Connection, *, delivery: Delivery, owner: str, lease_s: float, now: datetime
) -> bool:
    """Extend the lease of a send under way; False if it was lost (another owner has it)."""
    result = connection.execute(
        update(deliveries)
        .where(_owned(delivery.id, owner))
        .values(lease_expires_at=now + timedelta(seconds=lease_s))
    )
    return bool(result.rowcount)


def remember(
    connection: Connection, *, delivery: Delivery, owner: str, remote: dict[str, Any], now: datetime
) -> None:
    """Record what the sink returned as soon as it returns it (the message's id), before
    anything else can fail: a later retry then edits that message instead of posting anew."""
    connection.execute(
        update(deliveries).where(_owned(delivery.id, owner)).values(remote=remote, updated_at=now)
    )


def delivered(
    connection: Connection, *, delivery: Delivery, owner: str, remote: dict[str, Any], now: datetime
) -> None:
    """The sink shows `delivery.desired_sha`; due again if a newer message arrived meanwhile.
    One statement, so a `want` committed at any moment before it is seen (under the row lock)."""
    sent = deliveries.c.desired_sha == delivery.desired_sha
    connection.execute(
        update(deliveries)
        .where(_owned(delivery.id, owner))
        .values(
            state=case((sent, DELIVERED), else_=PENDING),
            delivered_sha=delivery.desired_sha,
            remote=remote,
            attempts=case((sent, deliveries.c.attempts), else_=0),
            available_at=now,
            lease_owner=None,
            lease_expires_at=None,
            last_error=None,
            updated_at=now,
        )
    )


def failed(
    connection: Connection,
    *,
    delivery: Delivery,
    owner: str,
    error: str,
    now: datetime,
    retry_at: datetime | None,
) -> None:
    """A failed attempt: pending again at `retry_at`, or given up (None). Giving up gives up
    the version that failed: one wanted meanwhile is due at once, with fresh attempts."""
    values: dict[str, Any] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": error[:ERROR_TEXT_MAX],
        "updated_at": now,
    }
    if retry_at is None:
        newer = deliveries.c.desired_sha != delivery.desired_sha
        values.update(
            state=case((newer, PENDING), else_=FAILED),
            available_at=case((newer, now), else_=deliveries.c.available_at),
            attempts=case((newer, 0), else_=deliveries.c.attempts),
        )
    else:
        values.update(state=PENDING, available_at=retry_at)
    connection.execute(update(deliveries).where(_owned(delivery.id, owner)).values(values))


def for_incident(connection: Connection, incident_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(
            deliveries.c.sink,
            deliveries.c.state,
            deliveries.c.attempts,
            deliveries.c.last_error,
            deliveries.c.updated_at,
        )
        .where(deliveries.c.incident_id == incident_id)
        .order_by(deliveries.c.sink)
    )
    return [row._asdict() for row in rows]


def depth(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(deliveries.c.state, func.count()).group_by(deliveries.c.state))
    return {state: int(count) for state, count in rows}
