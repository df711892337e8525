"""The kept inputs of each analysis (incident bundles) and the causes responders confirmed.

Each state change is decided in one statement: a bundle replaces the stored one only when its
analysis is not older (`INSERT … ON CONFLICT … DO UPDATE … WHERE`), and a cause replaces the
stored one only when it says something else, so the same answer twice changes nothing (its
time included) and tells the caller so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from correlator.store.schema import bundles, causes

OUTCOMES = ("rank1", "top3", "missed")


@dataclass(frozen=True, slots=True)
class StoredBundle:
    incident_id: int
    state: str  # "kept" or "over_cap"
    body: bytes | None
    size_bytes: int
    kinds: list[str]
    app: str | None
    team: str | None
    analysed_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Cause:
    incident_id: int
    service: str | None
    text: str | None
    answered_by: str | None
    principal: str | None
    rank: int | None
    outcome: str
    app: str | None
    team: str | None
    answered_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "service": self.service,
            "text": self.text,
            "by": self.answered_by,
            "principal": self.principal,
            "rank": self.rank,
            "outcome": self.outcome,
            "app": self.app,
            "team": self.team,
            "answered_at": self.answered_at.isoformat().replace("+00:00", "Z"),
        }


def outcome_of(rank: int | None) -> str:
    """rank1, top3 or missed: where the confirmed service stood in the ranking."""
    if rank == 1:
        return "rank1"
    if rank is not None and rank <= 3:
        return "top3"
    return "missed"


def _insert(connection: Connection, table: Any) -> Any:
    return (postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert)(table)


def _clean(value: str | None) -> str | None:
    """PostgreSQL's text refuses NUL; a label may carry one (the rest is kept as given)."""
    return value.replace("\x00", "\ufffd") if value is not None else None


def save_bundle(
    connection: Connection,
    *,
    incident_id: int,
    state: str,
    body: bytes | None,
    size_bytes: int,
    kinds: Sequence[str],
    app: str | None,
    team: str | None,
    analysed_at: datetime,
    now: datetime,
) -> bool:
    """Keep the inputs of the incident's analysis at `analysed_at`, unless those of a later
    analysis are stored already. True if stored."""
    values = {
        "state": state,
        "body": body,
        "size_bytes": size_bytes,
        "kinds": list(kinds),
        "app": _clean(app),
        "team": _clean(team),
        "analysed_at": analysed_at,
        "created_at": now,
    }
    statement = _insert(connection, bundles).values(incident_id=incident_id, **values)
    statement = statement.on_conflict_do_update(
        index_elements=["incident_id"],
        set_={name: statement.excluded[name] for name in values},
        where=bundles.c.analysed_at <= statement.excluded.analysed_at,
    ).returning(bundles.c.incident_id)
    return connection.execute(statement).first() is not None


def _bundle(row: Any) -> StoredBundle:
    return StoredBundle(
        incident_id=row.incident_id,
        state=row.state,
        body=bytes(row.body) if row.body is not None else None,
        size_bytes=row.size_bytes,
        kinds=list(row.kinds),
        app=row.app,
        team=row.team,
        analysed_at=row.analysed_at,
        created_at=row.created_at,
    )


def get_bundle(connection: Connection, incident_id: int) -> StoredBundle | None:
    row = connection.execute(
        select(bundles).where(bundles.c.incident_id == incident_id)
    ).one_or_none()
    return _bundle(row) if row is not None else None


def set_cause(
    connection: Connection,
    *,
    incident_id: int,
    service: str | None,
    text: str | None,
    answered_by: str | None,
    principal: str | None,
    rank: int | None,
    app: str | None,
    team: str | None,
    now: datetime,
) -> tuple[Cause, bool]:
    """Record what the cause was; the stored answer and whether this one changed it (the same
    answer again is no change, and keeps its first time)."""
    values = {
        "service": _clean(service),
        "text": _clean(text),
        "answered_by": _clean(answered_by),
        "principal": _clean(principal),
        "rank": rank,
        "outcome": outcome_of(rank if service is not None else None),
        "app": _clean(app),
        "team": _clean(team),
        "answered_at": now,
    }
    statement = _insert(connection, causes).values(incident_id=incident_id, **values)
    differs = or_(
        *(
            causes.c[name].is_distinct_from(statement.excluded[name])
            for name in ("service", "text", "answered_by", "principal")
        )
    )
    statement = statement.on_conflict_do_update(
        index_elements=["incident_id"],
        set_={name: statement.excluded[name] for name in values},
        where=differs,
    ).returning(causes.c.incident_id)
    changed = connection.execute(statement).first() is not None
    stored = get_cause(connection, incident_id)
    assert stored is not None  # inserted, updated or already there, under its row lock
    return stored, changed


def _cause(row: Any) -> Cause:
    return Cause(
        incident_id=row.incident_id,
        service=row.service,
        text=row.text,
        answered_by=row.answered_by,
        principal=row.principal,
        rank=row.rank,
        outcome=row.outcome,
        app=row.app,
        team=row.team,
        answered_at=row.answered_at,
    )


def get_cause(connection: Connection, incident_id: int) -> Cause | None:
    row = connection.execute(
        select(causes).where(causes.c.incident_id == incident_id)
    ).one_or_none()
    return _cause(row) if row is not None else None


def recent_outcomes(connection: Connection, app: str, limit: int = 20) -> list[str]:
    """The outcomes of the app's last `limit` confirmed causes, newest first."""
    return list(
        connection.execute(
            select(causes.c.outcome)
            .where(causes.c.app == _clean(app), causes.c.service.is_not(None))
            .order_by(causes.c.answered_at.desc(), causes.c.incident_id.desc())
            .limit(limit)
        ).scalars()
    )


def confirmed(
    connection: Connection, *, since: datetime | None = None, app: str | None = None
) -> list[Cause]:
    """The confirmed causes (a service named) whose incident's inputs were kept, oldest first."""
    query = (
        select(causes)
        .join(bundles, bundles.c.incident_id == causes.c.incident_id)
        .where(causes.c.service.is_not(None), bundles.c.state == "kept")
    )
    if since is not None:
        query = query.where(causes.c.answered_at >= since)
    if app is not None:
        query = query.where(causes.c.app == app)
    rows = connection.execute(query.order_by(causes.c.answered_at, causes.c.incident_id))
    return [_cause(row) for row in rows]


def prune_bundles(connection: Connection, before: datetime, limit: int) -> int:
    """Delete up to `limit` bundles kept before `before`; how many were deleted."""
    ids = list(
        connection.execute(
            select(bundles.c.incident_id)
            .where(bundles.c.created_at < before)
            .order_by(bundles.c.created_at)
            .limit(limit)
        ).scalars()
    )
    if ids:
        connection.execute(delete(bundles).where(bundles.c.incident_id.in_(ids)))
    return len(ids)


def bundle_totals(connection: Connection) -> tuple[int, int]:
    """How many bundles are kept and their bytes."""
    row = connection.execute(
        select(func.count(), func.coalesce(func.sum(bundles.c.size_bytes), 0)).where(
            and_(bundles.c.state == "kept")
        )
    ).one()
    return int(row[0]), int(row[1])
