"""Generated Prometheus rules, checked and unit-tested by the real promtool."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from correlator.models.webapp import WebApplication
from correlator.provisioning.alert_rules import (
    burn_thresholds,
    decimal_text,
    prometheus_rule,
    rule_file,
    rule_tests,
    to_yaml,
)
from correlator.provisioning.naming import Links
from tests.provisioning.conftest import EXAMPLE_APPS, promtool, webapp

LINKS = Links(grafana_url="https://grafana.example", correlator_url="https://correlator.example")


def write(app: WebApplication, directory: Path) -> tuple[Path, Path]:
    rules = directory / f"{app.namespace}-{app.name}.rules.yaml"
    tests = directory / f"{app.namespace}-{app.name}.test.yaml"
    rules.write_text(to_yaml(rule_file(app, LINKS)))
    tests.write_text(to_yaml(rule_tests(app, LINKS, rules.name)))
    return rules, tests


@pytest.mark.parametrize(
    ("target", "window_days", "expected"),
    [
        (
            "99.9",
            30,
            {
                "page_fast": "0.0144",
                "page_slow": "0.006",
                "ticket_fast": "0.003",
                "ticket_slow": "0.001",
            },
        ),
        (
            "99.95",
            30,
            {
                "page_fast": "0.0072",
                "page_slow": "0.003",
                "ticket_fast": "0.0015",
                "ticket_slow": "0.0005",
            },
        ),
        (
            "99",
            28,
            {
                "page_fast": "0.1344",
                "page_slow": "0.056",
                "ticket_fast": "0.028",
                "ticket_slow": "0.009333333333",
            },
        ),
    ],
)
def test_thresholds_follow_the_workbook_and_print_exactly(
    target: str, window_days: int, expected: dict[str, str]
) -> None:
    thresholds = burn_thresholds(Decimal(target), window_days)
    assert {name: decimal_text(value) for name, value in thresholds.items()} == expected


def test_generated_yaml_has_no_float_artefacts() -> None:
    for app in EXAMPLE_APPS.values():
        text = to_yaml(rule_file(app, LINKS))
        assert not re.search(r"\d\.\d*0000000\d|\d\.\d*9999999\d|e-\d", text), app.key


def test_every_generated_group_passes_promtool_check(tmp_path: Path) -> None:
    files = [write(app, tmp_path)[0].name for app in EXAMPLE_APPS.values()]
    result = promtool("check", "rules", *files, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_generated_unit_tests_pass_under_promtool(tmp_path: Path) -> None:
    # The shipped test templates, instantiated for apps that exercise every optional case.
    chosen = ["strict", "loose-28d", "no-page-possible", "relabelled"]
    test_files = [write(EXAMPLE_APPS[name], tmp_path)[1].name for name in chosen]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda f: promtool("test", "rules", f, cwd=tmp_path), test_files))
    for name, result in zip(chosen, results, strict=True):
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


def test_a_rule_that_cannot_page_fails_its_generated_tests(tmp_path: Path) -> None:
    rules, tests = write(EXAMPLE_APPS["common"], tmp_path)
    text = rules.read_text()
    assert "> 0.0144" in text and "> 0.006" in text
    rules.write_text(text.replace("> 0.0144", "> 1.5").replace("> 0.006", "> 1.5"))
    result = promtool("test", "rules", tests.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "WebAppAvailabilityBudgetBurnPage" in result.stdout + result.stderr


def test_impossible_cases_are_left_out_not_faked() -> None:
    # At 90% a total outage burns 10x the budget, under the 14.4x page threshold.
    names = [
        case["name"] for case in rule_tests(EXAMPLE_APPS["no-page-possible"], LINKS, "r")["tests"]
    ]
    assert "pages on a sustained outage" not in names
    assert "stays quiet on a short spike" in names
    strict = [case["name"] for case in rule_tests(EXAMPLE_APPS["strict"], LINKS, "r")["tests"]]
    assert "pages on a sustained outage" in strict and "pages when every request is slow" in strict


def test_page_and_ticket_alerts_carry_what_routing_needs() -> None:
    app = EXAMPLE_APPS["strict"]
    alerts = [r for g in rule_file(app, LINKS)["groups"] for r in g["rules"] if "alert" in r]
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names))
    assert {
        "WebAppAvailabilityBudgetBurnPage",
        "WebAppAvailabilityBudgetBurnTicket",
        "WebAppLatencyBudgetBurnPage",
        "WebAppLatencyBudgetBurnTicket",
    } <= set(names)
    for alert in alerts:
        assert {"severity", "team", "namespace", "webapp"} <= set(alert["labels"]), alert["alert"]
        assert alert["labels"]["team"] == "payments"
        assert {"summary", "description", "runbook_url", "dashboard_url"} <= set(
            alert["annotations"]
        )
        assert alert["annotations"]["runbook_url"] == "https://runbooks.example/checkout"
        assert alert["annotations"]["dashboard_url"].startswith("https://grafana.example/d/wa-")
    by_name = {a["alert"]: a for a in alerts}
    assert by_name["WebAppAvailabilityBudgetBurnPage"]["labels"]["severity"] == "critical"
    assert by_name["WebAppAvailabilityBudgetBurnTicket"]["labels"]["severity"] == "warning"
    loose = rule_file(EXAMPLE_APPS["loose-28d"], LINKS)["groups"]
    severities = {
        r["alert"]: r["labels"]["severity"] for g in loose for r in g["rules"] if "alert" in r
    }
    assert severities["WebAppAvailabilityBudgetBurnPage"] == "P1"
    assert severities["WebAppCPUThrottled"] == "P3"
    receivers = {
        r["alert"]: r["labels"].get("receiver") for g in loose for r in g["rules"] if "alert" in r
    }
    assert receivers["WebAppAvailabilityBudgetBurnPage"] == "pagerduty-storefront"
    assert receivers["WebAppAvailabilityBudgetBurnTicket"] == "jira-storefront"
    assert "receiver" not in by_name["WebAppAvailabilityBudgetBurnPage"]["labels"]  # none asked


def test_only_declared_slos_get_rules() -> None:
    names = lambda app: [g["name"].rsplit("/", 1)[1] for g in rule_file(app, LINKS)["groups"]]  # noqa: E731
    assert names(EXAMPLE_APPS["no-slo"]) == ["webapp-workload"]
    assert names(EXAMPLE_APPS["loose-28d"]) == ["webapp-availability", "webapp-workload"]
    assert names(EXAMPLE_APPS["common"]) == [
        "webapp-availability",
        "webapp-latency",
        "webapp-workload",
    ]


def test_relabelled_platforms_get_their_label_names() -> None:
    text = to_yaml(rule_file(EXAMPLE_APPS["relabelled"], LINKS))
    assert 'dst_ns="shop",dst_app="legacy"' in text
    assert 'pod_name=~"legacy-' in text
    assert 'le="0.5"' in text


def test_prometheus_rule_object_holds_the_same_groups() -> None:
    app = EXAMPLE_APPS["common"]
    obj = prometheus_rule(app, LINKS)
    assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "PrometheusRule"
    assert obj["metadata"]["namespace"] == "shop"
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "correlator"
    assert obj["spec"]["groups"] == rule_file(app, LINKS)["groups"]
    assert yaml.safe_load(to_yaml(obj)) == obj


def test_hostile_runbook_url_cannot_inject_yaml_or_rules(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="http"):  # not a URL: refused at the door
        webapp(observability={"runbookUrl": 'x"\n- alert: Injected\n  expr: vector(1)'})
    with pytest.raises(ValidationError, match="template"):  # Prometheus would expand it
        webapp(observability={"runbookUrl": 'https://x/{{ query "up" }}'})
    app = webapp(
        slo={"availability": 99.9},
        observability={
            "runbookUrl": "https://x/\"'-alert:Injected:expr:vector(1)${correlator.team}"
        },
    )
    rules, _ = write(app, tmp_path)
    data = yaml.safe_load(rules.read_text())
    alerts = [r["alert"] for g in data["groups"] for r in g["rules"] if "alert" in r]
    assert "Injected" not in alerts
    assert data["groups"][0]["rules"][-1]["annotations"]["runbook_url"].endswith(
        "${correlator.team}"
    )
    assert promtool("check", "rules", rules.name, cwd=tmp_path).returncode == 0


OTEL_LABELS = {
    "namespace": "k8s.namespace.name",
    "workload": "service.name",
    "podNamespace": "k8s.namespace.name",
    "pod": "k8s.pod.name",
}


@pytest.mark.prometheus3
def test_utf8_label_names_make_rules_prometheus_3_checks_tests_and_fires(tmp_path: Path) -> None:
    """Prometheus 3 keeps OpenTelemetry's dotted names: the rules quote them, and promtool's
    own unit tests (series with those labels) fire the generated alerts."""
    app = webapp(
        "otel",
        slo={"availability": "99.5", "latency": {"thresholdMs": 250, "target": 99}},
        observability={"metricLabels": OTEL_LABELS},
    )
    rules, tests = write(app, tmp_path)
    text = rules.read_text()
    assert '"service.name"="otel"' in text and 'by ("k8s.pod.name", container)' in text
    assert 'index $labels \\"k8s.pod.name\\"' in text or "index $labels" in text
    checked = promtool("check", "rules", rules.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", tests.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize(
    "name", ['service"name', "a{b", "a,b", "x=y", "__reserved.name", "", "tab\tname", "." * 129]
)
def test_label_names_that_could_bend_a_matcher_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="label name"):
        webapp(observability={"metricLabels": {"pod": name}})
