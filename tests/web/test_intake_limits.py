"""The intake's promises at its edges: a big outage's group is accepted as it comes, every
rejection is counted and logged with its reason, and `?namespace=` finds what correlation
would."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from typing import Any

import pytest

from correlator.web.state import LARGE_BODIES
from tests.support.payloads import alert, big_group, payload

TOKEN = "s3cr3t-t0ken-never-logged"


async def test_a_ten_thousand_alert_group_is_accepted_by_default(app_client: Any) -> None:
    """Alertmanager's max_alerts is unlimited by default and a 4xx is never retried: the
    group a big outage sends must fit the default limit."""
    client = await app_client(queue={"workers": 0})
    body = json.dumps(big_group(10_000)).encode()
    response = await client.post(
        "/api/v1/alerts", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
    incident = await (await client.get((await response.json())["incident_url"])).json()
    assert incident["alerts_total"] == 10_000


async def test_an_absurd_body_is_still_413(app_client: Any) -> None:
    client = await app_client(queue={"workers": 0})
    absurd = b'{"alerts": ["' + b"x" * (33 * 1024 * 1024) + b'"]}'
    response = await client.post(
        "/api/v1/alerts", data=absurd, headers={"Content-Type": "application/json"}
    )
    assert response.status == 413


def _rejections(metrics: str) -> dict[str, float]:
    found = {}
    prefix = 'correlator_webhook_notifications_total{outcome="rejected",reason="'
    for line in metrics.splitlines():
        if line.startswith(prefix):
            reason, value = line.removeprefix(prefix).split('"} ')
            found[reason] = float(value)
    return found


async def test_every_rejection_is_counted_and_logged_with_its_reason(
    app_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = await app_client(
        auth={"bearer_token": TOKEN}, server={"max_body_bytes": 4096}, queue={"workers": 0}
    )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    valid = json.dumps(payload([alert("f1")]))
    too_big = json.dumps(payload([alert(f"{i:016x}") for i in range(100)]))
    attempts = [
        ({"Authorization": f"Bearer {TOKEN}-wrong"}, valid, "application/json", 401),
        (bearer, too_big, "application/json", 413),
        (bearer, valid, "text/plain", 415),
        (bearer, "", "application/json", 400),
        (bearer, "{}", "application/json", 422),
    ]
    with caplog.at_level(logging.INFO):
        for headers, body, content_type, status in attempts:
            response = await client.post(
                "/api/v1/alerts", data=body, headers={**headers, "Content-Type": content_type}
            )
            assert response.status == status, await response.text()
    metrics = await (await client.get("/metrics")).text()
    assert _rejections(metrics) == {
        "unauthorized": 1.0,
        "too_large": 1.0,
        "content_type": 1.0,
        "empty": 1.0,
        "invalid": 1.0,
    }
    rejected = [r for r in caplog.records if r.getMessage() == "webhook notification rejected"]
    assert sorted(getattr(r, "status", None) for r in rejected) == [400, 401, 413, 415, 422]
    assert all(getattr(r, "reason", None) for r in rejected)
    assert TOKEN not in caplog.text


async def test_namespace_filter_finds_the_labels_correlation_understands(
    app_client: Any,
) -> None:
    client = await app_client(queue={"workers": 0})
    istio = {"alertname": "LatencySLO", "destination_workload_namespace": "shop"}
    response = await client.post(
        "/api/v1/alerts",
        json=payload([alert("f1", labels=istio)], group_key="istio", commonLabels=istio),
    )
    assert response.status == 200
    listing = await (await client.get("/api/v1/incidents?namespace=shop")).json()
    assert [i["id"] for i in listing["items"]] == [(await response.json())["incident_id"]]
    assert listing["items"][0]["namespace"] == "shop"


async def test_a_small_gzip_body_that_expands_past_a_mebibyte_waits_for_the_big_body_gate(
    app_client: Any,
) -> None:
    """The gate counts decompressed bytes: 2 MiB of alerts gzipped to a few kB is a big body,
    taken one at a time (here: while another big body holds the gate), and stored after."""
    client = await app_client(queue={"workers": 0})
    alerts = [alert(f"f{n}", labels={"alertname": "Big", "pad": "x" * 1000}) for n in range(2000)]
    raw = json.dumps(payload(alerts, group_key='{}:{alertname="Big"}')).encode()
    packed = gzip.compress(raw)
    assert len(packed) < 1024 * 1024 < len(raw)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    small = gzip.compress(
        json.dumps(payload([alert("s1")], group_key='{}:{alertname="Small"}')).encode()
    )
    gate = client.server.app[LARGE_BODIES]
    async with gate:  # another big body is being taken
        post = asyncio.ensure_future(client.post("/api/v1/alerts", data=packed, headers=headers))
        # A small body is not held up by the gate ...
        answer = await client.post("/api/v1/alerts", data=small, headers=headers)
        assert answer.status == 200, await answer.text()
        # ... the big one (once decompressed) is.
        done, _ = await asyncio.wait([post], timeout=2)
        assert not done, "a 2 MiB body ran while another big body held the gate"
    answer = await post
    assert answer.status == 200, await answer.text()
