"""Notifications: the sinks and the outbox that delivers to them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeAlias, Union

from pydantic import Field, model_validator

from correlator.settings.base import SinkSettingsBase, _Group
from correlator.sinks.registry import kinds

# Each sink module defines its settings and registers them (correlator/sinks/registry.py);
# `notify.sinks` takes any of them, told apart by `type`.
if TYPE_CHECKING:
    SinkSettings: TypeAlias = SinkSettingsBase
else:
    SinkSettings = Annotated[
        Union[tuple(kind.settings for kind in kinds().values())],  # noqa: UP007
        Field(discriminator="type"),
    ]


class NotifySettings(_Group):
    """Where developers hear about incidents: chat and webhooks, through a durable outbox."""

    sinks: list[SinkSettings] = Field(
        default_factory=list, description="Sinks (YAML list; see docs/concepts/notifications.md)."
    )
    deliverers: int = Field(1, ge=0, le=16, description="Concurrent outbox consumers (0: none).")
    lease_s: float = Field(
        60.0,
        gt=0,
        description="A send under way renews its lease every third of this; a consumer that "
        "dies holding it is taken over by another after this.",
    )
    max_attempts: int = Field(12, ge=1, description="Attempts before a delivery is given up.")
    retry_base_s: float = Field(2.0, gt=0, description="First retry delay; doubles, with jitter.")
    retry_max_s: float = Field(600.0, gt=0, description="Longest retry delay.")

    @model_validator(mode="after")
    def _unique_names(self) -> NotifySettings:
        names = [sink.name for sink in self.sinks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sink names must be unique: {', '.join(duplicates)}")
        return self
