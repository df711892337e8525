"""What a notification writes, as rows: its incident, its alerts, its timeline entry and the
request for its correlation (pure: `recording.py` and `fresh.py` write them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from correlator.models.alerts import AlertStatus, WebhookAlert
from correlator.models.incidents import ReceivedNotification
from correlator.store.work import URGENT, WARNING, Request

# Longest text kept in an indexed label column; PostgreSQL refuses btree entries over ~2.7 kB.
INDEXED_TEXT_MAX = 256

AlertKey = tuple[str, datetime]


def namespace_of(labels: dict[str, str], names: Sequence[str]) -> str | None:
    """The namespace as correlation reads it: the first of `names` that the labels carry."""
    return next((labels[name] for name in names if labels.get(name)), None)


def indexed_text(value: str | None) -> str | None:
    """A label value fit for an indexed column: no NUL (PostgreSQL refuses it), bounded."""
    if value is None:
        return None
    return value.replace("\x00", "\ufffd")[:INDEXED_TEXT_MAX]


def alert_content_sha(alert: WebhookAlert) -> str:
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


@dataclass
class Applied:
    """What one notification did, gathered while its wave is written."""

    received: ReceivedNotification
    alerts: list[WebhookAlert]
    incident_id: int = 0
    new_incident: bool = False
    status_before: AlertStatus = AlertStatus.FIRING
    status_after: AlertStatus = AlertStatus.FIRING
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    changed: int = 0


def incident_row(
    received: ReceivedNotification, group_alerts: list[WebhookAlert], namespaces: Sequence[str]
) -> dict[str, Any]:
    payload = received.payload
    labels = {**payload.common_labels, **payload.group_labels}
    # What `_refresh_incidents` would compute from the alerts, for a new incident: its alerts
    # are these, so it needs no read-back and no second write (the upsert's update of an
    # existing incident leaves these columns alone).
    firing = any(alert.status is AlertStatus.FIRING for alert in group_alerts)
    ends = [alert.ends_at for alert in group_alerts if alert.ends_at is not None]
    return {
        "key": payload.incident_key,
        "receiver": payload.receiver,
        "group_key": payload.group_key,
        "status": (AlertStatus.FIRING if firing else AlertStatus.RESOLVED).value,
        "alertname": indexed_text(labels.get("alertname")),
        "namespace": indexed_text(namespace_of(labels, namespaces)),
        "group_labels": payload.group_labels,
        "common_labels": payload.common_labels,
        "common_annotations": payload.common_annotations,
        "external_url": payload.external_url,
        "truncated_alerts": payload.truncated_alerts,
        "notification_count": 1,
        "started_at": min(alert.starts_at for alert in group_alerts),
        "resolved_at": None if firing else max(ends, default=received.received_at),
        "created_at": received.received_at,
        "updated_at": received.received_at,
    }


def alert_row(
    alert: WebhookAlert, incident_id: int, now: datetime, namespaces: Sequence[str]
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at,
        "status": alert.status.value,
        "ends_at": alert.ends_at,
        "alertname": indexed_text(alert.labels.get("alertname")),
        "namespace": indexed_text(namespace_of(alert.labels, namespaces)),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generator_url,
        "details": alert.details,
        "content_sha": alert_content_sha(alert),
        "first_seen_at": now,
        "updated_at": now,
    }


def severity(item: Applied) -> str | None:
    """The group's severity: its common label, else the most urgent of its firing alerts'."""
    payload = item.received.payload
    common = payload.common_labels.get("severity") or payload.group_labels.get("severity")
    if common:
        return common
    values = [a.labels.get("severity", "") for a in item.alerts if a.status is AlertStatus.FIRING]
    for level in (*URGENT, *WARNING):
        if level in (v.lower() for v in values):
            return level
    return None


def changed(item: Applied) -> bool:
    return (
        item.new_incident
        or bool(item.new_rows)
        or item.changed > 0
        or item.status_after is not item.status_before
    )


def notification_row(item: Applied) -> dict[str, Any]:
    payload = item.received.payload
    firing = sum(1 for alert in item.alerts if alert.status is AlertStatus.FIRING)
    return {
        "incident_id": item.incident_id,
        "received_at": item.received.received_at,
        "status": payload.status.value,
        "alerts_firing": firing,
        "alerts_resolved": len(item.alerts) - firing,
        "truncated_alerts": payload.truncated_alerts,
        "new_alerts": len(item.new_rows),
        "changed_alerts": item.changed,
        "changed": changed(item),
        "incident_status": item.status_after.value,
        "payload_sha256": item.received.payload_sha256,
        "trace_id": item.received.trace_id,
    }


def request(item: Applied, notification_id: int) -> Request:
    return Request(
        incident_id=item.incident_id,
        notification_id=notification_id,
        received_at=item.received.received_at,
        new_incident=item.new_incident,
        changed=changed(item),
        severity=severity(item),
    )


def upserted(applied: Sequence[Applied], rows: Any) -> None:
    """What the incident upsert said of each item's incident: its id, new or not, status."""
    by_key = {row.key: row for row in rows}
    for item in applied:
        row = by_key[item.received.payload.incident_key]
        item.incident_id = int(row.id)
        item.new_incident = row.notification_count == 1
        item.status_before = item.status_after = AlertStatus(row.status)
