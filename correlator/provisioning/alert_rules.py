"""Prometheus rules for a WebApplication, from the templates in alert_rules/ (pure).

For each app: the availability and latency SLO groups (recording rules and multi-window,
multi-burn-rate page and ticket alerts, after the SRE workbook) when the app declares those
SLOs, and the workload group (crash loops, CPU throttling, memory near the limit). Emitted as
a rule file, as a `PrometheusRule` object, and as a `promtool test rules` file that checks the
generated alerts: they fire on a sustained burn, stay quiet on a short spike, and split page
from ticket.

Thresholds are computed in decimal arithmetic, so they print exactly (0.0144, never
0.014400000000000001).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Context, Decimal
from importlib import resources
from typing import Any

import yaml

from correlator.models.webapp import WebApplication
from correlator.provisioning.naming import Links, managed_labels, series_values
from correlator.provisioning.templates import REQUIRES_KEY, render

TEMPLATE_NAMES = ("slo-availability", "slo-latency", "workload")

# The SRE workbook's burn rates for a 30-day window: (budget share, long window hours).
BURN_RATES = {
    "page_fast": Decimal("14.4"),
    "page_slow": Decimal(6),
    "ticket_fast": Decimal(3),
    "ticket_slow": Decimal(1),
}
# Tests start with 10 hours of healthy traffic: long enough that a 5-minute spike stays under
# every threshold in every window (its 3d ratio is 0.82x the budget), short enough for promtool.
HISTORY_MINUTES = 10 * 60
REQUESTS_PER_MINUTE = Decimal(1000)
_SIGNIFICANT = Context(prec=10)


@dataclass(frozen=True, slots=True)
class RuleTemplate:
    name: str
    group: dict[str, Any]
    tests: dict[str, Any]


@functools.cache
def templates() -> dict[str, RuleTemplate]:
    """The rule templates and their promtool test templates, read once."""
    root = resources.files("correlator.assets").joinpath("alert_rules")
    loaded = {}
    for name in TEMPLATE_NAMES:
        group = yaml.safe_load(root.joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
        tests = yaml.safe_load(
            root.joinpath("tests").joinpath(f"{name}.test.yaml").read_text(encoding="utf-8")
        )
        loaded[name] = RuleTemplate(name, group, tests)
    return loaded


def decimal_text(value: Decimal) -> str:
    """A decimal as Prometheus and humans read it: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def burn_thresholds(target_percent: Decimal, window_days: int) -> dict[str, Decimal]:
    """Error-ratio thresholds of the four burn-rate conditions for an SLO target."""
    budget = (Decimal(100) - target_percent) / Decimal(100)
    scale = Decimal(window_days) / Decimal(30)
    # Ten significant digits: exact for the usual targets, and a window that is not 30 days
    # (28/30 repeats) gets a threshold a person can still read.
    return {name: _SIGNIFICANT.plus(rate * scale * budget) for name, rate in BURN_RATES.items()}


def _slo_values(app: WebApplication, template: str) -> dict[str, str] | None:
    slo = app.spec.slo
    if template == "slo-availability":
        if slo.availability is None:
            return None
        target = slo.availability
        summary = f"{decimal_text(target)}%"
        extra: dict[str, str] = {}
    elif template == "slo-latency":
        if slo.latency is None:
            return None
        target = slo.latency.target
        threshold = decimal_text(slo.latency.threshold_ms)
        summary = f"{decimal_text(target)}% under {threshold} ms"
        extra = {"le": threshold}
    else:
        return {}
    thresholds = burn_thresholds(target, slo.window_days)
    return {
        **{name: decimal_text(value) for name, value in thresholds.items()},
        "summary_slo": summary,
        **extra,
    }


def _alert_annotations(app: WebApplication, links: Links) -> dict[str, str]:
    annotations = {"dashboard_url": links.dashboard_url(app)}
    if app.spec.observability.runbook_url:
        annotations["runbook_url"] = app.spec.observability.runbook_url
    return annotations


def _route_label(app: WebApplication, severity: str) -> dict[str, str]:
    """The Alertmanager receiver the app asks for, per kind of alert, as a label to route on."""
    alerting = app.spec.alerting
    receiver = (
        alerting.page_receiver if severity == alerting.severity.page else alerting.ticket_receiver
    )
    return {"receiver": receiver} if receiver else {}


def rule_groups(app: WebApplication, links: Links) -> list[dict[str, Any]]:
    """The rule groups of one app, in Prometheus rule-file form."""
    groups = []
    for name, template in templates().items():
        slo_values = _slo_values(app, name)
        if slo_values is None:
            continue
        group = render(template.group, {**series_values(app), **slo_values})
        group["name"] = f"{app.namespace}/{app.name}/{template.group['name']}"
        for rule in group["rules"]:
            if "alert" in rule:
                rule["annotations"] = {**rule["annotations"], **_alert_annotations(app, links)}
                rule["labels"] = {**rule["labels"], **_route_label(app, rule["labels"]["severity"])}
        groups.append(group)
    return groups


def rule_file(app: WebApplication, links: Links) -> dict[str, Any]:
    """A Prometheus rule file (`rule_files:` entry) for one app."""
    return {"groups": rule_groups(app, links)}


