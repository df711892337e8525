"""The SLO alerts as Grafana-managed alert rules (provisioning API shape), for teams that
route alerts through Grafana rather than Prometheus (pure).

Same alerts, thresholds, labels and annotations as the Prometheus rules of alert_rules/; the
recording rules are inlined into each query, because Grafana evaluates the query itself and
has no recording rules to read. Query A is the alert's PromQL (it returns series only while
the condition holds), C a threshold on A; no data means the condition does not hold.
"""

from __future__ import annotations

import hashlib
from typing import Any

from correlator.models.webapp import WebApplication
from correlator.provisioning.alert_rules import rule_groups
from correlator.provisioning.naming import Links

OWNER_LABEL = ("managed_by", "correlator")
QUERY_RANGE_S = 600


def wants_grafana_rules(app: WebApplication, teams: frozenset[str]) -> bool:
    """Grafana-managed rules are chosen per team (settings) or per app (the spec)."""
    return app.spec.alerting.grafana_managed or app.spec.team in teams


def rule_uid(app: WebApplication, alertname: str) -> str:
    digest = hashlib.sha256(f"{app.namespace}/{app.name}/{alertname}".encode()).hexdigest()[:20]
    return f"wa-{digest}"


def _inline_recordings(expr: str, records: dict[str, str], match: str) -> str:
    for name, recorded in records.items():
        expr = expr.replace(f"{name}{{{match}}}", f"({recorded})")
    return expr


def grafana_alert_rules(
    app: WebApplication,
    links: Links,
    *,
    folder_uid: str,
    datasource_uid: str,
    notification_settings: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One ProvisionedAlertRule per SLO alert of the app; `notification_settings` names the
    contact point the rules notify directly (simplified routing), None: the policy tree."""
    match = f'namespace="{app.namespace}",webapp="{app.name}"'
    rules = []
    for group in rule_groups(app, links):
        records = {r["record"]: r["expr"] for r in group["rules"] if "record" in r}
        if not records:
            continue  # the workload group stays with Prometheus
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            expr = " ".join(_inline_recordings(rule["expr"], records, match).split())
            rules.append(
                {
                    "uid": rule_uid(app, rule["alert"]),
                    "orgID": 1,
                    "folderUID": folder_uid,
                    "ruleGroup": f"webapp {app.namespace}/{app.name}",
                    "title": f"{rule['alert']} {app.namespace}/{app.name}",
                    "condition": "C",
                    "data": [
                        {
                            "refId": "A",
                            "datasourceUid": datasource_uid,
                            "queryType": "",
                            "relativeTimeRange": {"from": QUERY_RANGE_S, "to": 0},
                            "model": {"refId": "A", "expr": expr, "instant": True},
                        },
                        {
                            "refId": "C",
                            "datasourceUid": "__expr__",
                            "queryType": "",
                            "relativeTimeRange": {"from": 0, "to": 0},
                            "model": {
                                "refId": "C",
                                "type": "threshold",
                                "expression": "A",
                                "datasource": {"type": "__expr__", "uid": "__expr__"},
                                "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                            },
                        },
                    ],
                    "noDataState": "OK",
                    "execErrState": "Error",
                    "for": rule["for"],
                    "labels": {**rule["labels"], OWNER_LABEL[0]: OWNER_LABEL[1]},
                    "annotations": rule["annotations"],
                    "isPaused": False,
                    **(
                        {"notification_settings": notification_settings}
                        if notification_settings
                        else {}
                    ),
                }
            )
    return rules
