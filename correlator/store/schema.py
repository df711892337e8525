"""The tables, one schema for SQLite and PostgreSQL; Alembic migrations create them.

JSON is kept as ASCII-escaped text rather than JSONB: label values may hold NUL or other
characters that PostgreSQL's text and jsonb types refuse, and a group must never be refused.
Timestamps are UTC; SQLite keeps them naive, so they are re-tagged on the way out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class JSONText(TypeDecorator[Any]):
    """JSON stored as ASCII text: every character survives on every database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in, an aware UTC datetime out, on both databases."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # sha256(receiver NUL groupKey): the identity, fixed-size so any groupKey can be indexed.
    Column("key", String(64), nullable=False),
    Column("receiver", Text, nullable=False),
    Column("group_key", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("alertname", Text, nullable=True),
    Column("namespace", Text, nullable=True),
    Column("group_labels", JSONText, nullable=False),
    Column("common_labels", JSONText, nullable=False),
    Column("common_annotations", JSONText, nullable=False),
    Column("external_url", Text, nullable=False),
    Column("truncated_alerts", Integer, nullable=False),
    Column("notification_count", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("key"),
    Index(None, "status"),
    Index(None, "started_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("alertname", Text, nullable=True),
    Column("namespace", Text, nullable=True),
    Column("labels", JSONText, nullable=False),
    Column("annotations", JSONText, nullable=False),
    Column("generator_url", Text, nullable=False),
    # What Grafana Alerting adds to an alert (values, silence/dashboard/panel links); NULL
    # for Alertmanager's. Not part of content_sha: values move with every evaluation.
    Column("details", JSONText, nullable=True),
    # sha256 of what a notification can change, to tell a no-op re-notification cheaply.
    Column("content_sha", String(64), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("incident_id", "fingerprint", "starts_at"),
    Index(None, "alertname"),
    Index(None, "namespace"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("alerts_firing", Integer, nullable=False),
    Column("alerts_resolved", Integer, nullable=False),
    Column("truncated_alerts", Integer, nullable=False),
    Column("new_alerts", Integer, nullable=False),
    Column("changed_alerts", Integer, nullable=False),
    Column("changed", Boolean, nullable=False),
    Column("incident_status", String(16), nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("trace_id", String(32), nullable=True),
    Index(None, "incident_id"),
)

work_items = Table(
    "work_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column(
        "notification_id", Id, ForeignKey("notifications.id", ondelete="CASCADE"), nullable=True
    ),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("lease_owner", Text, nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # When it should run at the latest: claims take the earliest first. New incidents are due at
    # once (by severity), refreshes a bounded delay later, so they wait but never starve.
    Column("due_at", UTCDateTime, nullable=False),
    # Claims walk this in due order (migration 0009).
    Index(None, "state", "due_at"),
    Index(None, "incident_id"),
)

# The latest correlation report of an incident, replaced when a new notification of its group
# is analysed again. `status` is "complete" or "partial" (a backend was missing).
reports = Table(
    "reports",
    metadata,
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("body", JSONText, nullable=False),
    Column("notification_id", Id, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # What the analysis answered (a digest of its inputs) and when it ran: another incident
    # asking the same question within correlation.share_s reuses it, on any replica.
    Column("question", String(64), nullable=True),
    Column("analysed_at", UTCDateTime, nullable=True),
    Index(None, "question", "analysed_at"),
)

# The outbox: one row per (incident, sink). `desired` is the message the sink should show now;
# `delivered_sha` the version it shows. A row is due while they differ. `remote` is what the
# sink needs to edit its message later (Slack channel and ts, a comment id…).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("sink", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("desired", JSONText, nullable=False),
    Column("desired_sha", String(64), nullable=False),
    Column("delivered_sha", String(64), nullable=True),
    Column("remote", JSONText, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("lease_owner", Text, nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("incident_id", "sink"),
    Index(None, "state", "available_at"),
)

# The inputs of an incident's latest analysis (correlation.keep_inputs), as the tar.gz of an
# incident bundle: `state` is "kept", or "over_cap" (no body: larger than max_bytes). `app` and
# `team` are what the analysis was for, so accuracy can be told per app and team.
bundles = Table(
    "bundles",
    metadata,
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("body", LargeBinary, nullable=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("kinds", JSONText, nullable=False),
    Column("app", Text, nullable=True),
    Column("team", Text, nullable=True),
    Column("analysed_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "created_at"),
)

# What a responder said the cause was: a service (`service`, its `rank` in the report then and
# the `outcome` that makes: rank1, top3 or missed) and/or free text; who said it (`answered_by`
# as given, `principal` as authenticated) and when. A later answer replaces an earlier one.
causes = Table(
    "causes",
    metadata,
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    Column("service", Text, nullable=True),
    Column("text", Text, nullable=True),
    Column("answered_by", Text, nullable=True),
    Column("principal", Text, nullable=True),
    Column("rank", Integer, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("app", Text, nullable=True),
    Column("team", Text, nullable=True),
    Column("answered_at", UTCDateTime, nullable=False),
    Index(None, "app", "answered_at"),
    Index(None, "answered_at"),
)
