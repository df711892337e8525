"""Slack's Block Kit limits on a big report: at most 50 blocks and 3,000 characters a section,
and the links to the incident page survive whatever had to be cut."""

from __future__ import annotations

from typing import Any

from correlator.sinks.slack import SlackSink
from tests.fakes.slack import MAX_BLOCKS, MAX_SECTION, FakeSlack
from tests.support.servers import served


def _big_message() -> dict[str, Any]:
    evidence = [
        {"detail": f"error_ratio of route /v1/orders/{n} rose " + "x" * 300, "links": {}}
        for n in range(40)
    ]
    return {
        "incident_id": 7,
        "title": "CheckoutErrors " + "t" * 4000,
        "status": "firing",
        "severity": "page",
        "namespace": "shop",
        "summary": "s" * 5000,
        "runbook_url": "https://runbooks.example/checkout",
        "alerts_firing": 10_000,
        "alerts_total": 10_000,
        "duration": None,
        "suspects": [
            {"service": f"service-{n}", "reason": "r" * 500, "evidence": evidence}
            for n in range(80)
        ],
        "missing": [f"loki: timed out {n} " + "m" * 200 for n in range(50)],
        "analysed": True,
        "incident_url": "https://correlator.example/incidents/7",
        "dashboard_url": "https://grafana.example/d/x",
        "graphs": [f"https://correlator.example/g/{n}.png" for n in range(30)],
        "app": None,
    }


async def test_a_big_report_fits_slacks_limits_and_keeps_its_links() -> None:
    slack = FakeSlack()
    remembered: list[dict[str, Any]] = []

    async def remember(remote: dict[str, Any]) -> None:
        remembered.append(remote)

    async with served(slack.app) as url:
        sink = SlackSink("team", token=slack.token, channel="C0INCIDENTS", api_url=f"{url}/api")
        try:
            await sink.send(_big_message(), {}, remember)
        finally:
            await sink.close()
    (message,) = slack.messages  # accepted: the test server refuses what Slack refuses
    assert len(message.blocks) <= MAX_BLOCKS
    texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert all(0 < len(text) <= MAX_SECTION for text in texts)
    last = message.blocks[-1]["elements"][0]["text"]
    assert "Incident page" in last and "https://correlator.example/incidents/7" in last
    assert any("more suspects" in text for text in texts)
    assert remembered and remembered[0]["ts"]
