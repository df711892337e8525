"""Grafana-managed SLO alert rules through the provisioning API of the Grafana test server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from correlator.provisioning.grafana import GrafanaTarget
from correlator.provisioning.grafana_rules import grafana_alert_rules, rule_uid
from correlator.provisioning.naming import Links
from correlator.provisioning.reconcile import Action
from correlator.provisioning.reconcile_rules import reconcile_alert_rules
from tests.provisioning.conftest import EXAMPLE_APPS, promtool, webapp

LINKS = Links()
TEAMS = frozenset({"payments"})


def apps() -> list[Any]:
    return [
        webapp(
            "checkout",
            "shop",
            team="payments",
            slo={"availability": 99.9, "latency": {"thresholdMs": 250, "target": 99}},
        ),
        webapp("catalog", "shop", team="storefront", slo={"availability": 99.5}),  # not selected
        webapp(
            "search",
            "shop",
            team="storefront",
            slo={"availability": 99},
            alerting={"grafanaManaged": True},
        ),
        webapp("ledger", "finance", team="payments"),  # no SLO: nothing to alert on
    ]


async def sync(target: GrafanaTarget, **options: Any) -> Any:
    return await reconcile_alert_rules(
        target, options.pop("apps", apps()), LINKS, teams=TEAMS, datasource_uid="prom", **options
    )


async def test_selected_teams_and_apps_get_their_slo_rules(grafana: Any) -> None:
    fake, target = grafana
    report = await sync(target)
    assert report.errors == []
    titles = sorted(rule["title"] for rule in fake.rules.values())
    assert titles == [
        "WebAppAvailabilityBudgetBurnPage shop/checkout",
        "WebAppAvailabilityBudgetBurnPage shop/search",
        "WebAppAvailabilityBudgetBurnTicket shop/checkout",
        "WebAppAvailabilityBudgetBurnTicket shop/search",
        "WebAppLatencyBudgetBurnPage shop/checkout",
        "WebAppLatencyBudgetBurnTicket shop/checkout",
    ]
    rule = fake.rules[rule_uid(apps()[0], "WebAppAvailabilityBudgetBurnPage")]
    assert rule["for"] == "2m" and rule["condition"] == "C" and rule["noDataState"] == "OK"
    assert rule["labels"]["severity"] == "critical" and rule["labels"]["managed_by"] == "correlator"
    assert rule["provenance"] == ""  # X-Disable-Provenance: editable in the UI


async def test_unchanged_resync_writes_nothing_and_a_hand_edit_is_put_back(grafana: Any) -> None:
    fake, target = grafana
    await sync(target)
    writes = fake.writes
    again = await sync(target)
    assert fake.writes == writes and again.count(Action.UNCHANGED) == 6
    uid = rule_uid(apps()[0], "WebAppAvailabilityBudgetBurnTicket")
    fake.rules[uid]["for"] = "1h"
    fake.rules[uid]["data"][0]["model"]["intervalMs"] = 1000  # Grafana's own default: no drift
    report = await sync(target)
    assert [(s.action, s.uid) for s in report.steps if s.action is not Action.UNCHANGED] == [
        (Action.UPDATE, uid)
    ]
    assert fake.rules[uid]["for"] == "15m"


async def test_rules_of_removed_apps_go_and_foreign_rules_stay(grafana: Any) -> None:
    fake, target = grafana
    await sync(target)
    fake.add_foreign_rule("theirs", "Hand made", {"team": "payments"})
    report = await sync(target, apps=apps()[:1])
    deleted = sorted(s.uid for s in report.steps if s.action is Action.DELETE)
    assert deleted == sorted(
        rule_uid(apps()[2], name)
        for name in ("WebAppAvailabilityBudgetBurnPage", "WebAppAvailabilityBudgetBurnTicket")
    )
    assert "theirs" in fake.rules


async def test_provenance_is_kept_when_asked(grafana: Any) -> None:
    fake, target = grafana
    await sync(target, disable_provenance=False)
    assert {rule["provenance"] for rule in fake.rules.values()} == {"api"}


def test_inlined_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"alert": f"check_{i}", "expr": rule["data"][0]["model"]["expr"]}
        for app in EXAMPLE_APPS.values()
        for i, rule in enumerate(
            grafana_alert_rules(app, LINKS, folder_uid="f", datasource_uid="p")
        )
    ]
    assert rules
    (tmp_path / "inlined.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]})
    )
    result = promtool("check", "rules", "inlined.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all("webapp:request_" not in rule["expr"] for rule in rules)  # no recording rule left
