"""Sinks: where developers hear about an incident. One module per platform, registered here."""

from __future__ import annotations

from correlator.settings import Settings
from correlator.settings.notify import (
    GitHubSinkSettings,
    GitLabSinkSettings,
    GrafanaSinkSettings,
    MattermostSinkSettings,
    SlackSinkSettings,
    TeamsSinkSettings,
    WebhookSinkSettings,
)
from correlator.sinks.annotations import GrafanaAnnotationSink
from correlator.sinks.base import Sink, SinkRejected, SinkRetry
from correlator.sinks.github import GitHubSink
from correlator.sinks.gitlab import GitLabSink
from correlator.sinks.posted import PostOnceSink, mattermost_post, teams_card
from correlator.sinks.slack import SlackSink, webhook_post
from correlator.sinks.webhook import WebhookSink

__all__ = ["Sink", "SinkRejected", "SinkRetry", "build_sinks"]


def build_sinks(settings: Settings) -> dict[str, Sink]:
    """The configured sinks by name (settings validation already named any misconfiguration)."""
    sinks: dict[str, Sink] = {}
    for spec in settings.notify.sinks:
        severities = frozenset(spec.severities)
        if isinstance(spec, SlackSinkSettings) and spec.webhook_url is not None:
            sinks[spec.name] = PostOnceSink(
                spec.name,
                url=spec.webhook_url.get_secret_value(),
                render=webhook_post,
                severities=severities,
            )
        elif isinstance(spec, SlackSinkSettings):
            assert spec.token is not None and spec.channel is not None  # the settings check it
            sinks[spec.name] = SlackSink(
                spec.name,
                token=spec.token.get_secret_value(),
                channel=spec.channel,
                api_url=spec.api_url,
                severities=severities,
                channel_from_app=spec.channel_from_app,
            )
        elif isinstance(spec, WebhookSinkSettings):
            sinks[spec.name] = WebhookSink(
                spec.name,
                url=spec.url,
                secret=spec.secret.get_secret_value() if spec.secret else None,
                headers=spec.headers,
                severities=severities,
            )
        elif isinstance(spec, TeamsSinkSettings | MattermostSinkSettings):
            render = teams_card if isinstance(spec, TeamsSinkSettings) else mattermost_post
            sinks[spec.name] = PostOnceSink(
                spec.name, url=spec.url.get_secret_value(), render=render, severities=severities
            )
        elif isinstance(spec, GitHubSinkSettings):
            sinks[spec.name] = GitHubSink(
                spec.name,
                token=spec.token.get_secret_value(),
                api_url=spec.api_url,
                web_host=spec.web_host,
                severities=severities,
            )
        elif isinstance(spec, GitLabSinkSettings):
            sinks[spec.name] = GitLabSink(
                spec.name,
                token=spec.token.get_secret_value(),
                api_url=spec.api_url,
                web_host=spec.web_host,
                severities=severities,
            )
        elif isinstance(spec, GrafanaSinkSettings):
            sinks[spec.name] = GrafanaAnnotationSink(
                spec.name, url=spec.url, token=spec.token.get_secret_value(), severities=severities
            )
        sinks[spec.name].teams = frozenset(spec.teams)
    return sinks
