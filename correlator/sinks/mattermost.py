"""Mattermost: an incoming webhook, which cannot edit: the incident's first message and one
when it resolves, as a Slack-style attachment with Markdown text."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from correlator.models.message import Message
from correlator.settings.base import SinkSettingsBase
from correlator.sinks import escape
from correlator.sinks.message import responder_links
from correlator.sinks.posted import PostOnceSink, heading, suspect_lines
from correlator.sinks.registry import register


class MattermostSinkSettings(SinkSettingsBase):
    type: Literal["mattermost"]
    url: SecretStr = Field(description="Incoming webhook URL (a secret).")


@register(MattermostSinkSettings)
def build(spec: MattermostSinkSettings) -> PostOnceSink:
    return PostOnceSink(spec.name, url=spec.url.get_secret_value(), render=mattermost_post)


def mattermost_post(message: Message) -> dict[str, Any]:
    e = escape.markdown
    color = "#d62728" if message.status == "firing" else "#2ca02c"
    text = "\n".join([message.summary and e(message.summary), *suspect_lines(message)])
    # The attachment's title links the page; the other links close its (Markdown) text.
    links = " · ".join(escape.markdown_link(t, u) for t, u in responder_links(message)[1:])
    fields = [
        {"short": True, "title": "Alerts firing",
         "value": f"{message.alerts_firing} of {message.alerts_total}"},
    ]  # fmt: skip
    if message.namespace:
        fields.append(
            {
                "short": True,
                "title": "Namespace",
                "value": escape.markdown_name(message.namespace),
            }
        )
    if message.missing:
        fields.append({"short": False, "title": "Missing", "value": e("; ".join(message.missing))})
    title = heading(message, escape.markdown_name)
    return {
        "text": title,
        "attachments": [
            {
                "fallback": escape.truncate(title, 300),
                "color": color,
                "text": escape.truncate(text.strip() or "No suspects yet.", 7000 - len(links))
                + ("\n" + links if links else ""),
                "fields": fields,
                "title": "Incident page",
                "title_link": message.incident_url,
            }
        ],
    }
