"""Incidents as the API returns them, and the records the intake hands to the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from correlator.models.alerts import AlertStatus, WebhookPayload
from correlator.models.report import Report


@dataclass(frozen=True, slots=True)
class ReceivedNotification:
    """A validated webhook notification with what the intake knows about its arrival."""

    payload: WebhookPayload
    received_at: datetime
    payload_sha256: str
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What storing one notification did."""

    incident_id: int
    notification_id: int
    work_item_id: int | None  # None: nothing new, and a report recent enough exists
    new_incident: bool
    changed: bool
    incident_status: AlertStatus


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class AlertRecord(_Out):
    fingerprint: str
    status: AlertStatus
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    # Grafana Alerting's additions: rule_url, values, value_string, silence_url,
    # dashboard_url, panel_url, image_url (only those it sent); None for Alertmanager's.
    details: dict[str, Any] | None = None
    first_seen_at: datetime
    updated_at: datetime


class NotificationRecord(_Out):
    """One webhook notification received for an incident: an entry of its timeline."""

    id: int
    received_at: datetime
    status: AlertStatus
    alerts_firing: int
    alerts_resolved: int
    truncated_alerts: int
    new_alerts: int
    changed_alerts: int
    changed: bool
    incident_status: AlertStatus
    trace_id: str | None


class WorkRecord(_Out):
    id: int
    kind: str
    notification_id: int | None
    state: str
    attempts: int
    last_error: str | None
    updated_at: datetime


class IncidentSummary(_Out):
    id: int
    receiver: str
    group_key: str
    status: AlertStatus
    alertname: str | None
    namespace: str | None
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    truncated_alerts: int
    notification_count: int
    alerts_total: int
    alerts_firing: int
    started_at: datetime
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime


class IncidentAlerts(IncidentSummary):
    """An incident with its alerts: all that analysing it and telling of it read."""

    alerts: list[AlertRecord]


class IncidentDetail(IncidentAlerts):
    timeline: list[NotificationRecord]
    work_items: list[WorkRecord]
    report: Report | None = Field(
        None, description="The latest correlation report (models/report.py); null until analysed."
    )
    # Messages to sinks: per sink, delivered / pending / failed, attempts and the last error.
    deliveries: list[dict[str, Any]] = []


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    """Which incidents a listing returns; every field optional."""

    status: AlertStatus | None = None
    namespace: str | None = None
    alertname: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    before_id: int | None = None


class IncidentPage(_Out):
    items: list[IncidentSummary]
    next_cursor: str | None
