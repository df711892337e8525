"""Hostile and broken webhook input: a precise 4xx, nothing stored half-way, never a 5xx.

A 503 is the one 5xx the intake gives, and only when the store cannot write: Alertmanager
then retries, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.databases import write_lock
from tests.support.payloads import alert, payload, recorded

VALID = recorded("webhook-v4-firing-am0.25.json")


def mutate(path: str, value: Any) -> bytes:
    """VALID with one field replaced (or removed when value is ...)."""
    body = json.loads(json.dumps(VALID))
    target = body
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is ...:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return json.dumps(body).encode()


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("empty body", b"", 400, "empty"),
    ("not JSON", b"alert!", 400, "not valid JSON"),
    ("truncated JSON", json.dumps(VALID).encode()[:-5], 400, "not valid JSON"),
    ("invalid UTF-8", b'{"version": "\xff"}', 400, "not valid JSON"),
    ("lone surrogate", b'{"version": "\\ud800"}', 400, "not valid JSON"),
    ("JSON array", b"[]", 422, "(body)"),
    ("JSON null", b"null", 422, "(body)"),
    ("wrong version", mutate("version", "3"), 422, "version"),
    ("numeric version", mutate("version", 4), 422, "version"),
    ("missing version", mutate("version", ...), 422, "version"),
    ("missing receiver", mutate("receiver", ...), 422, "receiver"),
    ("empty receiver", mutate("receiver", ""), 422, "receiver"),
    ("missing groupKey", mutate("groupKey", ...), 422, "groupKey"),
    ("bad status", mutate("status", "exploding"), 422, "status"),
    ("empty alerts", mutate("alerts", []), 422, "alerts"),
    ("alerts not a list", mutate("alerts", {"0": {}}), 422, "alerts"),
    (
        "label value a number",
        mutate("alerts.0.labels.severity", 3),
        422,
        "alerts[0].labels.severity",
    ),
    ("labels a list", mutate("alerts.1.labels", ["a"]), 422, "alerts[1].labels"),
    ("missing fingerprint", mutate("alerts.0.fingerprint", ...), 422, "alerts[0].fingerprint"),
    ("empty fingerprint", mutate("alerts.0.fingerprint", ""), 422, "alerts[0].fingerprint"),
    ("huge fingerprint", mutate("alerts.0.fingerprint", "f" * 129), 422, "alerts[0].fingerprint"),
    ("missing startsAt", mutate("alerts.0.startsAt", ...), 422, "alerts[0].startsAt"),
    ("zero startsAt", mutate("alerts.0.startsAt", "0001-01-01T00:00:00Z"), 422, "startsAt"),
    ("unparsable startsAt", mutate("alerts.0.startsAt", "yesterday"), 422, "startsAt"),
    ("naive startsAt", mutate("alerts.0.startsAt", "2026-11-26T03:59:53"), 422, "startsAt"),
    (
        "startsAt out of range",
        mutate("alerts.0.startsAt", "0001-01-01T00:00:00+05:00"),
        422,
        "startsAt",
    ),
    ("bad endsAt", mutate("alerts.0.endsAt", "2026-13-01T00:00:00Z"), 422, "endsAt"),
    ("negative truncatedAlerts", mutate("truncatedAlerts", -1), 422, "truncatedAlerts"),
    ("alert status wrong", mutate("alerts.0.status", "ok"), 422, "alerts[0].status"),
]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
async def test_bad_body_gets_a_precise_4xx_and_stores_nothing(
    app_client: Any, body: bytes, status: int, needle: str
) -> None:
    client = await app_client()
    response = await client.post(
        "/api/v1/alerts", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == status
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["status"] == status
    assert needle in problem["detail"]
    assert (await (await client.get("/api/v1/incidents")).json())["items"] == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_wrong_content_type_is_415(app_client: Any, content_type: str) -> None:
    client = await app_client()
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/api/v1/alerts", data=json.dumps(VALID), headers=headers)
    assert response.status == 415
    assert "application/json" in (await response.json())["detail"]


async def test_huge_truncated_count_is_kept_as_at_least_the_largest_count(app_client: Any) -> None:
    client = await app_client()
    response = await client.post("/api/v1/alerts", json={**VALID, "truncatedAlerts": 2**64 - 1})
    assert response.status == 200
    incident = await (await client.get((await response.json())["incident_url"])).json()
    assert incident["truncated_alerts"] == 2**31 - 1
    assert incident["alerts_total"] == 2


async def test_json_with_a_charset_parameter_is_accepted(app_client: Any) -> None:
    client = await app_client()
    response = await client.post(
        "/api/v1/alerts",
        data=json.dumps(VALID),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 200


async def test_body_over_the_limit_is_413_and_says_how_to_fix_it(app_client: Any) -> None:
    client = await app_client(server={"max_body_bytes": 4096})
    big = payload([alert(f"{i:016x}") for i in range(100)])
    response = await client.post("/api/v1/alerts", json=big)
    assert response.status == 413
    detail = (await response.json())["detail"]
    assert "4096" in detail and "max_alerts" in detail
    assert (await (await client.get("/api/v1/incidents")).json())["items"] == []


async def test_ten_thousand_alerts_are_stored_whole_when_the_limit_allows(app_client: Any) -> None:
    client = await app_client(server={"max_body_bytes": 16 * 1024 * 1024})
    many = [
        alert(f"{i:016x}", labels={"alertname": "Flood", "pod": f"p{i}"}) for i in range(10_000)
    ]
    response = await client.post("/api/v1/alerts", json=payload(many))
    assert response.status == 200
    incident = await (await client.get((await response.json())["incident_url"])).json()
    assert incident["alerts_total"] == 10_000 and len(incident["alerts"]) == 10_000


async def test_unicode_and_control_characters_are_stored_exactly(app_client: Any) -> None:
    client = await app_client()
    labels = {"alertname": "Ünïcode ☃", "evil": "\x00\x07\u2028<script>@channel", "📛": "名前"}
    annotations = {"summary": "line1\nline2\r\n\t\u202e", "description": '\\"}{'}
    body = payload([alert("u", labels=labels, annotations=annotations)])
    response = await client.post("/api/v1/alerts", json=body)
    assert response.status == 200
    incident = await (await client.get((await response.json())["incident_url"])).json()
    assert incident["alerts"][0]["labels"] == labels
    assert incident["alerts"][0]["annotations"] == annotations


async def test_store_that_cannot_write_gets_503_and_stores_nothing(
    app_client: Any, database_url: str
) -> None:
    client = await app_client(database={"busy_timeout_ms": 200})
    async with write_lock(database_url):
        response = await client.post("/api/v1/alerts", json=VALID)
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert "retry" in (await response.json())["detail"]
    # The lock is gone: the same notification (Alertmanager's retry) is stored once.
    assert (await client.post("/api/v1/alerts", json=VALID)).status == 200
    listing = await (await client.get("/api/v1/incidents")).json()
    assert [i["notification_count"] for i in listing["items"]] == [1]


async def test_concurrent_notifications_share_commits_and_all_are_stored(app_client: Any) -> None:
    client = await app_client()
    bodies = [payload([alert("a")], group_key=f"c{i}") for i in range(60)]
    responses = await asyncio.gather(*(client.post("/api/v1/alerts", json=b) for b in bodies))
    assert [r.status for r in responses] == [200] * 60
    listing = await (await client.get("/api/v1/incidents?limit=100")).json()
    assert len(listing["items"]) == 60


# Property: whatever the body, the answer is 200 (stored whole) or a 4xx (nothing stored).
# Valid payloads are generated and then, half of the time, broken in one way that Alertmanager
# never would: so both branches run on every run (a random body is valid once in hundreds).
label_text = st.text(st.characters(codec="utf-8"), max_size=20)
plain_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
timestamps = st.sampled_from(
    ["2026-11-26T03:59:53Z", "2026-11-26T03:59:53.123456789+02:00", "9999-12-31T23:59:59+01:00"]
)
alert_strategy = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]),
        "labels": st.dictionaries(label_text, label_text, max_size=4),
        "annotations": st.dictionaries(label_text, label_text, max_size=2),
        "startsAt": timestamps,
        "endsAt": st.sampled_from(["0001-01-01T00:00:00Z", "2026-11-26T05:00:00Z"]),
        "generatorURL": plain_text,
        "fingerprint": st.text(
            st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=128
        ),
    }
)
body_strategy = st.fixed_dictionaries(
    {
        "version": st.just("4"),
        "receiver": plain_text.filter(bool),
        "status": st.sampled_from(["firing", "resolved"]),
        "alerts": st.lists(alert_strategy, min_size=1, max_size=4),
        "groupLabels": st.dictionaries(label_text, label_text, max_size=2),
        "commonLabels": st.dictionaries(label_text, label_text, max_size=2),
        "commonAnnotations": st.dictionaries(label_text, label_text, max_size=2),
        "externalURL": plain_text,
        "groupKey": plain_text.filter(bool),
        "truncatedAlerts": st.integers(min_value=0, max_value=2**70),
    }
)
# One way to break a valid body each: (what, how).
BREAKAGES: list[tuple[str, Any]] = [
    ("no version", lambda b: b.pop("version")),
    ("version 5", lambda b: b.update(version="5")),
    ("version as a number", lambda b: b.update(version=4)),
    ("no receiver", lambda b: b.pop("receiver")),
    ("empty receiver", lambda b: b.update(receiver="")),
    ("status 1", lambda b: b.update(status=1)),
    ("no alerts", lambda b: b.update(alerts=[])),
    ("no groupKey", lambda b: b.pop("groupKey")),
    ("negative truncatedAlerts", lambda b: b.update(truncatedAlerts=-1)),
    ("an alert status", lambda b: b["alerts"][0].update(status="weird")),
    ("an unset startsAt", lambda b: b["alerts"][0].update(startsAt="0001-01-01T00:00:00Z")),
    ("a startsAt that is no time", lambda b: b["alerts"][0].update(startsAt="nope")),
    ("a startsAt past 9999", lambda b: b["alerts"][0].update(startsAt="9999-12-31T23:59:59-01:00")),
    ("an empty fingerprint", lambda b: b["alerts"][0].update(fingerprint="")),
    ("a label that is a number", lambda b: b["alerts"][0]["labels"].update(n=1)),
    ("a NUL in the receiver", lambda b: b.update(receiver=b["receiver"] + "\x00")),
]


@pytest.fixture
async def shared_client(app_client: Any) -> Any:
    """One application for every example of a property test (examples share fixtures)."""
    return await app_client()


async def totals(client: Any) -> tuple[int, int]:
    text = await (await client.get("/api/v1/incidents?limit=500")).text()
    items = json.loads(text)["items"]
    return len(items), sum(item["alerts_total"] for item in items)


@settings(max_examples=75, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=body_strategy,
    breakage=st.none() | st.sampled_from(BREAKAGES),
)
async def test_no_generated_payload_gets_a_5xx_or_a_partial_write(
    shared_client: Any, body: dict[str, Any], breakage: tuple[str, Any] | None
) -> None:
    body["groupKey"] += f"#{uuid.uuid4()}"  # every run of an example is its own group
    if breakage is not None:
        breakage[1](body)
    before = await totals(shared_client)
    response = await shared_client.post("/api/v1/alerts", json=body)
    if breakage is not None:
        assert response.status in (400, 422), (breakage[0], await response.text())
        assert await totals(shared_client) == before
        return
    assert response.status == 200, await response.text()
    stored = await (await shared_client.get((await response.json())["incident_url"])).json()
    identities = {(a["fingerprint"], a["startsAt"]) for a in body["alerts"]}
    assert len(stored["alerts"]) == len(identities)
    assert stored["receiver"] == body["receiver"]
    assert await totals(shared_client) == (before[0] + 1, before[1] + len(identities))
