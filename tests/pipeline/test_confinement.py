"""A namespace is a tenant (issue 23, item 1): whatever `evil` in namespace `shop` writes in its
spec, correlator reads no other namespace's logs or spans for it. Asserted on the queries the
Loki and Jaeger test servers received and on what correlator stores and shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.jaeger import FakeJaeger
from tests.fakes.loki import FakeLoki
from tests.fakes.loki import parse as parse_logql
from tests.sinks.test_delivery import _post, _settled
from tests.sinks.test_hostile_specs import checkout, firing, recorded, start, webapp
from tests.support.servers import served

SECRET = "Authorization: Bearer s3cr3t-payments-token"


def payments_logs(now: datetime) -> FakeLoki:
    loki = FakeLoki()
    lines = [(now.timestamp() - 60 * m, f"ERROR {SECRET} refused") for m in (1, 2, 30, 50)]
    loki.add({"app": "checkout", "namespace": "payments"}, lines)
    loki.add({"app": "evil", "namespace": "shop"}, [(now.timestamp() - 90, "INFO evil works")])
    return loki


def namespaces_of(query: str) -> set[str]:
    """The namespaces a LogQL query can read (`*` when it does not pin one)."""
    matchers = [m for m in parse_logql(query).matchers if m.name == "namespace"]
    if not matchers:
        return {"*"}
    found = set()
    for matcher in matchers:
        found |= {ns for ns in ("shop", "payments") if matcher.matches(ns)}
    return found


async def correlate(
    app_client: Any, tmp_path: Path, evil: dict[str, Any]
) -> tuple[list[str], list[str], dict[str, Any]]:
    now = datetime.now(UTC)
    loki, jaeger = payments_logs(now), FakeJaeger()
    traces = recorded(jaeger.app)
    async with served(loki.app) as loki_url, served(jaeger.app) as jaeger_url:
        client = await start(
            app_client,
            tmp_path,
            [checkout(), evil],
            [],
            loki={"url": loki_url},
            jaeger={"url": jaeger_url},
        )
        alert = {"alertname": "EvilDown", "namespace": "shop", "webapp": "evil"}
        incident = await _settled(client, await _post(client, firing(alert)))
        page = await (await client.get(f"/incidents/{incident['id']}")).text()
    queries = [q["query"] for q in loki.queries if "query" in q]
    return queries, traces, {"detail": incident, "page": page}


@pytest.mark.parametrize(
    "observability",
    [
        # Both of correlator's queries for evil used to read payments' lines.
        {"logSelector": '{namespace="payments"} |= "Authorization"'},
        {"logSelector": '{namespace="payments"}', "traceService": "checkout.payments"},
        {"logSelector": '{namespace=~"pay.*", app="checkout"}'},
    ],
)
async def test_a_spec_cannot_read_another_namespaces_logs_or_spans(
    app_client: Any, tmp_path: Path, observability: dict[str, str]
) -> None:
    evil = webapp("evil", "shop", observability=observability)
    queries, traces, shown = await correlate(app_client, tmp_path, evil)
    assert queries, "Loki was asked nothing"
    for query in queries:
        assert namespaces_of(query) == {"shop"}, query
        assert "Authorization" not in query
    assert not any("checkout.payments" in line for line in traces), traces
    assert "s3cr3t" not in json.dumps(shown["detail"]) and "s3cr3t" not in shown["page"]


async def test_an_apps_own_selector_is_confined_to_its_namespace(
    app_client: Any, tmp_path: Path
) -> None:
    evil = webapp("evil", "shop", observability={"logSelector": '{app=~"evil|checkout"}'})
    queries, _, shown = await correlate(app_client, tmp_path, evil)
    assert queries and all(namespaces_of(q) == {"shop"} for q in queries), queries
    assert any('app=~"evil|checkout"' in q for q in queries)
    assert "s3cr3t" not in json.dumps(shown["detail"])


async def test_an_alert_label_naming_another_namespaces_tracing_name_reads_no_spans(
    app_client: Any, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    jaeger = FakeJaeger()
    traces = recorded(jaeger.app)
    async with served(payments_logs(now).app) as loki_url, served(jaeger.app) as jaeger_url:
        client = await start(
            app_client,
            tmp_path,
            [checkout(), webapp("evil", "shop")],
            [],
            loki={"url": loki_url},
            jaeger={"url": jaeger_url},
        )
        alert = {"alertname": "Claim", "namespace": "shop", "app": "checkout.payments"}
        await _settled(client, await _post(client, firing(alert)))
    assert not any("checkout.payments" in line for line in traces), traces
