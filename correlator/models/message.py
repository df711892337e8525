"""The platform-neutral message of an incident, which every sink renders (pure, no I/O).

`sinks/message.incident_message` builds it from the incident and its `Report`; the notifier
puts its JSON in the outbox (`model_dump(mode="json")`), and a sink validates that JSON back
(`Message.model_validate`) before it renders: a message written by an earlier release, still
waiting in the outbox, loads with defaults for what it lacks. The generic webhook sends the
JSON as `message` (schema `correlator.incident/v1`). Text fields carry alert content verbatim:
a renderer escapes them for its platform.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from correlator.models.report import Document


class MessageEvidence(Document):
    detail: str = Field(description="The evidence in words.")
    links: dict[str, str] = Field(default={}, description="explore, trace_1…: where to look.")


class MessageSuspect(Document):
    service: str
    reason: str = ""
    evidence: list[MessageEvidence] = Field(default=[], description="Its strongest, at most 2.")


class MessageApp(Document):
    """Who owns the app (its WebApplication) and what was deployed before the incident."""

    name: str
    namespace: str
    team: str | None = None
    chat_channel: str | None = Field(None, description="spec.alerting.chatChannel")
    repo: str | None = None
    revision: str | None = Field(None, description="The deployed commit, when known.")
    deployed_minutes_before_alert: float | None = None
    runbook_url: str | None = None


class GrafanaDetails(Document):
    """Grafana Alerting's own links (title → URL) and values, when a Grafana rule fired."""

    links: dict[str, str] = {}
    values: str = ""


class Message(Document):
    """An incident as every sink shows it: what a reader needs, and what changes meaningfully
    (`sinks/message.material` says which changes are news)."""

    incident_id: int
    title: str = Field(description="The alert name (else the group's).")
    status: Literal["firing", "resolved"]
    severity: str = ""
    namespace: str = ""
    summary: str = ""
    runbook_url: str = ""
    alerts_firing: int = 0
    alerts_total: int = 0
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    duration: str | None = Field(None, description="Once resolved: how long it lasted.")
    suspects: list[MessageSuspect] = Field(default=[], description="The top 3.")
    missing: list[str] = Field(default=[], description='"backend: reason" of each gap.')
    analysed: bool = Field(False, description="Whether a report exists yet.")
    incident_url: str = ""
    dashboard_url: str | None = None
    graphs: list[str] = Field(default=[], description="URLs of the report's graphs (PNG).")
    app: MessageApp | None = None
    grafana: GrafanaDetails | None = None
    silence_url: str | None = None
    mesh_url: str | None = None

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"
