"""Notifications: the sinks and the outbox that delivers to them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from correlator.settings.base import SinkSettingsBase as _Sink
from correlator.settings.base import _Group


class SlackSinkSettings(_Sink):
    type: Literal["slack"]
    token: SecretStr | None = Field(None, description="Bot token (xoxb-…), with channel.")
    channel: str | None = None
    channel_from_app: bool = Field(
        True, description="Post to the app's spec.alerting.chatChannel when it has one."
    )
    webhook_url: SecretStr | None = Field(None, description="Incoming webhook URL (a secret).")
    api_url: str = "https://slack.com/api"

    @model_validator(mode="after")
    def _one_way(self) -> SlackSinkSettings:
        if (self.token is None) == (self.webhook_url is None):
            raise ValueError(f"sink {self.name}: set exactly one of token and webhook_url")
        if self.token is not None and not self.channel:
            raise ValueError(f"sink {self.name}: a bot token needs a channel")
        return self


class WebhookSinkSettings(_Sink):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for the signature.")
    headers: dict[str, str] = Field(default_factory=dict)


class TeamsSinkSettings(_Sink):
    type: Literal["teams"]
    url: SecretStr = Field(description="Workflows webhook URL (a secret).")


class MattermostSinkSettings(_Sink):
    type: Literal["mattermost"]
    url: SecretStr = Field(description="Incoming webhook URL (a secret).")


class GitHubSinkSettings(_Sink):
    type: Literal["github"]
    token: SecretStr = Field(description="A token that may comment (fine-grained: pull requests "
                             "and contents, read and write).")  # fmt: skip
    api_url: str = Field(
        "https://api.github.com", description="GitHub Enterprise: https://HOST/api/v3"
    )
    web_host: str = Field("github.com", description="Host of the repository URLs it handles.")


class GitLabSinkSettings(_Sink):
    type: Literal["gitlab"]
    token: SecretStr = Field(description="A token with the api scope (PRIVATE-TOKEN).")
    api_url: str = Field(
        "https://gitlab.com/api/v4", description="Self-hosted: https://HOST/api/v4"
    )
    web_host: str = Field("gitlab.com", description="Host of the repository URLs it handles.")


class GrafanaSinkSettings(_Sink):
    type: Literal["grafana"]
    url: str = Field(pattern=r"^https?://", description="Grafana base URL.")
    token: SecretStr = Field(description="Service account token (annotations:write).")


SinkSettings = Annotated[
    SlackSinkSettings
    | WebhookSinkSettings
    | TeamsSinkSettings
    | MattermostSinkSettings
    | GitHubSinkSettings
    | GitLabSinkSettings
    | GrafanaSinkSettings,
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
