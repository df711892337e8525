"""The correlation pipeline, end to end through the real app: webhook → work item → report.

The Loki and Jaeger test servers answer as the real ones do; failing backends are real HTTP
servers that fail (500, garbage, too slow) or a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.jaeger import FakeJaeger, FakeSpan
from tests.fakes.loki import FakeLoki
from tests.support.openapi import documented_get
from tests.support.payloads import alert, payload
from tests.support.servers import served

MS = 1_000_000
LABELS = {"alertname": "ApiLatencyHigh", "namespace": "shop", "destination_workload": "api"}


def _trace(trace_id: str, start: datetime, *, db_ms: float) -> list[FakeSpan]:
    ns = int(start.timestamp() * 1e9)
    return [
        FakeSpan(trace_id, "1" * 16, "frontend", "GET /", ns, int((db_ms + 30) * MS)),
        FakeSpan(
            trace_id,
            "2" * 16,
            "api",
            "GET /orders",
            ns + MS,
            int((db_ms + 20) * MS),
            parent_span_id="1" * 16,
        ),
        FakeSpan(
            trace_id,
            "3" * 16,
            "postgres",
            "SELECT orders",
            ns + 5 * MS,
            int(db_ms * MS),
            parent_span_id="2" * 16,
            kind="client",
        ),
    ]


def slow_database(now: datetime) -> tuple[FakeJaeger, FakeLoki]:
    """A slow database call behind a healthy API: only the database's own time grows."""
    jaeger = FakeJaeger()
    loki = FakeLoki()
    lines = []
    for i in range(30):
        before = now - timedelta(minutes=50) + timedelta(seconds=20 * i)
        during = now - timedelta(minutes=3) + timedelta(seconds=5 * i)
        jaeger.add(*_trace(f"{i:032x}", before, db_ms=4 + i % 3))
        jaeger.add(*_trace(f"{i + 100:032x}", during, db_ms=240 + i % 7))
        lines += [
            (before.timestamp(), f"INFO served GET /orders in {10 + i} ms"),
            (during.timestamp(), f"INFO served GET /orders in {250 + i} ms"),
        ]
    loki.add({"app": "api", "namespace": "shop"}, lines)
    return jaeger, loki


