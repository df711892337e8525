"""The public HTTP interface, checked from outside through a real server and store."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.payloads import alert, payload, recorded

TOKEN = "t0ken-with-enough-entropy"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def post(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/api/v1/alerts", json=body, headers=headers or {})


async def test_stored_notification_is_acknowledged_with_its_incident(app_client: Any) -> None:
    client = await app_client()
    response = await post(client, recorded("webhook-v4-firing-am0.25.json"))
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "stored" and body["new_incident"] is True
    detail = await client.get(body["incident_url"])
    assert detail.status == 200
    incident = await detail.json()
    assert incident["status"] == "firing" and len(incident["alerts"]) == 2
    assert [entry["status"] for entry in incident["timeline"]] == ["firing"]


async def test_unknown_fields_from_newer_alertmanagers_are_accepted(app_client: Any) -> None:
    client = await app_client()
    body = recorded("webhook-v4-firing-am0.25.json")
    body["notification_reason"] = "repeat_interval"
    body["alerts"][0]["silencedBy"] = []
    response = await post(client, body)
    assert response.status == 200


@pytest.mark.parametrize("version", ["0.25", "0.35"])
async def test_each_alertmanager_versions_webhook_is_stored_and_resolved(
    app_client: Any, version: str
) -> None:
    """Recorded bodies, byte for byte: 0.35 adds `notification_reason` and `routeLabels`."""
    client = await app_client()
    firing = recorded(f"webhook-v4-firing-am{version}.json")
    assert ("notification_reason" in firing) is (version == "0.35")
    answer = await post(client, firing)
    assert answer.status == 200, await answer.text()
    url = (await answer.json())["incident_url"]
    incident = await (await client.get(url)).json()
    labels = firing["alerts"][0]["labels"]
    stored = {a["fingerprint"]: a for a in incident["alerts"]}
    assert stored.keys() == {a["fingerprint"] for a in firing["alerts"]}
    assert stored[firing["alerts"][0]["fingerprint"]]["labels"] == labels
    assert (await post(client, recorded(f"webhook-v4-resolved-am{version}.json"))).status == 200
    incident = await (await client.get(url)).json()
    assert incident["status"] == "resolved"
    assert [t["status"] for t in incident["timeline"]] == ["firing", "resolved"]


async def test_timeline_lists_every_notification(app_client: Any) -> None:
    client = await app_client()
    for name in ("webhook-v4-firing-am0.25.json",) * 2 + ("webhook-v4-resolved-am0.25.json",):
        assert (await post(client, recorded(name))).status == 200
    incident = await (await client.get("/api/v1/incidents/1")).json()
    assert [(t["status"], t["changed"]) for t in incident["timeline"]] == [
        ("firing", True),
        ("firing", False),
        ("resolved", True),
    ]
    assert incident["status"] == "resolved"


async def test_bearer_token_is_required_when_configured(app_client: Any) -> None:
    client = await app_client(auth={"bearer_token": TOKEN})
    body = recorded("webhook-v4-firing-am0.25.json")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ):
        response = await post(client, body, headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="correlator"'
        assert response.content_type == "application/problem+json"
        assert TOKEN not in await response.text()
    listing = await client.get("/api/v1/incidents", headers=BEARER)
    assert (await listing.json())["items"] == []  # nothing was stored
    assert (await post(client, body, BEARER)).status == 200
    assert (await client.get("/api/v1/incidents")).status == 401


async def test_basic_auth_is_required_when_configured(app_client: Any) -> None:
    client = await app_client(auth={"basic_username": "am", "basic_password": "pa:ss wörd"})
    body = recorded("webhook-v4-firing-am0.25.json")
    bad = [
        basic("am", "wrong"),
        basic("AM", "pa:ss wörd"),
        basic("am", ""),
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
    ]
    for headers in bad:
        response = await post(client, body, headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="correlator"')
    assert (await post(client, body, basic("am", "pa:ss wörd"))).status == 200


async def test_either_credential_works_when_both_are_configured(app_client: Any) -> None:
    client = await app_client(
        auth={"bearer_token": TOKEN, "basic_username": "am", "basic_password": "pw"}
    )
    body = recorded("webhook-v4-firing-am0.25.json")
    assert (await post(client, body, BEARER)).status == 200
    assert (await post(client, body, basic("am", "pw"))).status == 200
    response = await post(client, body)
    assert response.status == 401
    assert response.headers.getall("WWW-Authenticate") == [
        'Bearer realm="correlator"',
        'Basic realm="correlator", charset="UTF-8"',
    ]


async def test_health_readiness_and_metrics_stay_open(app_client: Any) -> None:
    client = await app_client(auth={"bearer_token": TOKEN})
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/metrics")).status == 200


async def test_metrics_report_requests_alerts_writes_queue_and_build(app_client: Any) -> None:
    client = await app_client(auth={"bearer_token": TOKEN}, queue={"workers": 0})
    await post(client, recorded("webhook-v4-firing-am0.25.json"), BEARER)
    await post(client, {"version": "4"}, BEARER)
    await post(client, {}, {"Authorization": "Bearer nope"})
    text = await (await client.get("/metrics")).text()
    expected = [
        'correlator_http_requests_total{method="POST",route="/api/v1/alerts",status="200"} 1.0',
        'correlator_http_requests_total{method="POST",route="/api/v1/alerts",status="422"} 1.0',
        'correlator_http_requests_total{method="POST",route="/api/v1/alerts",status="401"} 1.0',
        'correlator_alerts_received_total{status="firing"} 2.0',
        'correlator_webhook_notifications_total{outcome="rejected",reason="invalid"} 1.0',
        "correlator_store_write_duration_seconds_count 1.0",
        'correlator_work_queue_depth{state="pending"} 1.0',
        "correlator_build_info{",
    ]
    for line in expected:
        assert line in text, line
    assert TOKEN not in text


async def test_listing_filters_by_status_namespace_alertname_and_time(app_client: Any) -> None:
    client = await app_client()
    rows = [
        ("g1", "HighCPU", "shop", "firing", "2026-11-20T10:00:00Z"),
        ("g2", "HighCPU", "payments", "firing", "2026-11-21T10:00:00Z"),
        ("g3", "DiskFull", "shop", "resolved", "2026-11-22T10:00:00Z"),
    ]
    for key, name, namespace, status, starts in rows:
        ends = "2026-11-22T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
        labels = {"alertname": name, "namespace": namespace}
        body = payload(
            [alert(key, status=status, starts_at=starts, ends_at=ends, labels=labels)],
            group_key=key,
        )
        assert (await post(client, body)).status == 200

    async def keys(query: str) -> list[str]:
        response = await client.get(f"/api/v1/incidents?{query}")
        assert response.status == 200, await response.text()
        return [i["group_key"] for i in (await response.json())["items"]]

    assert await keys("") == ["g3", "g2", "g1"]
    assert await keys("status=firing") == ["g2", "g1"]
    assert await keys("namespace=shop") == ["g3", "g1"]
    assert await keys("alertname=DiskFull") == ["g3"]
    assert await keys("namespace=shop&status=firing") == ["g1"]
    assert await keys("until=2026-11-20T12:00:00Z") == ["g1"]
    assert await keys("since=2026-11-23T00:00:00Z") == ["g2", "g1"]  # g3 had ended by then
    assert await keys("since=1795000000&until=2026-11-22T10:30:00%2B00:00") == ["g3", "g2", "g1"]


async def test_listing_is_paginated_with_a_cursor(app_client: Any) -> None:
    client = await app_client()
    for i in range(5):
        assert (await post(client, payload([alert("a")], group_key=f"k{i}"))).status == 200
    seen: list[str] = []
    url = "/api/v1/incidents?limit=2"
    while url:
        response = await client.get(url)
        page = await response.json()
        seen += [i["group_key"] for i in page["items"]]
        url = response.headers["Link"].split(">")[0].lstrip("<") if page["next_cursor"] else ""
    assert seen == ["k4", "k3", "k2", "k1", "k0"]


async def test_bad_listing_parameters_are_precise_400s(app_client: Any) -> None:
    client = await app_client()
    cases = {
        "status=burning": "status",
        "limit=0": "limit",
        "limit=501": "limit",
        "limit=ten": "limit",
        "since=yesterday": "since",
        "since=2026-11-20T10:00:00": "time zone",
        "until=1e400": "until",
        "since=2026-11-22T00:00:00Z&until=2026-11-21T00:00:00Z": "before",
        "cursor=%%%": "cursor",
        "cursor=eyJiZWZvcmUiOiAteH0=": "cursor",
        "sort=id": "unknown query parameter",
    }
    for query, needle in cases.items():
        response = await client.get(f"/api/v1/incidents?{query}")
        assert response.status == 400, query
        assert needle in (await response.json())["detail"], query


async def test_incident_ids_are_checked(app_client: Any) -> None:
    client = await app_client()
    for raw, status in (
        ("0", 400),
        ("-1", 400),
        ("abc", 400),
        ("99999999999999999999", 400),
        ("١٢", 400),
        ("42", 404),
    ):
        response = await client.get(f"/api/v1/incidents/{raw}")
        assert response.status == status, raw
        assert response.content_type == "application/problem+json"


async def test_unknown_routes_and_methods_are_problem_documents(app_client: Any) -> None:
    client = await app_client()
    missing = await client.get("/api/v2/alerts")
    assert missing.status == 404 and missing.content_type == "application/problem+json"
    wrong_method = await client.get("/api/v1/alerts")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["detail"] == "method GET is not allowed on /api/v1/alerts"
    assert "POST" in wrong_method.headers["Allow"]
