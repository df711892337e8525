"""Slack: a bot token (chat.postMessage, then chat.update in place and a thread reply on
resolve) or an incoming webhook (one message per incident, and one when it resolves: a
webhook cannot edit).

Block Kit limits are kept: at most 50 blocks, at most 3,000 characters in a section's text,
the notification `text` short. Every piece of text from an alert or a report goes through
`escape.slack` (free text) or `escape.slack_name` (a name: one code span, copied out whole).
429 answers carry Retry-After, which the outbox honours.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from correlator.models.message import Message
from correlator.settings.base import SinkSettingsBase
from correlator.sinks import escape
from correlator.sinks.base import (
    HttpSink,
    Remember,
    Sink,
    SinkGone,
    SinkRejected,
    SinkRetry,
    json_body,
    request,
)
from correlator.sinks.message import evidence_links, responder_links
from correlator.sinks.posted import PostOnceSink
from correlator.sinks.registry import register

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_TEXT = 3000
_RETRY_CODES = {
    "ratelimited",
    "rate_limited",
    "request_timeout",
    "fatal_error",
    "service_unavailable",
}
_GONE_CODES = {"message_not_found", "cant_update_message", "edit_window_closed"}
ICONS = {"firing": ":red_circle:", "resolved": ":large_green_circle:"}


class SlackSinkSettings(SinkSettingsBase):
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


@register(SlackSinkSettings)
def build(spec: SlackSinkSettings) -> Sink:
    if spec.webhook_url is not None:
        url = spec.webhook_url.get_secret_value()
        return PostOnceSink(spec.name, url=url, render=webhook_post)
    assert spec.token is not None and spec.channel is not None  # the settings check it
    return SlackSink(
        spec.name,
        token=spec.token.get_secret_value(),
        channel=spec.channel,
        api_url=spec.api_url,
        channel_from_app=spec.channel_from_app,
    )


def blocks(message: Message) -> list[dict[str, Any]]:
    e, name = escape.slack, escape.slack_name
    status = message.status
    title = f"{ICONS.get(status, '')} *{status.upper()}* {name(message.title)}"
    if message.severity:
        title += f" ({name(message.severity)})"
    facts = [f"{message.alerts_firing} of {message.alerts_total} alerts firing"]
    if message.namespace:
        facts.append(f"namespace {name(message.namespace)}")
    if message.duration:
        facts.append(f"resolved after {message.duration}")
    out: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": _mrkdwn(escape.truncate(title, MAX_SECTION)),
        },
        {"type": "context", "elements": [_mrkdwn(" · ".join(facts))]},
    ]
    if message.summary:
        text = escape.truncate(e(message.summary), MAX_SECTION)
        out.append({"type": "section", "text": _mrkdwn(text)})
    tail: list[dict[str, Any]] = []
    if message.missing:
        missing = "Missing: " + "; ".join(e(m) for m in message.missing)
        tail.append(
            {
                "type": "context",
                "elements": [_mrkdwn(escape.truncate(missing, MAX_SECTION))],
            }
        )
    links = [f"<{_url(url)}|{title}>" for title, url in responder_links(message)]
    # Whole links only: a link cut in half would not open.
    while len(" · ".join(links)) > MAX_SECTION and len(links) > 1:
        links.pop()
    tail.append({"type": "context", "elements": [_mrkdwn(" · ".join(links))]})
    if message.suspects:
        out.append({"type": "divider"})
        # The links to the page come last and always fit: suspects give way to them.
        room = MAX_BLOCKS - len(out) - len(tail)
        suspects = message.suspects
        shown = suspects if len(suspects) <= room else suspects[: room - 1]
        for rank, suspect in enumerate(shown, 1):
            lines = [f"*{rank}. {name(suspect.service)}*: {e(suspect.reason)}"]
            for evidence in suspect.evidence:
                opens = "".join(
                    f" · <{_url(url)}|{title}>" for title, url in evidence_links(evidence)
                )
                lines.append(f"• {e(evidence.detail)}{opens}")
            text = escape.truncate("\n".join(lines), MAX_SECTION)
            out.append({"type": "section", "text": _mrkdwn(text)})
        if len(shown) < len(suspects):
            out.append(_plain(f"… and {len(suspects) - len(shown)} more suspects on the page."))
    elif message.analysed:
        out.append(_plain("No service's telemetry left its baseline."))
    else:
        out.append(_plain("Correlating metrics, logs and traces…"))
    return out + tail


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object, verbatim: Slack turns no bare domain or channel name into a link
    (what the text links, it links explicitly with <url|label>)."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(escape.slack(text))}


def _url(url: str) -> str:
    """A URL inside <url|label>: only `|`, `<`, `>` would break out of it."""
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")


def fallback(message: Message) -> str:
    """The notification text (shown where blocks are not)."""
    text = f"{message.status.upper()}: {escape.slack_name(message.title)}"
    if message.suspects:
        text += f" · likely cause: {escape.slack_name(message.suspects[0].service)}"
    return escape.truncate(text, MAX_TEXT)


def webhook_post(message: Message) -> dict[str, Any]:
    """The body of an incoming-webhook post (sent through `PostOnceSink`: it cannot edit)."""
    return {"text": fallback(message), "blocks": blocks(message)}


class SlackSink(HttpSink):
    """A bot token: chat.postMessage once, chat.update for every change, a thread reply on
    resolve. (An incoming webhook is a `PostOnceSink` with `webhook_post`.)"""

    def __init__(
        self,
        name: str,
        *,
        token: str,
        channel: str,
        api_url: str = "https://slack.com/api",
        channel_from_app: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self._token = token
        self._channel = channel
        self._channel_from_app = channel_from_app
        self._api_url = api_url.rstrip("/")

    async def _api(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await request(
            self.name,
            self._http,
            "POST",
            f"{self._api_url}/{method}",
            json=body,
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json; charset=utf-8",
            },
        )
        answer = json_body(self.name, response)
        if not isinstance(answer, dict):
            raise SinkRetry(f"{self.name}: {method} answered {type(answer).__name__}")
        if not answer.get("ok"):
            code = str(answer.get("error", "unknown_error"))
            if code in _RETRY_CODES:
                raise SinkRetry(f"{self.name}: {method}: {code}")
            if code in _GONE_CODES:
                raise SinkGone(f"{self.name}: {method}: {code}")
            raise SinkRejected(f"{self.name}: {method}: {code}")
        return answer

    async def send(
        self, document: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        message = Message.model_validate(document)  # the outbox's JSON
        # The app's own channel (WebApplication spec.alerting.chatChannel), else the sink's.
        app_channel = message.app.chat_channel if message.app is not None else None
        channel = app_channel if self._channel_from_app and app_channel else self._channel
        body = {"channel": channel, "text": fallback(message), "blocks": blocks(message)}
        if remote.get("ts"):
            try:
                await self._api(
                    "chat.update", {**body, "channel": remote["channel"], "ts": remote["ts"]}
                )
            except SinkGone:
                remote = {}  # deleted or too old to edit: post it again
        if not remote.get("ts"):
            answer = await self._api(
                "chat.postMessage", {**body, "unfurl_links": False, "unfurl_media": False}
            )
            remote = {"channel": str(answer.get("channel", channel)), "ts": str(answer["ts"])}
            await remember(remote)
        if message.resolved and not remote.get("resolved_reply"):
            reply = f"Resolved after {message.duration or 'a while'}."
            await self._api(
                "chat.postMessage",
                {"channel": remote["channel"], "thread_ts": remote["ts"], "text": reply},
            )
            remote = {**remote, "resolved_reply": True}
        return remote
