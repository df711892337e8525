"""Generated dashboards: valid PromQL, stable UIDs, panels that fit the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from correlator.provisioning.dashboards import dashboard, team_folder
from correlator.provisioning.naming import Links, dashboard_uid
from tests.provisioning.conftest import EXAMPLE_APPS, promtool, webapp

LINKS = Links(grafana_url="https://grafana.example", correlator_url="https://correlator.example")


def prometheus_exprs(board: dict[str, Any]) -> list[str]:
    exprs = [
        target["expr"]
        for panel in board["panels"]
        if panel.get("datasource", {}).get("type") == "prometheus"
        for target in panel.get("targets", [])
    ]
    exprs += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    return exprs


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    rules = []
    for name, app in EXAMPLE_APPS.items():
        for index, expr in enumerate(prometheus_exprs(dashboard(app, LINKS))):
            # Grafana fills $__rate_interval before Prometheus sees the query.
            rules.append(
                {
                    "record": f"check:{name.replace('-', '_')}:{index}",
                    "expr": expr.replace("$__rate_interval", "5m"),
                }
            )
    (tmp_path / "exprs.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]})
    )
    result = promtool("check", "rules", "exprs.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(rules) > 100


def test_uid_is_stable_short_and_distinct() -> None:
    assert dashboard(EXAMPLE_APPS["common"], LINKS)["uid"] == dashboard_uid("shop", "catalog")
    uids = {dashboard_uid(f"ns{i % 7}", f"app-{i}") for i in range(2000)}
    assert len(uids) == 2000
    long_a, long_b = (
        dashboard_uid("n" * 63, "a" * 62 + "b"),
        dashboard_uid("n" * 63, "a" * 62 + "c"),
    )
    assert long_a != long_b and max(len(long_a), len(long_b)) <= 40
    assert all(len(uid) <= 40 for uid in uids)


def test_panels_follow_the_declared_slos_and_links() -> None:
    titles = lambda app: [p["title"] for p in dashboard(app, LINKS)["panels"]]  # noqa: E731
    assert "Availability burn rate" in titles(EXAMPLE_APPS["strict"])
    assert "Latency burn rate" in titles(EXAMPLE_APPS["strict"])
    assert "Latency burn rate" not in titles(EXAMPLE_APPS["loose-28d"])
    assert not any("SLO" in t for t in titles(EXAMPLE_APPS["no-slo"]))
    app = webapp(
        repo="https://git.example/shop/checkout", observability={"runbookUrl": "https://rb"}
    )
    links = {link["title"]: link["url"] for link in dashboard(app, LINKS)["links"]}
    assert links == {
        "Incidents in correlator": "https://correlator.example/api/v1/incidents?namespace=shop",
        "Repository": "https://git.example/shop/checkout",
        "Runbook": "https://rb",
    }


def test_slo_limits_are_drawn() -> None:
    panels = {p["title"]: p for p in dashboard(EXAMPLE_APPS["strict"], LINKS)["panels"]}
    error_steps = panels["Error ratio (5xx)"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert error_steps[-1]["value"] == 0.0005
    latency_steps = panels["Latency p50 / p95 / p99"]["fieldConfig"]["defaults"]["thresholds"][
        "steps"
    ]
    assert latency_steps[-1]["value"] == 100.0


def test_layout_is_a_valid_grid() -> None:
    for app in EXAMPLE_APPS.values():
        panels = dashboard(app, LINKS)["panels"]
        assert [p["id"] for p in panels] == list(range(1, len(panels) + 1))
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        cells = set()
        for panel in panels:
            pos = panel["gridPos"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, panel["title"]
                    cells.add((x, y))


def test_datasources_are_variables_and_rates_use_rate_interval() -> None:
    board = dashboard(EXAMPLE_APPS["common"], LINKS)
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "loki", "jaeger"]
    text = json.dumps(board)
    assert "${correlator." not in text
    assert "[$__rate_interval]" in text
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"].startswith("${"), panel["title"]


def test_logs_traces_and_extra_panels_come_from_the_spec() -> None:
    app = webapp(
        observability={
            "logSelector": '{app="checkout", level="error"}',
            "traceService": "checkout-api",
            "extraPanels": [
                {"title": "Orders/s", "expr": 'sum(rate(orders_total{job="x"}[5m]))', "unit": "ops"}
            ],
        }
    )
    panels = {p["title"]: p for p in dashboard(app, LINKS)["panels"]}
    # The app's namespace is forced in, as correlator's own queries have it.
    assert panels["Logs"]["targets"][0]["expr"] == '{namespace="shop",app="checkout",level="error"}'
    assert panels["Traces"]["targets"][0]["service"] == "checkout-api"
    assert panels["Orders/s"]["targets"][0]["expr"] == 'sum(rate(orders_total{job="x"}[5m]))'
    assert panels["Orders/s"]["fieldConfig"]["defaults"]["unit"] == "ops"


def test_a_dashboards_logs_stay_in_the_apps_namespace() -> None:
    app = webapp(observability={"logSelector": '{app="checkout"}'})
    panels = {p["title"]: p for p in dashboard(app, LINKS)["panels"]}
    assert panels["Logs"]["targets"][0]["expr"] == '{namespace="shop",app="checkout"}'


def test_hostile_spec_values_stay_values() -> None:
    app = webapp(
        observability={
            "logSelector": '{app="\\"}], \\"panels\\": [{\\"type\\": \\"html\\"} '
            '${correlator.uid}"}'
        }
    )
    board = dashboard(app, LINKS)
    assert {p["type"] for p in board["panels"]} <= {"row", "timeseries", "stat", "logs", "traces"}
    assert board["panels"][-2]["targets"][0]["expr"].endswith('${correlator.uid}"}')


def test_one_folder_per_team() -> None:
    assert team_folder("payments") == team_folder("payments")
    assert team_folder("payments").uid != team_folder("storefront").uid
    assert len(team_folder("t" * 63).uid) <= 40
