"""Reports and messages written by earlier releases still load, show on the incident page,
serve through the API and render in the sinks: stored rows are never migrated, so every
shape a release ever wrote is read by today's models (models/report.py, models/message.py).

The bodies below are what those releases wrote, field for field, reconstructed from the code
of the commit named beside each (`git show <commit>:correlator/pipeline.py`, the report's
`return {...}` and `analysis/report.py`'s `suspect_json`/`finding_json`; for the message,
`sinks/message.py`'s `incident_message`). SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from sqlalchemy import insert

from correlator.models.message import Message
from correlator.models.report import Report
from correlator.sinks import discord, github, mattermost, slack, teams
from correlator.sinks.annotations import annotation
from correlator.sinks.message import incident_message
from correlator.store.schema import reports
from correlator.web.state import STORE
from tests.support.openapi import documented_get
from tests.support.payloads import alert, payload

WINDOWS = {
    "baseline_start": "2026-11-26T02:59:00Z",
    "baseline_end": "2026-11-26T03:54:00Z",
    "incident_start": "2026-11-26T03:54:00Z",
    "incident_end": "2026-11-26T04:04:00Z",
    "onset": "2026-11-26T03:59:53Z",
}
EVIDENCE = {
    "kind": "metric",
    "signal": "error_ratio",
    "detail": "error_ratio rose from 0.1% to 12%",
    "score": 9.41,
    "before": 0.001,
    "after": 0.12,
    "unit": "ratio",
    "change_time": "2026-11-26T03:58:30Z",
    "query": 'sum(rate(http_requests_total{service="postgres",code=~"5.."}[1m]))',
    "samples": [],
    "trace_ids": [],
    "links": {"explore": "https://grafana.example/explore?panes=x"},
}
# 0e8bf17 (2026-11-26), the first stored report: no changes, series, analysed_for, app or
# inputs; suspects without confidence or weak.
FIRST = {
    "incident_id": 1,
    "generated_at": "2026-11-26T04:00:05.512345Z",
    "status": "partial",
    "windows": WINDOWS,
    "scope": {"alerting": ["api"], "services": ["api", "postgres"]},
    "suspects": [
        {
            "rank": 1,
            "service": "postgres",
            "score": 0.8712,
            "reason": "error_ratio rose from 0.1% to 12% before api",
            "change_time": "2026-11-26T03:58:30Z",
            "caused_by": [],
            "affects": ["api"],
            "evidence": [EVIDENCE],
        },
        {
            "rank": 2,
            "service": "api",
            "score": 0.31,
            "reason": "latency rose after postgres",
            "change_time": None,
            "caused_by": ["postgres"],
            "affects": [],
            "evidence": [
                {
                    **EVIDENCE,
                    "kind": "log",
                    "signal": "timeout <*>",
                    "before": 0,
                    "after": 40,
                    "detail": "new log template: timeout <*>",
                    "unit": "lines",
                    "samples": ["timeout talking to postgres"],
                    "links": {},
                },
            ],
        },
    ],
    "missing": [{"backend": "jaeger", "what": "everything", "reason": "not configured"}],
    "notes": [],
    "timings_ms": {"metrics": 120.4, "logs": 80.1, "total": 310.9},
}
# 822a5da (2026-11-26): the report of a correlation that failed, before changes and series.
FAILED = {
    "incident_id": 1,
    "generated_at": "2026-11-26T04:00:05Z",
    "status": "partial",
    "windows": None,
    "scope": {"alerting": [], "services": []},
    "suspects": [],
    "missing": [
        {"backend": "analysis", "what": "everything", "reason": "KeyError: 'service'"},
    ],
    "notes": ["the correlation failed; see the service log for the stack trace"],
    "timings_ms": {},
}
# 873079a (2026-11-30): changes (c3f2738), series (c6011b3) and analysed_for; still no
# confidence or weak (3dc5ad8) nor app and inputs (81fd63c).
SHARED = {
    **copy.deepcopy(FIRST),
    "status": "complete",
    "missing": [],
    "changes": [
        {"service": "postgres", "revision": "0123456789abcdef0123456789abcdef01234567",
         "deployed_at": "2026-11-26T03:52:00Z", "source": "annotation",
         "repo": "https://github.com/shop/postgres", "minutes_before_alert": 7.9},
        {"service": "api", "revision": None, "deployed_at": None, "source": "ReplicaSet",
         "repo": None, "minutes_before_alert": None},
    ],
    "series": [
        {"title": "postgres: error_ratio", "service": "postgres", "signal": "error_ratio",
         "unit": "ratio", "change_time": "2026-11-26T03:58:30Z",
         "points": [["2026-11-26T03:50:00Z", 0.001], ["2026-11-26T03:55:00Z", 0.002],
                    ["2026-11-26T04:00:00Z", 0.12], ["2026-11-26T04:03:00Z", 0.13]]},
    ],
    "analysed_for": 1,
}  # fmt: skip
# Written by a later release than this one: what this release does not know is kept.
NEWER = {
    **copy.deepcopy(SHARED),
    "explanations": {"postgres": "a lock storm"},
    "suspects": [{**SHARED["suspects"][0], "confidence": 0.9, "weak": False, "tier": "strong"}],
    "app": {"name": "shop/api", "team": "payments", "owner": "ana"},
    "inputs": {"kinds": ["metrics", "logs"]},
}
# This release's own report, every field set.
CURRENT = {
    **copy.deepcopy(SHARED),
    "suspects": [{**s, "confidence": 0.9, "weak": False} for s in SHARED["suspects"]],
    "app": {"name": "shop/api", "team": "payments"},
    "inputs": {"kinds": ["metrics", "logs", "traces"]},
}
# a9a3b64 (2026-11-26): the first outbox message, before app, graphs, dashboard_url, grafana,
# silence_url and mesh_url.
OLD_MESSAGE = {
    "incident_id": 1, "title": "HighErrorRate", "status": "resolved", "severity": "page",
    "namespace": "shop", "summary": "api is failing", "runbook_url": "https://runbooks.example/x",
    "alerts_firing": 0, "alerts_total": 1, "started_at": "2026-11-26T03:59:53Z",
    "resolved_at": "2026-11-26T04:20:00Z", "duration": "20 min 7 s",
    "suspects": [{"service": "postgres", "reason": "error_ratio rose",
                  "evidence": [{"detail": "error_ratio rose from 0.1% to 12%",
                                "links": {"explore": "https://grafana.example/explore?x"}}]}],
    "missing": ["jaeger: not configured"], "analysed": True,
    "incident_url": "https://correlator.example/incidents/1",
}  # fmt: skip


async def _incident_with(client: Any, body: dict[str, Any]) -> int:
    """An incident whose stored report is `body`, written as the old release wrote it (the
    row, not through today's model)."""
    group = payload([alert("f1", labels={"service": "api"})], group_key=f"old-{uuid.uuid4()}")
    answer = await client.post("/api/v1/alerts", json=group)
    assert answer.status == 200, await answer.text()
    incident_id = int((await answer.json())["incident_id"])
    stored = {**body, "incident_id": incident_id}
    if "analysed_for" in stored:
        stored["analysed_for"] = incident_id
    store = client.server.app[STORE]
    now = store.clock()
    await store.write(
        lambda c: c.execute(
            insert(reports).values(
                incident_id=incident_id,
                status=body["status"],
                body=stored,
                notification_id=None,
                created_at=now,
                updated_at=now,
            )
        )
    )
    return incident_id


async def test_every_stored_shape_loads_shows_and_renders(app_client: Any) -> None:
    client = await app_client(queue={"workers": 0})
    store = client.server.app[STORE]
    for body in (FIRST, FAILED, SHARED, NEWER, CURRENT):
        incident_id = await _incident_with(client, body)
        detail = await store.get_incident(incident_id)
        assert detail is not None and isinstance(detail.report, Report)
        report = detail.report
        assert report.incident_id == incident_id and report.owner == incident_id
        assert [s.service for s in report.suspects] == [s["service"] for s in body["suspects"]]
        assert [m.backend for m in report.missing] == [m["backend"] for m in body["missing"]]
        assert len(report.series) == len(body.get("series", []))
        # The API serves the upgraded report: every field today's has, the old values kept.
        served = (await documented_get(client, f"/api/v1/incidents/{incident_id}"))["report"]
        assert {"changes", "series", "timings_ms", "notes"} <= served.keys()
        for suspect, old in zip(served["suspects"], body["suspects"], strict=True):
            assert {k: suspect[k] for k in old} == json.loads(json.dumps(old))
            assert "confidence" in suspect and "weak" in suspect
        assert ("analysed_for" in served) == ("analysed_for" in body)
        # The incident page shows it.
        page = await client.get(f"/incidents/{incident_id}")
        assert page.status == 200
        html = await page.text()
        for suspect in body["suspects"]:
            assert suspect["service"] in html and suspect["reason"] in html
        for missing in body["missing"]:
            assert missing["reason"].replace("'", "&#39;") in html
        for number in range(len(report.series)):
            graph = await client.get(f"/api/v1/incidents/{incident_id}/graphs/{number}.png")
            assert graph.status == 200 and (await graph.read()).startswith(b"\x89PNG")
        # And every sink renders the message made of it, after the outbox's JSON round trip.
        made = incident_message(detail, report, public_url="https://correlator.example")
        message = Message.model_validate(json.loads(json.dumps(made.model_dump(mode="json"))))
        assert message == made
        _renders(message, [s["service"] for s in body["suspects"]][:3])


def test_a_newer_release_s_fields_are_kept_and_served_back() -> None:
    report = Report.model_validate(NEWER)
    assert report.suspects[0].confidence == 0.9
    assert report.app is not None and report.app.name == "shop/api"
    dumped = report.model_dump(mode="json")
    assert dumped["explanations"] == {"postgres": "a lock storm"}
    assert dumped["suspects"][0]["tier"] == "strong" and dumped["app"]["owner"] == "ana"


def test_a_suspect_without_a_rank_takes_its_place_and_a_status_follows_what_was_missing() -> None:
    body = copy.deepcopy(FIRST)
    del body["status"]
    for suspect in body["suspects"]:
        del suspect["rank"]
    report = Report.model_validate(body)
    assert [s.rank for s in report.suspects] == [1, 2]
    assert report.status == "partial"  # jaeger was missing


async def test_an_unreadable_body_is_a_partial_report_saying_so(app_client: Any) -> None:
    client = await app_client(queue={"workers": 0})
    incident_id = await _incident_with(client, {**FIRST, "suspects": "not a list"})
    detail = await client.server.app[STORE].get_incident(incident_id)
    assert detail is not None and detail.report is not None
    assert detail.report.status == "partial" and detail.report.suspects == []
    assert [(m.backend, m.what) for m in detail.report.missing] == [("store", "report")]
    assert (await client.get(f"/incidents/{incident_id}")).status == 200


def test_a_message_an_earlier_release_left_in_the_outbox_renders_everywhere() -> None:
    message = Message.model_validate(OLD_MESSAGE)
    assert message.app is None and message.graphs == [] and message.silence_url is None
    _renders(message, ["postgres"])
    assert annotation(message)["timeEnd"] > annotation(message)["time"]


def _renders(message: Message, services: list[str]) -> None:
    """Every renderer shows the message's title and its suspects."""
    rendered = {
        "slack": json.dumps(slack.blocks(message)) + slack.fallback(message),
        "teams": json.dumps(teams.teams_card(message)),
        "mattermost": json.dumps(mattermost.mattermost_post(message)),
        "discord": discord.discord_post(message)["content"],
        "github": github.markdown(message),
        "annotation": annotation(message)["text"],
    }
    for platform, text in rendered.items():
        assert message.title in text, platform
        for service in services[:1] if platform == "annotation" else services:
            assert service in text, (platform, service)
