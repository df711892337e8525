"""Microsoft Teams: a Workflows webhook ("Post to a channel when a webhook request is
received"), which cannot edit: the incident's first message and one when it resolves, as an
Adaptive Card within Teams' 28 KB."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, SecretStr

from correlator.models.message import Message
from correlator.settings.base import SinkSettingsBase
from correlator.sinks import escape
from correlator.sinks.base import SinkRejected
from correlator.sinks.message import evidence_links, responder_links
from correlator.sinks.posted import PostOnceSink
from correlator.sinks.registry import register

TEAMS_MAX_BYTES = 28 * 1024 - 512  # Teams refuses messages over 28 KB; keep a margin


class TeamsSinkSettings(SinkSettingsBase):
    type: Literal["teams"]
    url: SecretStr = Field(description="Workflows webhook URL (a secret).")


@register(TeamsSinkSettings)
def build(spec: TeamsSinkSettings) -> PostOnceSink:
    return PostOnceSink(spec.name, url=spec.url.get_secret_value(), render=teams_card)


def _runs(*runs: dict[str, Any] | str) -> dict[str, Any]:
    """A RichTextBlock: its TextRuns parse no Markdown, so alert text shows as typed."""
    inlines = [
        {"type": "TextRun", "text": run} if isinstance(run, str) else {"type": "TextRun", **run}
        for run in runs
    ]
    return {"type": "RichTextBlock", "inlines": inlines}


def _code(text: str, **style: Any) -> dict[str, Any]:
    return {"text": escape.text_run(text), "fontType": "Monospace", **style}


def teams_card(message: Message, *, max_bytes: int = TEAMS_MAX_BYTES) -> dict[str, Any]:
    """An Adaptive Card in the Workflows webhook envelope, shrunk to fit Teams' size limit:
    evidence goes first, then suspects' reasons, then the summary. Alert and report text is in
    TextRuns (no Markdown: nothing formats, mentions or links; names copy out unchanged)."""
    t = escape.text_run
    for level in range(4):
        head: list[dict[str, Any] | str] = [
            {"text": f"{message.status.upper()}: ", "weight": "Bolder", "size": "Medium"},
            _code(message.title, weight="Bolder", size="Medium"),
        ]
        if message.severity:
            head += [" (", _code(message.severity), ")"]
        facts = f"{message.alerts_firing} of {message.alerts_total} alerts firing"
        if message.duration:
            facts += f", resolved after {message.duration}"
        where: list[dict[str, Any] | str] = []
        if message.namespace:
            where = [{"text": " · namespace ", "isSubtle": True}, _code(message.namespace)]
        body: list[dict[str, Any]] = [
            _runs(*head),
            _runs({"text": facts, "isSubtle": True}, *where),
        ]
        if message.summary and level < 3:
            body.append(_runs(t(message.summary)))
        for rank, suspect in enumerate(message.suspects, 1):
            line: list[dict[str, Any] | str] = [
                {"text": f"{rank}. ", "weight": "Bolder"},
                _code(suspect.service, weight="Bolder"),
            ]
            if level < 2 and suspect.reason:
                line.append(": " + t(suspect.reason))
            body.append(_runs(*line))
            for ev in suspect.evidence if level < 1 else []:
                body.append(_runs("• " + t(ev.detail)))
        if message.missing:
            missing = "Missing: " + "; ".join(t(m) for m in message.missing)
            body.append(_runs({"text": missing, "isSubtle": True}))
        card = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body,
                        "actions": _actions(message),
                    },
                }
            ],
        }
        if len(json.dumps(card).encode()) <= max_bytes:
            return card
    raise SinkRejected("the Teams card does not fit 28 KB even without evidence")


def _actions(message: Message) -> list[dict[str, str]]:
    """Buttons: the responder's links, and Explore on the first suspect's evidence."""
    links = responder_links(message)
    for suspect in message.suspects[:1]:
        for ev in suspect.evidence:
            links += [(f"{t} ({suspect.service[:40]})", u) for t, u in evidence_links(ev)][:1]
    return [{"type": "Action.OpenUrl", "title": title, "url": url} for title, url in links]
