"""End to end: a real Alertmanager fires → intake → pipeline → a stored report that names the
injected service first, for hand-made incidents (not Nezha cases).

Real Prometheus holds each scenario's Istio and cAdvisor history (promtool backfill); the
Loki and Jaeger test servers hold its logs and spans; `correlator serve` runs as a process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.loki import FakeLoki
from tests.support.jaeger import Jaeger
from tests.support.processes import Alertmanager, Prometheus, Service, correlation_env, wait_until
from tests.support.scenarios import Scenario, openmetrics, scenarios
from tests.support.servers import InThread

# Only the names are fixed at collection: the data is made when the stack starts, because the
# pipeline analyses against the clock of that moment, not of collection.
NAMES = [s.name for s in scenarios(datetime.now(UTC))]


class Stack:
    def __init__(self, service: Service, alertmanager: Alertmanager, made: list[Scenario]) -> None:
        self.service = service
        self.alertmanager = alertmanager
        self.scenarios = {s.name: s for s in made}

    def fire(self, scenario: Scenario) -> str:
        """Post the alert a front-end rule would raise to Alertmanager, as Prometheus does."""
        alertname = f"LatencyOrErrors{uuid.uuid4().hex[:8]}"
        alert = {
            "labels": {
                "alertname": alertname,
                "destination_workload": scenario.alerting,
                "destination_workload_namespace": scenario.namespace,
                "severity": "page",
            },
            "annotations": {"summary": f"{scenario.alerting} is failing its SLO"},
            "startsAt": (scenario.fault_at + timedelta(minutes=1)).isoformat(),
            "generatorURL": "http://prometheus/graph",
        }
        answer = httpx.post(f"{self.alertmanager.url}/api/v2/alerts", json=[alert], timeout=10)
        answer.raise_for_status()
        return alertname

    def report(self, alertname: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            items = httpx.get(
                f"{self.service.url}/api/v1/incidents", params={"alertname": alertname}, timeout=10
            ).json()["items"]
            if not items:
                return None
            detail = httpx.get(
                f"{self.service.url}/api/v1/incidents/{items[0]['id']}", timeout=10
            ).json()
            report: dict[str, Any] | None = detail.get("report")
            return report

        try:
            result: dict[str, Any] = wait_until(found, timeout_s=60, what=f"report for {alertname}")
        except AssertionError as exc:
            Path("/tmp/e2e-service.log").write_text(self.service.log())
            raise AssertionError(f"{exc}\n{self.service.log()[-3000:]}") from None
        return result


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("correlation")
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    made = scenarios(now)
    prometheus = Prometheus(workdir, rule_files=[], openmetrics=openmetrics(made, now)).start()
    loki, jaeger = FakeLoki(), Jaeger(workdir).start()  # the real Jaeger v2, spans over OTLP
    for scenario in made:
        for labels, lines in scenario.log_streams(now):
            loki.add(labels, list(lines))
        jaeger.push(scenario.spans(now))
    with InThread(loki.app) as loki_url, closing(jaeger):
        service = Service(
            workdir,
            env={
                **correlation_env(workdir, prometheus.url, loki_url, jaeger.url),
            },
        )
        hook = {"url": f"{service.url}/api/v1/alerts", "send_resolved": True}
        alertmanager = Alertmanager(
            workdir,
            {
                "route": {
                    "receiver": "correlator",
                    "group_by": ["alertname"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "correlator", "webhook_configs": [hook]}],
            },
        )
        service.start()
        alertmanager.start()
        try:
            yield Stack(service, alertmanager, made)
        finally:
            alertmanager.stop()
            service.stop()
            prometheus.stop()


@pytest.mark.parametrize("name", NAMES)
def test_the_injected_service_is_named_first(stack: Stack, name: str) -> None:
    scenario = stack.scenarios[name]
    report = stack.report(stack.fire(scenario))
    ranking = [s["service"] for s in report["suspects"]]
    assert ranking and ranking[0] == scenario.culprit, (ranking, report["missing"])
    assert report["status"] == "complete", report["missing"]
    first = report["suspects"][0]
    assert first["reason"] and first["evidence"]
    assert all(e["detail"] for e in first["evidence"])
    # Every piece of evidence says where it came from: its PromQL, its LogQL stream, its traces.
    for evidence in first["evidence"]:
        if evidence["kind"] == "metric":
            assert scenario.namespace in evidence["query"], evidence
        if evidence["kind"] == "log":
            assert evidence["query"] == f'{{app=~"{scenario.culprit}"}}', evidence
        if evidence["kind"] == "trace" and evidence["signal"] != "error spans":
            assert evidence["trace_ids"], evidence
    # The scope was widened from the alerting app to its neighbours through the call graph.
    assert scenario.culprit in report["scope"]["services"]
    assert report["scope"]["alerting"] == [scenario.alerting]
