"""Teams and Mattermost incoming webhooks: a message when the incident starts and one when it
resolves, inert content, and Teams' 28 KB limit."""

from __future__ import annotations

import json
from typing import Any

from correlator.models.message import Message
from correlator.sinks.teams import teams_card
from tests.fakes.chat_webhooks import TEAMS_MAX_BYTES, FakeMattermost, FakeTeams
from tests.sinks.inert import outside_markdown_code
from tests.sinks.test_delivery import GROUP, HOSTILE, LABELS, _post, _settled, until
from tests.support.payloads import alert, payload
from tests.support.servers import served


async def test_teams_and_mattermost_hear_of_start_and_resolve_only(app_client: Any) -> None:
    teams, mattermost = FakeTeams(), FakeMattermost()
    async with served(teams.app) as teams_url, served(mattermost.app) as mm_url:
        sinks = [
            {"type": "teams", "name": "teams", "url": f"{teams_url}/workflows/abc"},
            {"type": "mattermost", "name": "mm", "url": f"{mm_url}/hooks/xyz"},
        ]
        client = await app_client(notify={"sinks": sinks, "retry_base_s": 0.05})
        first = alert("f1", labels=LABELS)
        incident_id = await _post(client, payload([first], group_key=GROUP))
        await until(lambda: teams.posts and mattermost.posts, "both first posts")
        second = alert("f2", labels={**LABELS, "pod": "p2"})
        await _post(client, payload([first, second], group_key=GROUP))
        await _settled(client, incident_id)
        assert len(teams.posts) == 1 and len(mattermost.posts) == 1
        resolved = {**first, "status": "resolved", "endsAt": "2026-11-26T04:20:00Z"}
        await _post(client, payload([resolved], group_key=GROUP))
        await until(lambda: len(teams.posts) == 2 and len(mattermost.posts) == 2, "resolve posts")
    assert teams.texts(1)[0].startswith("RESOLVED")
    assert mattermost.posts[1]["text"].startswith("RESOLVED")


async def test_hostile_content_is_inert_in_teams_and_mattermost(app_client: Any) -> None:
    teams, mattermost = FakeTeams(), FakeMattermost()
    hostile = {**LABELS, "alertname": HOSTILE}
    body = payload(
        [alert("f1", labels=hostile, annotations={"summary": HOSTILE})],
        group_key=GROUP,
        commonLabels=hostile,
        commonAnnotations={"summary": HOSTILE},
    )
    async with served(teams.app) as teams_url, served(mattermost.app) as mm_url:
        sinks = [
            {"type": "teams", "name": "teams", "url": f"{teams_url}/workflows/abc"},
            {"type": "mattermost", "name": "mm", "url": f"{mm_url}/hooks/xyz"},
        ]
        client = await app_client(notify={"sinks": sinks})
        await _settled(client, await _post(client, body))
    card = teams.posts[0]["attachments"][0]["content"]
    assert {block["type"] for block in card["body"]} == {"RichTextBlock"}  # no Markdown
    assert "http://evil" not in json.dumps(card)  # a URL in a TextRun is defused
    rendered = outside_markdown_code(json.dumps(mattermost.posts, ensure_ascii=False))
    assert "evil" in json.dumps(mattermost.posts)
    for active in ("@here", "@channel", "http://evil", "[a](", "<!channel>", "*bold*", "<@U123>"):
        assert active not in rendered, active


def _message(evidence_chars: int) -> Message:
    suspects = [
        {
            "service": f"svc{i}",
            "reason": "r" * 2000,
            "evidence": [{"detail": "d" * evidence_chars, "links": {}} for _ in range(2)],
        }
        for i in range(3)
    ]
    return Message.model_validate({
        "incident_id": 1, "title": "T", "status": "firing", "severity": "page", "namespace": "",
        "summary": "s" * 3000, "runbook_url": "", "alerts_firing": 1, "alerts_total": 1,
        "started_at": None, "resolved_at": None, "duration": None, "suspects": suspects,
        "missing": [], "analysed": True, "incident_url": "https://c.example/incidents/1",
    })  # fmt: skip


def test_a_teams_card_is_shrunk_to_fit_28_kb() -> None:
    small = teams_card(_message(100))
    assert "d" * 100 in json.dumps(small)  # fits whole: nothing dropped
    large = teams_card(_message(6000))
    size = len(json.dumps(large).encode())
    assert size <= TEAMS_MAX_BYTES
    assert "svc2" in json.dumps(large) and "d" * 6000 not in json.dumps(large)
