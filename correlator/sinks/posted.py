"""Sinks that can only post (incoming webhooks of Slack, Teams Workflows and Mattermost): the
incident's first message, and one more when it resolves. Updates in between are not sent; a
platform that cannot edit would otherwise fill the channel with one message per change."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from correlator.sinks import escape
from correlator.sinks.base import Remember, SinkRejected, request
from correlator.sinks.message import evidence_links, responder_links

TEAMS_MAX_BYTES = 28 * 1024 - 512  # Teams refuses messages over 28 KB; keep a margin


class PostOnceSink:
    def __init__(
        self,
        name: str,
        *,
        url: str,
        render: Callable[[dict[str, Any]], dict[str, Any]],
        severities: frozenset[str] = frozenset(),
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.severities = severities
        self.teams: frozenset[str] = frozenset()  # set by build_sinks
        self._url = url
        self._render = render
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(
        self, message: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        posted = set(remote.get("posted", []))
        status = message["status"]
        if posted and (status in posted or status != "resolved"):
            return remote
        await request(self.name, self._http, "POST", self._url, json=self._render(message))
        return {"posted": sorted(posted | {status})}


def _suspect_lines(message: dict[str, Any]) -> list[str]:
    e, name = escape.markdown, escape.markdown_name
    lines = []
    for rank, suspect in enumerate(message["suspects"], 1):
        lines.append(f"**{rank}. {name(suspect['service'])}**: {e(suspect['reason'])}")
        for ev in suspect["evidence"]:
            opens = "".join(
                f" · {escape.markdown_link(title, url)}" for title, url in evidence_links(ev)
            )
            lines.append(f"- {e(ev['detail'])}{opens}")
    return lines


def _title(message: dict[str, Any], name: Callable[[str], str]) -> str:
    title = f"{message['status'].upper()}: {name(message['title'])}"
    return title + (f" ({name(message['severity'])})" if message["severity"] else "")


def _runs(*runs: dict[str, Any] | str) -> dict[str, Any]:
    """A RichTextBlock: its TextRuns parse no Markdown, so alert text shows as typed."""
    inlines = [
        {"type": "TextRun", "text": run} if isinstance(run, str) else {"type": "TextRun", **run}
        for run in runs
    ]
    return {"type": "RichTextBlock", "inlines": inlines}


def _code(text: str, **style: Any) -> dict[str, Any]:
    return {"text": escape.text_run(text), "fontType": "Monospace", **style}


def teams_card(message: dict[str, Any], *, max_bytes: int = TEAMS_MAX_BYTES) -> dict[str, Any]:
    """An Adaptive Card in the Workflows webhook envelope, shrunk to fit Teams' size limit:
    evidence goes first, then suspects' reasons, then the summary. Alert and report text is in
    TextRuns (no Markdown: nothing formats, mentions or links; names copy out unchanged)."""
    t = escape.text_run
    for level in range(4):
        head: list[dict[str, Any] | str] = [
            {"text": f"{message['status'].upper()}: ", "weight": "Bolder", "size": "Medium"},
            _code(message["title"], weight="Bolder", size="Medium"),
        ]
        if message["severity"]:
            head += [" (", _code(message["severity"]), ")"]
        facts = f"{message['alerts_firing']} of {message['alerts_total']} alerts firing"
        if message["duration"]:
            facts += f", resolved after {message['duration']}"
        where: list[dict[str, Any] | str] = []
        if message["namespace"]:
            where = [{"text": " · namespace ", "isSubtle": True}, _code(message["namespace"])]
        body: list[dict[str, Any]] = [
            _runs(*head),
            _runs({"text": facts, "isSubtle": True}, *where),
        ]
        if message["summary"] and level < 3:
            body.append(_runs(t(message["summary"])))
        for rank, suspect in enumerate(message["suspects"], 1):
            line: list[dict[str, Any] | str] = [
                {"text": f"{rank}. ", "weight": "Bolder"},
                _code(suspect["service"], weight="Bolder"),
            ]
            if level < 2 and suspect["reason"]:
                line.append(": " + t(suspect["reason"]))
            body.append(_runs(*line))
            for ev in suspect["evidence"] if level < 1 else []:
                body.append(_runs("• " + t(ev["detail"])))
        if message["missing"]:
            missing = "Missing: " + "; ".join(t(m) for m in message["missing"])
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


def _actions(message: dict[str, Any]) -> list[dict[str, str]]:
    """Buttons: the responder's links, and Explore on the first suspect's evidence."""
    links = responder_links(message)
    for suspect in message["suspects"][:1]:
        for ev in suspect["evidence"]:
            links += [(f"{t} ({suspect['service'][:40]})", u) for t, u in evidence_links(ev)][:1]
    return [{"type": "Action.OpenUrl", "title": title, "url": url} for title, url in links]


def mattermost_post(message: dict[str, Any]) -> dict[str, Any]:
    e = escape.markdown
    color = "#d62728" if message["status"] == "firing" else "#2ca02c"
    text = "\n".join([message["summary"] and e(message["summary"]), *_suspect_lines(message)])
    # The attachment's title links the page; the other links close its (Markdown) text.
    links = " · ".join(escape.markdown_link(t, u) for t, u in responder_links(message)[1:])
    fields = [
        {"short": True, "title": "Alerts firing",
         "value": f"{message['alerts_firing']} of {message['alerts_total']}"},
    ]  # fmt: skip
    if message["namespace"]:
        fields.append(
            {
                "short": True,
                "title": "Namespace",
                "value": escape.markdown_name(message["namespace"]),
            }
        )
    if message["missing"]:
        fields.append(
            {"short": False, "title": "Missing", "value": e("; ".join(message["missing"]))}
        )
    title = _title(message, escape.markdown_name)
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
                "title_link": message["incident_url"],
            }
        ],
    }
