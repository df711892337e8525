"""A Slack test server: incoming webhooks and the Web API's chat.postMessage / chat.update, as
Slack answers them (../shared/contracts/chat-and-git/NOTES.md).

Web API errors are HTTP 200 with {"ok": false, "error": code}; webhook errors are plain text
with a status; rate limiting is 429 with Retry-After on both. Requests are checked as Slack
would: the bearer token, JSON bodies, a known channel, text or blocks, at most 50 blocks and
3,000 characters per section text.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MAX_BLOCKS = 50
MAX_SECTION = 3000


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)


class FakeSlack:
    def __init__(self, *, token: str = "xoxb-test", channels: tuple[str, ...] = ("C0INCIDENTS",)):
        self.token = token
        self.channels = set(channels)
        self.messages: list[Posted] = []
        self.webhook_posts: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # statuses to answer next, one per request
        self.rate_limit_next = 0
        self.error_next: list[str] = []  # Web API error codes to answer next
        self.stall_s = 0.0  # hold the answer of a successful post this long (after storing it)
        self._ts = (f"1767225600.{n:06d}" for n in itertools.count(1))
        self.app = web.Application()
        self.app.router.add_post("/services/{a}/{b}/{c}", self.webhook)
        self.app.router.add_post("/api/chat.postMessage", self.post_message)
        self.app.router.add_post("/api/chat.update", self.update)

    # --- helpers for tests ---------------------------------------------------------------

    def top_level(self) -> list[Posted]:
        return [m for m in self.messages if m.thread_ts is None]

    def replies(self, ts: str) -> list[Posted]:
        return [m for m in self.messages if m.thread_ts == ts]

    # --- checks ------------------------------------------------------------------------------

    def _injected(self) -> web.Response | None:
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        if self.fail_next:
            return web.Response(status=self.fail_next.pop(0), text="service_unavailable")
        return None

    @staticmethod
    def _blocks_error(body: dict[str, Any]) -> str | None:
        if not body.get("text") and not body.get("blocks"):
            return "no_text"
        blocks = body.get("blocks") or []
        if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
            return "invalid_blocks"
        for block in blocks:
            text = (block.get("text") or {}).get("text", "")
            if block.get("type") == "section" and not 0 < len(text) <= MAX_SECTION:
                return "invalid_blocks"
        return None

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        if not request.content_type.startswith("application/json"):
            return web.json_response({"ok": False, "error": "invalid_post_type"})
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_json"})
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "json_not_object"})
        return body

    def _auth_error(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return web.json_response({"ok": False, "error": "not_authed"})
        if header != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return None

    # --- endpoints ---------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        if (injected := self._injected()) is not None:
            return injected
        if request.content_type != "application/json":
            return web.Response(status=400, text="invalid_payload")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if (error := self._blocks_error(body)) is not None:
            return web.Response(status=400, text=error)
        self.webhook_posts.append(body)
        return web.Response(text="ok")

    async def post_message(self, request: web.Request) -> web.Response:
        if (injected := self._injected()) is not None:
            return injected
        if (denied := self._auth_error(request)) is not None:
            return denied
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        if self.error_next:
            return web.json_response({"ok": False, "error": self.error_next.pop(0)})
        if body.get("channel") not in self.channels:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if (error := self._blocks_error(body)) is not None:
            return web.json_response({"ok": False, "error": error})
        thread = body.get("thread_ts")
        if thread is not None and not any(m.ts == thread for m in self.messages):
            return web.json_response({"ok": False, "error": "thread_not_found"})
        ts = next(self._ts)
        posted = Posted(body["channel"], ts, body.get("text", ""), body.get("blocks", []), thread)
        self.messages.append(posted)
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        return web.json_response(
            {"ok": True, "channel": posted.channel, "ts": ts, "message": {"text": posted.text}}
        )

    async def update(self, request: web.Request) -> web.Response:
        if (injected := self._injected()) is not None:
            return injected
        if (denied := self._auth_error(request)) is not None:
            return denied
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        if (error := self._blocks_error(body)) is not None:
            return web.json_response({"ok": False, "error": error})
        found = next(
            (
                m
                for m in self.messages
                if m.channel == body.get("channel") and m.ts == body.get("ts")
            ),
            None,
        )
        if found is None:
            return web.json_response({"ok": False, "error": "message_not_found"})
        found.edits.append({"text": found.text, "blocks": found.blocks})
        found.text, found.blocks = body.get("text", ""), body.get("blocks", [])
        return web.json_response(
            {"ok": True, "channel": found.channel, "ts": found.ts, "text": found.text}
        )
