"""Discord: a channel webhook (`POST {url}` with `{"content": …}`), which this sink does not
edit: the incident's first message and one when it resolves, in Discord's Markdown, within its
2,000 characters. `allowed_mentions` is empty, so nothing in a message pings anyone."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from correlator.models.message import Message
from correlator.settings.base import SinkSettingsBase
from correlator.sinks import escape
from correlator.sinks.message import responder_links
from correlator.sinks.posted import PostOnceSink, heading, suspect_lines
from correlator.sinks.registry import register

MAX_CONTENT = 2000


class DiscordSinkSettings(SinkSettingsBase):
    type: Literal["discord"]
    url: SecretStr = Field(description="Channel webhook URL (a secret).")


@register(DiscordSinkSettings)
def build(spec: DiscordSinkSettings) -> PostOnceSink:
    return PostOnceSink(spec.name, url=spec.url.get_secret_value(), render=discord_post)


def discord_post(message: Message) -> dict[str, Any]:
    """The title, the facts, the summary and the suspects, whole lines while they fit; the
    links always close it."""
    facts = f"{message.alerts_firing} of {message.alerts_total} alerts firing"
    if message.namespace:
        facts += f" in namespace {escape.markdown_name(message.namespace)}"
    lines = [f"**{heading(message, escape.markdown_name)}**", facts]
    if message.summary:
        lines.append(escape.markdown(message.summary))
    lines += suspect_lines(message)
    if message.missing:
        lines.append("Missing: " + "; ".join(escape.markdown(m) for m in message.missing))
    links = " · ".join(escape.markdown_link(t, u) for t, u in responder_links(message))
    shown: list[str] = []
    for line in lines:
        if len("\n".join([*shown, line, "…", links])) > MAX_CONTENT:
            shown.append("…")
            break
        shown.append(line)
    return {"content": "\n".join([*shown, links]), "allowed_mentions": {"parse": []}}
