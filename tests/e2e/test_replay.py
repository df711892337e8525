"""End to end, on SQLite and PostgreSQL: `correlator serve` analyses an incident against real
Prometheus, the Loki test server and the real Jaeger, and keeps what it analysed. The bundle
fetched from the API replays through `correlator analyze` to the identical ranking; a cause
confirmed on the page and then corrected through the API is what `correlator bench rca
--incidents` scores, and what `export-incidents --anonymise` writes without the names.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from correlator.cli import main
from correlator.rca.bundle import load
from tests.fakes.loki import FakeLoki
from tests.support.jaeger import Jaeger
from tests.support.payloads import alert, payload
from tests.support.processes import Prometheus, Service, correlation_env, wait_until
from tests.support.scenarios import Scenario, openmetrics, scenarios
from tests.support.servers import InThread

TOKEN = "replay-bearer-token"
USER, PASSWORD = "ana", "ana-password"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@dataclass
class Backends:
    workdir: Path
    scenario: Scenario
    prometheus: str
    loki: str
    jaeger: str


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """One scenario's history in real Prometheus, its logs in the Loki test server and its
    spans in the real Jaeger, shared by both stores' services."""
    workdir: Path = tmp_path_factory.mktemp("replay")
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    scenario = scenarios(now)[0]
    prometheus = Prometheus(workdir, rule_files=[], openmetrics=openmetrics([scenario], now))
    prometheus.start()
    loki, jaeger = FakeLoki(), Jaeger(workdir).start()
    for labels, lines in scenario.log_streams(now):
        loki.add(labels, list(lines))
    jaeger.push(scenario.spans(now))
    with ExitStack() as stack:
        stack.callback(prometheus.stop)
        loki_url = stack.enter_context(InThread(loki.app))
        stack.enter_context(closing(jaeger))
        yield Backends(workdir, scenario, prometheus.url, loki_url, jaeger.url)


@dataclass
class Stack:
    service: Service
    scenario: Scenario
    database_url: str
    incident_id: int = 0
    report: dict[str, Any] | None = None


@pytest.fixture(scope="module")
def stack(
    e2e_database_url: str, backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("replay-service")
    service = Service(
        workdir,
        env={
            **correlation_env(workdir, backends.prometheus, backends.loki, backends.jaeger),
            "CORRELATOR_DATABASE_URL": e2e_database_url,
            "CORRELATOR_AUTH_BEARER_TOKEN": TOKEN,
            "CORRELATOR_AUTH_BASIC_USERNAME": USER,
            "CORRELATOR_AUTH_BASIC_PASSWORD": PASSWORD,
        },
    )
    service.start()
    try:
        yield Stack(service, backends.scenario, e2e_database_url)
    finally:
        service.stop()


def analysed(stack: Stack) -> dict[str, Any]:
    """The incident's report (the alert is sent once per store)."""
    if stack.report is not None:
        return stack.report
    scenario = stack.scenario
    labels = {
        "alertname": "SloBurn",
        "destination_workload": scenario.alerting,
        "destination_workload_namespace": scenario.namespace,
    }
    onset = (scenario.fault_at + timedelta(minutes=1)).isoformat()
    body = payload([alert("f1", labels=labels, starts_at=onset)], group_key="replay")
    answer = httpx.post(f"{stack.service.url}/api/v1/alerts", json=body, headers=BEARER)
    answer.raise_for_status()
    stack.incident_id = answer.json()["incident_id"]

    def reported() -> dict[str, Any] | None:
        detail = httpx.get(
            f"{stack.service.url}/api/v1/incidents/{stack.incident_id}", headers=BEARER
        ).json()
        found: dict[str, Any] | None = detail.get("report")
        return found

    try:
        stack.report = wait_until(reported, timeout_s=60, what="a report")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.service.log()[-3000:]}") from None
    return stack.report


def fetch_bundle(stack: Stack, into: Path) -> Path:
    url = f"{stack.service.url}/api/v1/incidents/{stack.incident_id}/bundle"

    def kept() -> bytes | None:
        answer = httpx.get(url, headers=BEARER, timeout=10)
        return answer.content if answer.status_code == 200 else None

    archive = into / f"incident-{stack.incident_id}.tar.gz"
    archive.write_bytes(wait_until(kept, timeout_s=30, what="the kept inputs"))
    return archive


