"""End to end: the WebApplication is the correlation's map. Apps whose series, log streams and
trace service are named differently from the defaults (as their specs say) are correlated
through their specs: `correlator serve` discovers the manifests, an alert from a generated rule
(`webapp`, `namespace` labels) arrives, and the report names the injected service first with
evidence fetched by the app's own PromQL labels, LogQL selector and Jaeger service name.

Under the default heuristics none of this data would be found: the series carry `k8s_*`
labels, the log streams have no `app` label, and Jaeger knows the services as `<name>-svc`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fakes.loki import FakeLoki
from tests.support.jaeger import Jaeger
from tests.support.payloads import alert, payload
from tests.support.processes import Prometheus, Service, correlation_env, wait_until
from tests.support.scenarios import Scenario, openmetrics, scenarios
from tests.support.servers import InThread

# The platform relabels: Istio's workload labels and cAdvisor's pod labels have other names.
RELABEL = [
    ("destination_workload_namespace=", "k8s_destination_ns="),
    ("destination_workload=", "k8s_destination_app="),
    ("source_workload=", "k8s_source_app="),
    ('namespace="', 'k8s_pod_ns="'),
    ('pod="', 'k8s_pod_name="'),
]
METRIC_LABELS = {
    "namespace": "k8s_destination_ns",
    "workload": "k8s_destination_app",
    "podNamespace": "k8s_pod_ns",
    "pod": "k8s_pod_name",
}


def relabelled(text: str) -> str:
    for old, new in RELABEL:
        # `namespace="` is also the tail of the Istio label: rename that one first.
        text = text.replace(f",{old}", f",{new}").replace(f"{{{old}", f"{{{new}")
    return text


def selector(service: str) -> dict[str, str]:
    return {"cluster": "eu-1", "container": f"{service}-main"}


def manifest(directory: Path, scenario: Scenario, service: str) -> None:
    labels = ", ".join(f'{k}="{v}"' for k, v in selector(service).items())
    app = {
        "apiVersion": "platform.correlator.dev/v1alpha1",
        "kind": "WebApplication",
        "metadata": {"name": service, "namespace": scenario.namespace},
        "spec": {
            "image": f"registry.example/{service}:1.0.0",
            "team": "payments",
            "observability": {
                "logSelector": "{" + labels + "}",
                "traceService": f"{service}-svc",
                "metricLabels": METRIC_LABELS,
            },
        },
    }
    (directory / f"{service}.yaml").write_text(yaml.safe_dump(app))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Scenario]]:
    workdir: Path = tmp_path_factory.mktemp("webapp-map")
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    scenario = scenarios(now)[0]  # an error spike in a downstream dependency
    apps = workdir / "apps"
    apps.mkdir()
    for service in scenario.services:
        manifest(apps, scenario, service)
    prometheus = Prometheus(
        workdir, rule_files=[], openmetrics=relabelled(openmetrics([scenario], now))
    ).start()
    loki, jaeger = FakeLoki(), Jaeger(workdir).start()  # the real Jaeger v2, spans over OTLP
    for labels, lines in scenario.log_streams(now):
        # Fluentd labels every stream with its namespace, which correlator always matches on.
        loki.add({**selector(labels["app"]), "namespace": scenario.namespace}, list(lines))
    spans = scenario.spans(now)
    for span in spans:
        span.service = f"{span.service}-svc"
    jaeger.push(spans)
    with InThread(loki.app) as loki_url, closing(jaeger):
        service = Service(
            workdir,
            env={
                **correlation_env(workdir, prometheus.url, loki_url, jaeger.url),
                "CORRELATOR_PROVISIONING_SOURCE_DIR": str(apps),
                "CORRELATOR_PROVISIONING_TARGET": "files",
                "CORRELATOR_PROVISIONING_OUT_DIR": str(workdir / "out"),
            },
        )
        service.start()
        try:
            wait_until(
                lambda: 'outcome="ok"} 1.0' in httpx.get(f"{service.url}/metrics").text,
                timeout_s=30,
                what="the first provisioning pass (the app catalogue)",
            )
            yield service, scenario
        finally:
            service.stop()
            prometheus.stop()


def test_the_spec_drives_promql_logql_and_jaeger(stack: tuple[Service, Scenario]) -> None:
    service, scenario = stack
    labels = {
        "alertname": "WebAppAvailabilityBudgetBurnPage",
        "webapp": scenario.alerting,
        "namespace": scenario.namespace,
        "severity": "critical",
        "team": "payments",
        "slo": "availability",
    }
    starts_at = (scenario.fault_at + timedelta(minutes=1)).isoformat()
    body = payload([alert("a1", labels=labels, starts_at=starts_at)], group_key='{}:{webapp="web"}')
    answer = httpx.post(f"{service.url}/api/v1/alerts", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    incident = answer.json()["incident_id"]

    def report() -> dict[str, Any] | None:
        detail = httpx.get(f"{service.url}/api/v1/incidents/{incident}", timeout=10).json()
        found: dict[str, Any] | None = detail.get("report")
        return found

    result: dict[str, Any] = wait_until(report, timeout_s=60, what="the report")
    assert result["missing"] == [], result["missing"]
    assert result["scope"]["alerting"] == [scenario.alerting]
    # The call graph came from Jaeger under the apps' tracing names, mapped back to the apps.
    assert set(scenario.services) <= set(result["scope"]["services"])
    ranking = [s["service"] for s in result["suspects"]]
    assert ranking[0] == scenario.culprit, ranking
    evidence = result["suspects"][0]["evidence"]
    kinds = {e["kind"] for e in evidence}
    assert {"metric", "log", "trace"} <= kinds, evidence
    for item in evidence:
        if item["kind"] == "metric":
            assert "k8s_destination_app" in item["query"] or "k8s_pod_name" in item["query"]
            assert scenario.culprit in item["query"]
        if item["kind"] == "log":
            # The spec's matchers, confined to the app's namespace.
            where = f'namespace="{scenario.namespace}"'
            confined = "{" + where + ',cluster="eu-1",container="payments-main"}'
            assert item["query"] == confined, item
    assert any(e["trace_ids"] for e in evidence if e["kind"] == "trace")
