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

from sqlalchemy import Connection, and_, func, insert, or_, select, update

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
    is news is decided on `material` (default: the whole message)."""
    sha = content_sha(material if material is not None else message)
    row = connection.execute(
        select(deliveries.c.id, deliveries.c.desired_sha, deliveries.c.state).where(
            deliveries.c.incident_id == incident_id, deliveries.c.sink == sink
        )
    ).one_or_none()
    if row is None:
        connection.execute(
            insert(deliveries).values(
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
        )
        return True
    if row.desired_sha == sha:
        return False
    values: dict[str, Any] = {"desired": message, "desired_sha": sha, "updated_at": now}
    if row.state != SENDING:  # a send under way picks the new version up when it records
        values.update(state=PENDING, available_at=now, attempts=0)
    connection.execute(update(deliveries).where(deliveries.c.id == row.id).values(values))
    return True


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
    """The sink shows `delivery.desired_sha`; due again if a newer message arrived meanwhile."""
    current = connection.execute(
        select(deliveries.c.desired_sha).where(deliveries.c.id == delivery.id)
    ).scalar_one_or_none()
    state = DELIVERED if current == delivery.desired_sha else PENDING
    connection.execute(
        update(deliveries)
        .where(_owned(delivery.id, owner))
        .values(
            state=state,
            delivered_sha=delivery.desired_sha,
            remote=remote,
            attempts=0 if state == PENDING else deliveries.c.attempts,
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
    """A failed attempt: pending again at `retry_at`, or given up (None)."""
    values: dict[str, Any] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": error[:ERROR_TEXT_MAX],
        "updated_at": now,
    }
    if retry_at is None:
        values["state"] = FAILED
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