def prometheus_rule(app: WebApplication, links: Links) -> dict[str, Any]:
    """The same groups as a prometheus-operator `PrometheusRule` object in the app's namespace."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"webapp-{app.name}",
            "namespace": app.namespace,
            "labels": managed_labels(app),
        },
        "spec": {"groups": rule_groups(app, links)},
    }


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=10_000)


# --- promtool unit tests ---------------------------------------------------------------


def _counter(segments: Iterable[tuple[int, Decimal]]) -> str:
    """promtool series notation for a counter growing by `per_minute` over `minutes`."""
    parts = []
    value = Decimal(0)
    first = True
    for minutes, per_minute in segments:
        if first:
            parts.append(f"{decimal_text(value)}+{decimal_text(per_minute)}x{minutes}")
            value += per_minute * minutes
            first = False
        else:
            start = value + per_minute
            parts.append(f"{decimal_text(start)}+{decimal_text(per_minute)}x{minutes - 1}")
            value = start + per_minute * (minutes - 1)
    return " ".join(parts)


def _scenario(segments: list[tuple[int, Decimal]]) -> tuple[str, str, str]:
    """(good, bad, total) counters for segments of (minutes, error ratio)."""
    good = _counter((m, REQUESTS_PER_MINUTE * (1 - ratio)) for m, ratio in segments)
    bad = _counter((m, REQUESTS_PER_MINUTE * ratio) for m, ratio in segments)
    total = _counter((m, REQUESTS_PER_MINUTE) for m, _ in segments)
    return good, bad, total


def _test_values(app: WebApplication, template: str) -> tuple[dict[str, str], set[str]]:
    """Placeholder values of a template's tests, and which optional cases are possible."""
    feasible: set[str] = set()
    values: dict[str, str] = {}
    if template in ("slo-availability", "slo-latency"):
        slo = app.spec.slo
        target = slo.availability if template == "slo-availability" else slo.latency.target  # type: ignore[union-attr]
        assert target is not None
        budget = (Decimal(100) - target) / Decimal(100)
        thresholds = burn_thresholds(target, slo.window_days)
        healthy = (HISTORY_MINUTES, Decimal(0))
        # A total outage pages only where 14.4x the budget is below 100% errors.
        if thresholds["page_fast"] < 1:
            feasible.add("page_on_outage")
        # A steady burn between the ticket and page thresholds.
        slow_ratio = budget * BURN_RATES["ticket_fast"] * Decimal("1.5")
        if slow_ratio < 1 and slow_ratio < thresholds["page_slow"]:
            feasible.add("ticket_not_page")
        spike_ratio = min(Decimal(1), budget * 100)
        for name, segments in {
            "outage": [healthy, (70, Decimal(1))],
            "spike": [healthy, (5, spike_ratio), (55, Decimal(0))],
            # 4.5x the budget: over the 3d/6h ticket threshold within 3 hours, under both pages.
            "slow_burn": [healthy, (240, min(Decimal(1), slow_ratio))],
        }.items():
            good, bad, total = _scenario(segments)
            values.update({f"{name}_good": good, f"{name}_bad": bad, f"{name}_total": total})
        for offset in (5, 10, 30, 60, 70, 240):
            values[f"t{offset}"] = f"{HISTORY_MINUTES + offset}m"
    return values, feasible


def rule_tests(app: WebApplication, links: Links, rule_file_name: str) -> dict[str, Any]:
    """A `promtool test rules` file for the app's generated rule file."""
    tests: list[dict[str, Any]] = []
    for name, template in templates().items():
        slo_values = _slo_values(app, name)
        if slo_values is None:
            continue
        test_values, feasible = _test_values(app, name)
        values = {**series_values(app), **slo_values, **test_values, **_link_values(app, links)}
        for case in render(template.tests["tests"], values):
            requires = case.pop(REQUIRES_KEY, None)
            if requires is None or requires in feasible:
                tests.append(case)
    alerts = {
        rule["alert"]: rule
        for group in rule_groups(app, links)
        for rule in group["rules"]
        if "alert" in rule
    }
    for case in tests:
        for check in case.get("alert_rule_test", []):
            for expected in check.get("exp_alerts") or []:
                labels = expected.setdefault("exp_labels", {})
                labels.update(_route_label(app, labels.get("severity", "")))
                expected.setdefault(
                    "exp_annotations",
                    {
                        key: _expand_labels(text, expected.get("exp_labels", {}))
                        for key, text in alerts[check["alertname"]]["annotations"].items()
                    },
                )
    return {"rule_files": [rule_file_name], "evaluation_interval": "1m", "tests": tests}


_LABEL_REFERENCE = re.compile(
    r'\{\{\s*(?:\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)|index \$labels "([^"\\]*)")\s*\}\}'
)


def _expand_labels(text: str, labels: dict[str, str]) -> str:
    """What Prometheus makes of `{{ $labels.name }}` and `{{ index $labels "a.b" }}` (the forms
    the templates use) in an annotation."""
    return _LABEL_REFERENCE.sub(
        lambda match: labels.get(match.group(1) or match.group(2), ""), text
    )


def _link_values(app: WebApplication, links: Links) -> dict[str, str]:
    return {
        "dashboard_url": links.dashboard_url(app),
        "runbook_url": app.spec.observability.runbook_url or "",
    }
