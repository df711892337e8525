"""Sinks that can only post (incoming webhooks of Slack, Teams Workflows, Mattermost and
Discord): the incident's first message, and one more when it resolves. Updates in between are
not sent; a platform that cannot edit would otherwise fill the channel with one message per
change. Also the Markdown pieces their messages share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from correlator.models.message import Message
from correlator.sinks import escape
from correlator.sinks.base import HttpSink, Remember, request
from correlator.sinks.message import evidence_links


class PostOnceSink(HttpSink):
    def __init__(
        self,
        name: str,
        *,
        url: str,
        render: Callable[[Message], dict[str, Any]],
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self._url = url
        self._render = render

    async def send(
        self, document: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        message = Message.model_validate(document)  # the outbox's JSON
        posted = set(remote.get("posted", []))
        status = message.status
        if posted and (status in posted or status != "resolved"):
            return remote
        await request(self.name, self._http, "POST", self._url, json=self._render(message))
        return {"posted": sorted(posted | {status})}


def suspect_lines(message: Message) -> list[str]:
    """The suspects and their evidence as a Markdown list."""
    e, name = escape.markdown, escape.markdown_name
    lines = []
    for rank, suspect in enumerate(message.suspects, 1):
        lines.append(f"**{rank}. {name(suspect.service)}**: {e(suspect.reason)}")
        for ev in suspect.evidence:
            opens = "".join(
                f" · {escape.markdown_link(title, url)}" for title, url in evidence_links(ev)
            )
            lines.append(f"- {e(ev.detail)}{opens}")
    return lines


def heading(message: Message, name: Callable[[str], str]) -> str:
    """STATUS: title (severity), each name through `name` (the platform's escape)."""
    text = f"{message.status.upper()}: {name(message.title)}"
    return text + (f" ({name(message.severity)})" if message.severity else "")
