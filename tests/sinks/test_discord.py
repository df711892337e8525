"""Discord channel webhooks: a message when the incident starts and one when it resolves,
inert content that pings no one, and Discord's 2,000 characters."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from correlator.models.message import Message
from correlator.sinks.discord import MAX_CONTENT, discord_post
from tests.sinks.inert import outside_markdown_code
from tests.sinks.test_delivery import GROUP, HOSTILE, LABELS, _post, _settled, until
from tests.support.payloads import alert, payload
from tests.support.servers import served


class FakeDiscord:
    """A channel webhook: 204 for content within 2,000 characters, else 400 as Discord does."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/api/webhooks/{id}/{token}", self.post)

    async def post(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not 0 < len(body.get("content", "")) <= 2000:
            return web.json_response({"code": 50035, "message": "Invalid Form Body"}, status=400)
        self.posts.append(body)
        return web.Response(status=204)


async def test_discord_hears_of_start_and_resolve_only_and_pings_no_one(app_client: Any) -> None:
    discord = FakeDiscord()
    hostile = {**LABELS, "alertname": HOSTILE}
    common = {"commonLabels": hostile, "commonAnnotations": {"summary": HOSTILE}}
    first = alert("f1", labels=hostile, annotations={"summary": HOSTILE})
    async with served(discord.app) as url:
        sink = {"type": "discord", "name": "dc", "url": f"{url}/api/webhooks/1/secret-token"}
        client = await app_client(notify={"sinks": [sink], "retry_base_s": 0.05})
        incident_id = await _post(client, payload([first], group_key=GROUP, **common))
        await until(lambda: discord.posts, "the first post")
        second = alert("f2", labels={**hostile, "pod": "p2"})
        await _post(client, payload([first, second], group_key=GROUP, **common))
        await _settled(client, incident_id)
        assert len(discord.posts) == 1
        resolved = {**first, "status": "resolved", "endsAt": "2026-11-26T04:20:00Z"}
        await _post(client, payload([resolved], group_key=GROUP, **common))
        await until(lambda: len(discord.posts) == 2, "the resolve post")
    assert discord.posts[0]["content"].startswith("**FIRING")
    assert discord.posts[1]["content"].startswith("**RESOLVED")
    assert all(post["allowed_mentions"] == {"parse": []} for post in discord.posts)
    rendered = outside_markdown_code(json.dumps(discord.posts, ensure_ascii=False))
    assert "evil" in json.dumps(discord.posts)
    for active in ("@here", "http://evil", "[a](", "<!channel>", "*bold*", "<@U123>"):
        assert active not in rendered, active


def test_a_long_message_keeps_whole_lines_and_its_links() -> None:
    suspects = [
        {"service": f"svc{i}", "reason": "r" * 500, "evidence": [{"detail": "d" * 300}]}
        for i in range(10)
    ]
    message = {
        "incident_id": 1, "title": "T", "status": "firing", "severity": "page", "namespace": "",
        "summary": "s" * 900, "runbook_url": "", "alerts_firing": 1, "alerts_total": 1,
        "started_at": None, "resolved_at": None, "duration": None, "suspects": suspects,
        "missing": [], "analysed": True, "incident_url": "https://c.example/incidents/1",
    }  # fmt: skip
    content = discord_post(Message.model_validate(message))["content"]
    assert len(content) <= MAX_CONTENT
    assert "**1. svc0**: " + "r" * 500 in content and "svc9" not in content
    assert content.endswith("(<https://c.example/incidents/1>)")
    assert "…\n[" in content
