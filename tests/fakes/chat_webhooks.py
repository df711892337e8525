"""Incoming-webhook test servers for Microsoft Teams (Workflows) and Mattermost.

Teams Workflows accepts only Adaptive Cards in a `message` envelope and answers 202; a body
over 28 KB is refused with 413. Mattermost's incoming webhook answers 200 `ok` and needs
`text` or `attachments`; a bad body is a 400 with a JSON error.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

TEAMS_MAX_BYTES = 28 * 1024
ADAPTIVE = "application/vnd.microsoft.card.adaptive"


class FakeTeams:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.app = web.Application(client_max_size=1024**2)
        self.app.router.add_post("/workflows/{flow}", self.post)

    async def post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > TEAMS_MAX_BYTES:
            return web.Response(status=413, text="Request Entity Too Large")
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": {"code": "InvalidRequestContent"}}, status=400)
        attachments = body.get("attachments") if isinstance(body, dict) else None
        if body.get("type") != "message" or not attachments:
            return web.json_response({"error": {"code": "InvalidRequestContent"}}, status=400)
        for attachment in attachments:
            content = attachment.get("content") or {}
            if attachment.get("contentType") != ADAPTIVE or content.get("type") != "AdaptiveCard":
                return web.json_response({"error": {"code": "InvalidRequestContent"}}, status=400)
        self.posts.append(body)
        return web.Response(status=202)

    def texts(self, index: int) -> list[str]:
        card = self.posts[index]["attachments"][0]["content"]
        return [
            block.get("text") or "".join(run.get("text", "") for run in block.get("inlines", []))
            for block in card["body"]
        ]


class FakeMattermost:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/hooks/{key}", self.post)

    async def post(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"id": "web.incoming_webhook.parse.app_error"}, status=400)
        if not isinstance(body, dict) or not (body.get("text") or body.get("attachments")):
            return web.json_response({"id": "web.incoming_webhook.text.app_error"}, status=400)
        self.posts.append(body)
        return web.Response(text="ok")
