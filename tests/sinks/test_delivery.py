"""Notifications through the real app and outbox, to the Slack test server and a webhook
receiver: one message per incident, edited as it evolves, delivered once through failures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.slack import FakeSlack
from tests.sinks.inert import outside_slack_code
from tests.support.openapi import webhook_body
from tests.support.payloads import alert, payload
from tests.support.servers import served

GROUP = '{}:{alertname="CheckoutErrors"}'
LABELS = {"alertname": "CheckoutErrors", "namespace": "shop", "app": "checkout", "severity": "page"}
HOSTILE = "<!channel> @here <@U123> *bold* _x_ `code` http://evil.example [a](http://evil) &amp;"


class Receiver:
    """A webhook endpoint that checks the signature and keeps what it got."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[tuple[CIMultiDict[str], dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if request.headers.get("X-Correlator-Signature") != expected:
            return web.Response(status=401, text="bad signature")
        self.received.append((CIMultiDict(request.headers), json.loads(body)))
        return web.Response(status=204)


async def until(predicate: Callable[[], object], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _sinks(slack_url: str, hook_url: str | None = None) -> dict[str, Any]:
    sinks: list[dict[str, Any]] = [
        {
            "type": "slack",
            "name": "team-shop",
            "token": "xoxb-test",
            "channel": "C0INCIDENTS",
            "api_url": f"{slack_url}/api",
        }
    ]
    if hook_url:
        sinks.append({"type": "webhook", "name": "hook", "url": hook_url, "secret": "s3cret"})
    return {
        "sinks": sinks,
        "retry_base_s": 0.05,
        "retry_max_s": 0.2,
    }


def _firing(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return payload(list(alerts), group_key=GROUP, **extra)


async def _post(client: Any, body: dict[str, Any]) -> int:
    answer = await client.post("/api/v1/alerts", json=body)
    assert answer.status == 200, await answer.text()
    return int((await answer.json())["incident_id"])


async def _settled(client: Any, incident_id: int) -> dict[str, Any]:
    """The incident once its work is done and its deliveries are not pending."""
    detail: dict[str, Any] = {}

    async def fetch() -> bool:
        detail.update(await (await client.get(f"/api/v1/incidents/{incident_id}")).json())
        work_done = all(w["state"] == "done" for w in detail["work_items"])
        return work_done and all(
            d["state"] in ("delivered", "failed") for d in detail["deliveries"]
        )

    deadline = time.monotonic() + 20
    while not await fetch():
        assert time.monotonic() < deadline, detail
        await asyncio.sleep(0.05)
    return detail


async def test_one_message_per_incident_edited_as_it_evolves(app_client: Any) -> None:
    slack, receiver = FakeSlack(), Receiver("s3cret")
    async with served(slack.app) as slack_url, served(receiver.app) as hook_url:
        client = await app_client(notify=_sinks(slack_url, f"{hook_url}/hook"))
        first = alert("f1", labels=LABELS)
        incident_id = await _post(client, _firing(first))
        await until(lambda: slack.top_level(), "the first Slack message")
        await _settled(client, incident_id)
        # The same group again with nothing new: nothing is sent.
        await _post(client, _firing(first))
        await _settled(client, incident_id)
        assert len(slack.messages) == 1 and not slack.messages[0].edits
        assert len(receiver.received) == 1
        # A new alert in the group: the same message is edited.
        second = alert("f2", labels={**LABELS, "pod": "checkout-1"})
        await _post(client, _firing(first, second))
        await until(lambda: slack.messages[0].edits, "an edit")
        assert "2 of 2 alerts firing" in json.dumps(slack.messages[0].blocks)
        # Resolved: edited to resolved, with a reply in its thread; nothing new is posted.
        done = {**first, "status": "resolved", "endsAt": "2026-11-26T04:20:00Z"}
        done2 = {**second, "status": "resolved", "endsAt": "2026-11-26T04:20:00Z"}
        await _post(client, _firing(done, done2))
        await until(lambda: slack.replies(slack.messages[0].ts), "the resolve reply")
        detail = await _settled(client, incident_id)
    (message,) = slack.top_level()
    assert message.text.startswith("RESOLVED")
    assert "Resolved after" in slack.replies(message.ts)[0].text
    assert [d["state"] for d in detail["deliveries"]] == ["delivered", "delivered"]
    events = [headers["X-Correlator-Event"] for headers, _ in receiver.received]
    assert events == ["incident.firing", "incident.updated", "incident.resolved"]
    ids = [headers["X-Correlator-Delivery"] for headers, _ in receiver.received]
    assert len(set(ids)) == 3
    assert receiver.received[-1][1]["message"]["status"] == "resolved"
    for _, body in receiver.received:  # what the API description says a receiver gets
        webhook_body(body)


async def test_a_sink_that_is_down_gets_the_message_once_it_recovers(app_client: Any) -> None:
    slack = FakeSlack()
    slack.fail_next = [503, 503, 502]
    slack.rate_limit_next = 1
    async with served(slack.app) as slack_url:
        client = await app_client(notify=_sinks(slack_url))
        incident_id = await _post(client, _firing(alert("f1", labels=LABELS)))
        await until(lambda: slack.top_level(), "delivery after recovery")
        detail = await _settled(client, incident_id)
    # The 429's Retry-After is honoured by the one retry policy of every outbound call
    # (tests/outbound/test_client.py::test_a_retry_never_comes_sooner_than_the_retry_after).
    assert slack.rate_limit_next == 0
    assert len(slack.messages) == 1
    assert detail["deliveries"][0]["state"] == "delivered"
    metrics = await (await client.get("/metrics")).text()
    assert 'correlator_sink_deliveries_total{outcome="retried",sink="team-shop"} 4.0' in metrics


async def test_a_permanent_refusal_is_recorded_not_retried(app_client: Any) -> None:
    slack = FakeSlack(token="xoxb-other")  # our token is not valid there
    async with served(slack.app) as slack_url:
        client = await app_client(notify=_sinks(slack_url))
        incident_id = await _post(client, _firing(alert("f1", labels=LABELS)))
        detail = await _settled(client, incident_id)
        metrics = await (await client.get("/metrics")).text()
    (delivery,) = detail["deliveries"]
    assert delivery["state"] == "failed" and delivery["attempts"] == 1
    assert "invalid_auth" in delivery["last_error"]
    assert 'correlator_sink_deliveries_total{outcome="given_up",sink="team-shop"} 1.0' in metrics
    assert slack.messages == []


async def test_hostile_alert_content_is_inert_in_slack(app_client: Any) -> None:
    slack = FakeSlack()
    hostile = {**LABELS, "alertname": HOSTILE, "namespace": HOSTILE, "severity": HOSTILE}
    body = _firing(
        alert("f1", labels=hostile, annotations={"summary": HOSTILE}),
        commonLabels=hostile,
        commonAnnotations={"summary": HOSTILE},
        groupLabels={"alertname": HOSTILE},
    )
    async with served(slack.app) as slack_url:
        client = await app_client(notify=_sinks(slack_url))
        incident_id = await _post(client, body)
        await _settled(client, incident_id)
    (message,) = slack.messages
    texts = [message.text] + [t for block in message.blocks for t in _texts(block)]
    rendered = "\n".join(texts)
    assert "evil" in rendered and "`*bold*`" in rendered  # the content is shown as typed…
    live = outside_slack_code(rendered)
    for active in ("<!channel>", "<!here", "<@U123>", "@here", "@channel", "http://evil", "*bold*"):
        assert active not in live, active  # …but nothing in it is live
    assert "<http" not in live  # the only links are ours
    assert "`&amp;amp;`" in rendered  # the literal "&amp;" is shown as typed


def _texts(block: dict[str, Any]) -> list[str]:
    found = []
    if isinstance(block.get("text"), dict):
        found.append(block["text"]["text"])
    for element in block.get("elements", []):
        found.append(element.get("text", ""))
    return found


async def test_slack_incoming_webhook_posts_on_firing_and_on_resolve(app_client: Any) -> None:
    slack = FakeSlack()
    async with served(slack.app) as slack_url:
        hook = {"type": "slack", "name": "hook", "webhook_url": f"{slack_url}/services/T1/B1/x"}
        client = await app_client(notify={"sinks": [hook], "retry_base_s": 0.05})
        first = alert("f1", labels=LABELS)
        incident_id = await _post(client, _firing(first))
        await until(lambda: slack.webhook_posts, "the webhook post")
        await _post(client, _firing(first, alert("f2", labels={**LABELS, "pod": "p"})))
        await _settled(client, incident_id)
        assert len(slack.webhook_posts) == 1  # a webhook cannot edit: updates are not posted
        resolved = {**first, "status": "resolved", "endsAt": "2026-11-26T04:20:00Z"}
        await _post(client, _firing(resolved))
        await until(lambda: len(slack.webhook_posts) == 2, "the resolve post")
    assert slack.webhook_posts[1]["text"].startswith("RESOLVED")
