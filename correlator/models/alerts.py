"""The Alertmanager webhook payload (version 4), validated where it enters.

Alertmanager sends every field; unknown fields that newer releases add (e.g.
`notification_reason` in 0.32) are ignored. Timestamps are RFC 3339 with an offset; the zero
time `0001-01-01T00:00:00Z` that Alertmanager sends as a firing alert's `endsAt` means "unset".
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
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


def incident_key(receiver: str, group_key: str) -> str:
    digest = hashlib.sha256()
    digest.update(receiver.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(group_key.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