def test_a_stored_bundle_replays_to_the_identical_ranking(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = analysed(stack)
    assert report["suspects"], report
    assert sorted(report["inputs"]["kinds"]) == ["logs", "metrics", "traces"]
    archive = fetch_bundle(stack, tmp_path)
    unauthenticated = httpx.get(
        f"{stack.service.url}/api/v1/incidents/{stack.incident_id}/bundle", timeout=10
    )
    assert unauthenticated.status_code == 401

    bundle = load(archive)
    assert not bundle.telemetry.metrics.empty and not bundle.telemetry.logs.empty
    assert not bundle.telemetry.spans.empty and bundle.telemetry.edges
    capsys.readouterr()
    assert main(["analyze", str(archive), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    live = [(s["service"], s["score"], s["weak"]) for s in report["suspects"]]
    again = [(s["service"], s["score"], s["weak"]) for s in replayed["suspects"]]
    assert again == live
    assert replayed["windows"] == report["windows"]


def test_a_confirmed_cause_is_scored_by_bench_and_exported_without_names(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = analysed(stack)
    fetch_bundle(stack, tmp_path)  # kept before it is scored
    scenario, url = stack.scenario, stack.service.url
    # On the page, first: "Was this the cause?" on the alerting service — then corrected.
    page = httpx.get(f"{url}/incidents/{stack.incident_id}", headers=BASIC).text
    assert "Was this the cause?" in page
    posted = httpx.post(
        f"{url}/incidents/{stack.incident_id}/cause",
        data={"service": scenario.alerting},
        headers={**BASIC, "Sec-Fetch-Site": "same-origin"},
    )
    assert posted.status_code == 303, posted.text
    answer = httpx.post(
        f"{url}/api/v1/incidents/{stack.incident_id}/cause",
        json={"service": scenario.culprit, "by": "incident review"},
        headers=BEARER,
    )
    assert answer.status_code == 200, answer.text
    cause = answer.json()["cause"]
    ranking = [s["service"] for s in report["suspects"]]
    live_rank = ranking.index(scenario.culprit) + 1 if scenario.culprit in ranking else None
    assert cause["rank"] == live_rank and cause["principal"] == "bearer token"
    metrics = httpx.get(f"{url}/metrics").text
    assert f'correlator_rca_confirmed_total{{outcome="{cause["outcome"]}"}}' in metrics

    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": stack.database_url}}))
    other = tmp_path / "longer-lead.yaml"
    other.write_text(
        yaml.safe_dump({"database": {"url": stack.database_url}, "correlation": {"lead_min": 20}})
    )
    capsys.readouterr()
    command = ["bench", "rca", "--incidents", "--config", str(config), "--against", str(other)]
    assert main([*command, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["incidents"] == 1, result
    (scored,) = result["per_incident"]
    assert scored["cause"] == scenario.culprit
    assert scored["rank"]["stored"] == scored["rank"]["replayed"] == live_rank
    assert set(result["runs"]) == {"stored", "replayed", "longer-lead"}
    replayed = result["runs"]["replayed"]
    hit = 100.0 if live_rank == 1 else 0.0
    assert replayed["overall"]["AC@1"] == hit
    app = f"{scenario.namespace}/{scenario.alerting}"
    assert replayed["per_app"] == {app: {"cases": 1, **_summary(replayed["overall"])}}
    assert list(replayed["per_team"]) == ["(no team)"]
    assert main([*command[:-2], "--app", "elsewhere/none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["incidents"] == 0
    html = httpx.get(f"{url}/incidents/{stack.incident_id}", headers=BASIC).text
    assert f"Right at rank 1 on {int(hit / 100)} of the last 1 confirmed incidents of" in html

    out = tmp_path / "export"
    assert main(["export-incidents", str(out), "--config", str(config), "--anonymise"]) == 0
    (exported,) = list(out.iterdir())
    truth = json.loads((exported / "truth.json").read_text())
    assert truth["service"] != scenario.culprit and truth["service"].startswith("h")
    for name in ("alert.json", "metrics.om", "traces.json", "bundle.json", "truth.json"):
        text = (exported / name).read_text()
        for named in scenario.services:
            assert f'"{named}"' not in text, (name, named)
    assert load(exported).truth == truth


def _summary(overall: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overall.items() if k != "interval"}