async def _report(client: Any, starts_at: datetime) -> dict[str, Any]:
    body = payload(
        [alert("f1", labels=LABELS, starts_at=starts_at.isoformat())],
        group_key='{}:{alertname="ApiLatencyHigh"}',
    )
    answer = await client.post("/api/v1/alerts", json=body)
    assert answer.status == 200, await answer.text()
    incident_id = (await answer.json())["incident_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # Every report the pipeline stores is one the API's description documents in full.
        detail = await documented_get(client, f"/api/v1/incidents/{incident_id}")
        if detail.get("report") is not None:
            return dict(detail["report"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no report stored for incident {incident_id}: {detail}")


async def test_slow_database_behind_healthy_api_is_named_first(app_client: Any) -> None:
    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
        client = await app_client(
            jaeger={"url": jaeger_url},
            loki={"url": loki_url},
            correlation={"grafana_url": "http://grafana.example"},
        )
        report = await _report(client, now - timedelta(minutes=2))
    assert report["suspects"], report
    first = report["suspects"][0]
    assert first["service"] == "postgres", [s["service"] for s in report["suspects"]]
    evidence = first["evidence"][0]
    assert evidence["kind"] == "trace" and "SELECT orders" in evidence["signal"]
    assert evidence["after"] > 10 * evidence["before"]
    assert evidence["trace_ids"] and evidence["links"]["trace_1"].startswith(f"{jaeger_url}/trace/")
    # api and frontend only felt it: postgres changed first and is their callee.
    victims = {s["service"]: s for s in report["suspects"][1:]}
    for victim in victims.values():
        assert "postgres" in victim["caused_by"] or victim["score"] < first["score"] / 2
    assert report["status"] == "partial"
    assert {"backend": "prometheus", "what": "everything", "reason": "not configured"} in report[
        "missing"
    ]
    assert report["scope"]["alerting"] == ["api"]


FINISHED = web.AppKey("finished", list[str])


def _failing(kind: str) -> web.Application:
    async def answer(request: web.Request) -> web.StreamResponse:
        if kind == "500":
            return web.Response(status=500, text="internal server error\n")
        if kind == "garbage":
            return web.Response(text="<html>proxy login</html>", content_type="application/json")
        if kind == "oversized":
            return web.json_response({"status": "success", "data": ["x" * 4096] * 64})
        await asyncio.sleep(30)  # slower than any deadline
        app[FINISHED].append(request.path)
        return web.json_response({})

    app = web.Application()
    app[FINISHED] = []
    app.router.add_get("/{tail:.*}", answer)
    return app


FAULTS = {
    "down": "unavailable",
    "slow": "deadline",
    "500": "unavailable",
    "garbage": "unusable answer",
    "oversized": "unusable answer",
}


@pytest.mark.parametrize("backend", ["prometheus", "loki", "jaeger"])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_failing_backend_yields_a_partial_report_within_the_deadline(
    app_client: Any, backend: str, fault: str, unused_tcp_port: int
) -> None:
    """Each backend down, timing out, answering 500, malformed JSON or an oversized body: the
    report still comes, in time, names what is missing and why, and uses the others."""
    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    failing = _failing(fault)
    async with (
        served(failing) as failing_url,
        served(jaeger.app) as jaeger_url,
        served(loki.app) as loki_url,
    ):
        urls = {"prometheus": None, "loki": loki_url, "jaeger": jaeger_url}
        urls[backend] = f"http://127.0.0.1:{unused_tcp_port}" if fault == "down" else failing_url
        groups = {
            name: {"url": url, "timeout_s": 5, "max_body_bytes": 64 * 1024}
            for name, url in urls.items()
            if url is not None
        }
        client = await app_client(**groups, correlation={"deadline_s": 1.5})
        report = await _report(client, now - timedelta(minutes=2))
        # The deadline, not the backend, ended the wait: the slow one was still answering.
        finished = list(failing[FINISHED])
    assert report["status"] == "partial"
    named = [m for m in report["missing"] if backend in m["backend"]]
    assert named, report["missing"]
    assert any(FAULTS[fault] in m["reason"] for m in named), named
    assert finished == [], finished
    if backend != "jaeger":  # the traces, still there, name the slow database
        assert report["suspects"][0]["service"] == "postgres"


@pytest.fixture
def unused_tcp_port() -> Iterator[int]:
    """A port that refuses connections for the whole test: bound here and never listened on,
    so no other process (the other xdist worker's test servers) can take it meanwhile."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def test_a_new_notification_of_the_group_updates_the_report(app_client: Any) -> None:
    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
        client = await app_client(jaeger={"url": jaeger_url}, loki={"url": loki_url})
        first = await _report(client, now - timedelta(minutes=2))
        frontend = {**LABELS, "destination_workload": "frontend"}
        body = payload(
            [
                alert("f1", labels=LABELS, starts_at=(now - timedelta(minutes=2)).isoformat()),
                alert("f2", labels=frontend, starts_at=(now - timedelta(minutes=1)).isoformat()),
            ],
            group_key='{}:{alertname="ApiLatencyHigh"}',
        )
        answer = await client.post("/api/v1/alerts", json=body)
        incident_id = (await answer.json())["incident_id"]
        deadline = time.monotonic() + 30
        report = first
        while time.monotonic() < deadline and report["scope"]["alerting"] == ["api"]:
            await asyncio.sleep(0.05)
            detail = await (await client.get(f"/api/v1/incidents/{incident_id}")).json()
            report = detail["report"]
    assert report["scope"]["alerting"] == ["api", "frontend"]
    assert report["generated_at"] >= first["generated_at"]
    assert report["suspects"][0]["service"] == "postgres"


async def test_hostile_alert_labels_cannot_change_any_query(app_client: Any, tmp_path: Any) -> None:
    """Label values from alerts go into PromQL, LogQL and Jaeger parameters as literals: every
    backend accepts every query (nothing refused), and nothing outside the values matches."""
    from tests.support.processes import Prometheus

    now = datetime.now(UTC)
    hostile = 'x"} or vector(1) or {a="\n|= "boom" \\'
    history = (
        "# TYPE istio_requests counter\n"
        'istio_requests_total{reporter="destination",destination_workload="other",'
        'destination_workload_namespace="shop",response_code="200"}'
        f" 1 {now.timestamp() - 60:.0f}\n"
        "# EOF\n"
    )
    prometheus = Prometheus(tmp_path, rule_files=[], openmetrics=history).start()
    jaeger, loki = slow_database(now)
    loki.add({"app": "other", "namespace": "shop"}, [(now.timestamp() - 30, "ERROR boom")])
    try:
        async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
            client = await app_client(
                prometheus={"url": prometheus.url},
                jaeger={"url": jaeger_url},
                loki={"url": loki_url},
            )
            labels = {
                "alertname": "Hostile",
                "destination_workload": hostile,
                "destination_workload_namespace": 'shop|.*"}',
            }
            body = payload(
                [alert("h1", labels=labels, starts_at=(now - timedelta(minutes=2)).isoformat())],
                group_key='{}:{alertname="Hostile"}',
            )
            answer = await client.post("/api/v1/alerts", json=body)
            assert answer.status == 200
            incident_id = (await answer.json())["incident_id"]
            deadline = time.monotonic() + 30
            report = None
            while report is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                detail = await (await client.get(f"/api/v1/incidents/{incident_id}")).json()
                report = detail["report"]
    finally:
        prometheus.stop()
    assert report is not None
    assert report["missing"] == [], report["missing"]  # every query was valid
    assert report["suspects"] == []  # and matched nothing: not "other", not everything
    assert report["scope"]["alerting"] == [hostile]


async def test_a_new_replicaset_before_the_alert_is_named_as_a_deploy(
    app_client: Any, tmp_path: Any
) -> None:
    """Without a revision on the WebApplication, kube-state-metrics' newest ReplicaSet of the
    app dates its deploy; an older one, and one created after the alert, do not count."""
    from tests.support.processes import Prometheus

    now = datetime.now(UTC).replace(microsecond=0)
    created = {
        "api-5d8f9c7b6d": now - timedelta(minutes=12),  # the deploy before the alert
        "api-7c9d8e6f5a": now - timedelta(days=3),  # the one before it
        "frontend-6b7c8d9e0f": now - timedelta(days=9),
    }
    lines = ["# TYPE kube_replicaset_created gauge"]
    for replicaset, moment in created.items():
        for minute in range(30, -1, -1):
            t = (now - timedelta(minutes=minute)).timestamp()
            lines.append(
                f'kube_replicaset_created{{namespace="shop",replicaset="{replicaset}"}} '
                f"{moment.timestamp():.0f} {t:.0f}"
            )
    prometheus = Prometheus(tmp_path, rule_files=[], openmetrics="\n".join(lines) + "\n# EOF\n")
    prometheus.start()
    jaeger, loki = slow_database(now)
    try:
        async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
            client = await app_client(
                prometheus={"url": prometheus.url},
                jaeger={"url": jaeger_url},
                loki={"url": loki_url},
            )
            report = await _report(client, now - timedelta(minutes=2))
    finally:
        prometheus.stop()
    changes = {c["service"]: c for c in report["changes"]}
    assert changes["api"]["source"] == "ReplicaSet" and changes["api"]["revision"] is None
    assert 9.5 < changes["api"]["minutes_before_alert"] < 10.5
    assert changes["frontend"]["minutes_before_alert"] > 9 * 24 * 60 - 10
    api = next(s for s in report["suspects"] if s["service"] == "api")
    assert api["reason"].startswith("deployed 10 min before the alert;")
    assert api["evidence"][0]["kind"] == "change"
    frontend = [s for s in report["suspects"] if s["service"] == "frontend"]
    assert all(not s["reason"].startswith("deployed") for s in frontend)  # 9 days ago: not news
