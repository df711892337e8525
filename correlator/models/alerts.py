"""The webhook payloads correlator accepts, validated where they enter: Alertmanager's
(version "4") and Grafana Alerting's (version "1", which also carries `orgId`).

Alertmanager sends every field; unknown fields that newer releases add (e.g.
`notification_reason` in 0.32) are ignored. Timestamps are RFC 3339 with an offset; the zero
time `0001-01-01T00:00:00Z` that Alertmanager sends as a firing alert's `endsAt` means "unset".
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

ZERO_TIME_YEAR = 1
TRUNCATED_ALERTS_MAX = 2**31 - 1  # what a database integer column holds


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is outside the representable range") from None


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL (SQLite can): refused here, the same on both stores,
    # rather than by one database. Labels and annotations are stored as escaped JSON and keep
    # it. Alertmanager never sends NUL in these fields.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Text = Annotated[str, AfterValidator(_no_nul)]
NonEmpty = Annotated[str, StringConstraints(min_length=1), AfterValidator(_no_nul)]
Fingerprint = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_no_nul)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class WebhookAlert(_Model):
    """One alert of a group, as Alertmanager sends it."""

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: UtcDatetime = Field(alias="startsAt")
    ends_at: UtcDatetime | None = Field(None, alias="endsAt")
    generator_url: Text = Field("", alias="generatorURL")
    fingerprint: Fingerprint

    @field_validator("starts_at")
    @classmethod
    def _starts_at_is_set(cls, value: datetime) -> datetime:
        if value.year == ZERO_TIME_YEAR:
            raise ValueError("startsAt must be set (got the zero time)")
        return value

    @field_validator("ends_at")
    @classmethod
    def _zero_ends_at_is_unset(cls, value: datetime | None) -> datetime | None:
        return None if value is not None and value.year == ZERO_TIME_YEAR else value

    @property
    def key(self) -> tuple[str, datetime]:
        """An alert's identity: one firing of one label set."""
        return (self.fingerprint, self.starts_at)

    @property
    def details(self) -> dict[str, Any] | None:
        """What the sender adds beyond Alertmanager's fields (None: nothing)."""
        return None


Url = Annotated[str, StringConstraints(max_length=8192), AfterValidator(_no_nul)]
# Grafana sends a value per expression refId; NaN and infinities arrive as JSON null or are
# absent, and a refId is a short user-chosen name.
RefId = Annotated[str, StringConstraints(min_length=1, max_length=190), AfterValidator(_no_nul)]


class GrafanaAlert(WebhookAlert):
    """One alert of a Grafana Alerting webhook: Alertmanager's fields, plus the values that
    fired it and links to silence it and to the dashboard and panel it belongs to."""

    values: dict[RefId, float | None] | None = None
    value_string: Text = Field("", alias="valueString")
    silence_url: Url = Field("", alias="silenceURL")
    dashboard_url: Url = Field("", alias="dashboardURL")
    panel_url: Url = Field("", alias="panelURL")
    image_url: Url = Field("", alias="imageURL")

    @property
    def details(self) -> dict[str, Any] | None:
        found = {
            "rule_url": self.generator_url,
            "values": self.values,
            "value_string": self.value_string,
            "silence_url": self.silence_url,
            "dashboard_url": self.dashboard_url,
            "panel_url": self.panel_url,
            "image_url": self.image_url,
        }
        return {name: value for name, value in found.items() if value}


class WebhookPayload(_Model):
    """A notification for one alert group (Alertmanager webhook, version "4")."""

    version: Literal["4"]
    receiver: NonEmpty
    status: AlertStatus
    alerts: list[WebhookAlert] = Field(min_length=1)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Text = Field("", alias="externalURL")
    group_key: NonEmpty = Field(alias="groupKey")
    truncated_alerts: int = Field(0, ge=0, alias="truncatedAlerts")

    @field_validator("truncated_alerts")
    @classmethod
    def _bounded_count(cls, value: int) -> int:
        # Alertmanager's count is a uint64; beyond 2**31-1 "at least that many" says it all,
        # and the group's alerts must not be refused for it.
        return min(value, TRUNCATED_ALERTS_MAX)

    @property
    def incident_key(self) -> str:
        """A fixed-size digest of (receiver, groupKey), the incident's identity."""
        return incident_key(self.receiver, self.group_key)

    def unique_alerts(self) -> list[WebhookAlert]:
        """The alerts with repeated identities collapsed, the last occurrence winning."""
        by_key = {alert.key: alert for alert in self.alerts}
        return list(by_key.values())


class GrafanaWebhookPayload(WebhookPayload):
    """A notification from Grafana Alerting's webhook contact point (version "1").

    Recognised by its version together with `orgId`, which Grafana always sends; stored as
    an Alertmanager notification is (Grafana's notifier is an Alertmanager). `title`, `state`
    and `message` are Grafana's rendered templates, kept only for what they say to a person.
    """

    # A Grafana notification is an Alertmanager one with a different version tag and richer
    # alerts; everything downstream takes it as a WebhookPayload.
    version: Literal["1"]  # type: ignore[assignment]
    alerts: list[GrafanaAlert] = Field(min_length=1)  # type: ignore[assignment]
    org_id: int = Field(alias="orgId", ge=0, le=2**63 - 1)
    title: Text = ""
    state: Text = ""
    message: Text = ""


AnyWebhookPayload = Annotated[
    WebhookPayload | GrafanaWebhookPayload, Field(discriminator="version")
]
ANY_WEBHOOK_PAYLOAD: TypeAdapter[WebhookPayload] = TypeAdapter(AnyWebhookPayload)


def parse_webhook(body: bytes | str) -> WebhookPayload:
    """The payload by its `version`: "4" is Alertmanager's (an `orgId` is ignored like any
    unknown field), "1" is Grafana Alerting's and must carry `orgId`; anything else is refused
    (pydantic's ValidationError)."""
    return ANY_WEBHOOK_PAYLOAD.validate_json(body)


def incident_key(receiver: str, group_key: str) -> str:
    digest = hashlib.sha256()
    digest.update(receiver.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(group_key.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
