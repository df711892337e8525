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
from correlator.sinks.message import grafana_links

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


def _suspect_lines(message: dict[str, Any], e: Callable[[str], str]) -> list[str]:
    lines = []
    for rank, suspect in enumerate(message["suspects"], 1):
        lines.append(f"**{rank}. {e(suspect['service'])}**: {e(suspect['reason'])}")
        lines += [f"- {e(ev['detail'])}" for ev in suspect["evidence"]]
    return lines


def _title(message: dict[str, Any], e: Callable[[str], str]) -> str:
    title = f"{message['status'].upper()}: {e(message['title'])}"
    return title + (f" ({e(message['severity'])})" if message["severity"] else "")


def teams_card(message: dict[str, Any], *, max_bytes: int = TEAMS_MAX_BYTES) -> dict[str, Any]:
    """An Adaptive Card in the Workflows webhook envelope, shrunk to fit Teams' size limit:
    evidence goes first, then suspects' reasons, then the summary."""
    e = escape.markdown
    for level in range(4):
        body: list[dict[str, Any]] = [
            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
             "text": _title(message, e)},
            {"type": "TextBlock", "isSubtle": True, "wrap": True,
             "text": f"{message['alerts_firing']} of {message['alerts_total']} alerts firing"
             + (f", resolved after {message['duration']}" if message["duration"] else "")},
        ]  # fmt: skip
        if message["summary"] and level < 3:
            body.append({"type": "TextBlock", "wrap": True, "text": e(message["summary"])})
        shrunk = [
            dict(s, evidence=s["evidence"] if level < 1 else [])
            | ({} if level < 2 else {"reason": ""})
            for s in message["suspects"]
        ]
        suspects = dict(message, suspects=shrunk)
        lines = _suspect_lines(suspects, e)
        if lines:
            body.append({"type": "TextBlock", "wrap": True, "text": "\n".join(lines)})
        if message["missing"]:
            missing = "Missing: " + "; ".join(e(m) for m in message["missing"])
            body.append({"type": "TextBlock", "wrap": True, "isSubtle": True, "text": missing})
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
    actions = [{"type": "Action.OpenUrl", "title": "Incident page", "url": message["incident_url"]}]
    if message.get("dashboard_url"):
        actions.append(
            {"type": "Action.OpenUrl", "title": "Dashboard", "url": message["dashboard_url"]}
        )
    actions += [
        {"type": "Action.OpenUrl", "title": title, "url": url}
        for title, url in grafana_links(message)
    ]
    return actions


def mattermost_post(message: dict[str, Any]) -> dict[str, Any]:
    e = escape.markdown
    color = "#d62728" if message["status"] == "firing" else "#2ca02c"
    text = "\n".join(
        [message["summary"] and e(message["summary"]), *_suspect_lines(message, e)]
    ).strip()
    fields = [
        {"short": True, "title": "Alerts firing",
         "value": f"{message['alerts_firing']} of {message['alerts_total']}"},
    ]  # fmt: skip
    if message["missing"]:
        fields.append(
            {"short": False, "title": "Missing", "value": e("; ".join(message["missing"]))}
        )
    return {
        "text": _title(message, e),
        "attachments": [
            {
                "fallback": escape.truncate(_title(message, e), 300),
                "color": color,
                "text": escape.truncate(text or "No suspects yet.", 7000),
                "fields": fields,
                "title": "Incident page",
                "title_link": message["incident_url"],
                "footer": f"Dashboard: {message['dashboard_url']}"
                if message.get("dashboard_url")
                else "",
            }
        ],
    }
