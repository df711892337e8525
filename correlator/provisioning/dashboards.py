"""The Grafana dashboard of a WebApplication, from dashboards/webapp.json (pure).

Golden signals from Istio (request rate, error ratio, latency percentiles with the SLO lines),
saturation (CPU, memory, throttling, restarts, replicas), SLO attainment, error budget and
burn rate for each SLO the app declares, its logs (Loki) and traces (Jaeger), deployment and
incident annotations, and links to its repository, incidents and runbook. Datasources are
template variables, and rates use `$__rate_interval`. Works in Grafana 10 to 12.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

from correlator.catalogue import trace_service
from correlator.models.webapp import WebApplication
from correlator.provisioning.alert_rules import decimal_text
from correlator.provisioning.naming import UID_MAX, Links, dashboard_uid, series_values
from correlator.provisioning.templates import keep_supported, render
from correlator.tenancy import app_log_selector

OWNER_TAG = "correlator"
GRID_WIDTH = 24


@dataclass(frozen=True, slots=True)
class Folder:
    uid: str
    title: str


@functools.cache
def template() -> dict[str, Any]:
    text = resources.files("correlator.assets").joinpath("dashboards", "webapp.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def team_folder(team: str) -> Folder:
    """One folder per team, its UID fixed by the team's name."""
    digest = hashlib.sha256(team.encode()).hexdigest()[:8]
    readable = team[: UID_MAX - len("team--") - 8].strip("-")
    return Folder(uid=f"team-{readable}-{digest}", title=f"Team {team}")


def _features(app: WebApplication) -> set[str]:
    features = set()
    if app.spec.slo.availability is not None:
        features.add("availability")
    if app.spec.slo.latency is not None:
        features.add("latency")
    if app.spec.repo:
        features.add("repo")
    if app.spec.observability.runbook_url:
        features.add("runbook")
    return features


def _budget(target: Decimal | None) -> str:
    return decimal_text((Decimal(100) - target) / Decimal(100)) if target is not None else "1"


def _values(app: WebApplication, links: Links) -> dict[str, str]:
    slo = app.spec.slo
    observability = app.spec.observability
    latency = slo.latency
    return {
        **series_values(app),
        "uid": dashboard_uid(app.namespace, app.name),
        "window": f"{slo.window_days}d",
        "availability_target": f"{decimal_text(slo.availability)}%" if slo.availability else "",
        "availability_budget": _budget(slo.availability),
        "latency_target": (
            f"{decimal_text(latency.target)}% under {decimal_text(latency.threshold_ms)} ms"
            if latency
            else ""
        ),
        "latency_budget": _budget(latency.target if latency else None),
        "le": decimal_text(latency.threshold_ms) if latency else "",
        # The spec's matchers with the app's namespace forced in, as correlator reads them:
        # a dashboard never shows another namespace's logs either.
        "log_selector": app_log_selector(app, "namespace")
        or f'{{namespace="{app.namespace}", app="{app.name}"}}',
        "trace_service": trace_service(app),
        "incidents_url": links.incidents_url(app),
        "repo": app.spec.repo or "",
        "runbook_url": observability.runbook_url or "",
    }


def _extra_panel(title: str, expr: str, unit: str) -> dict[str, Any]:
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    return {
        "type": "timeseries",
        "title": title,
        "datasource": datasource,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "datasource": datasource}],
    }


def _layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ids and positions: rows across, graphs two by two, stats four across, logs wide."""
    x = y = 0
    row_height = 0
    laid_out = []
    for panel_id, panel in enumerate(panels, start=1):
        kind = panel["type"]
        width, height = {"row": (24, 1), "stat": (6, 4), "logs": (24, 10), "traces": (24, 10)}.get(
            kind, (12, 8)
        )
        if kind == "row" or x + width > GRID_WIDTH:
            x, y = 0, y + row_height
            row_height = 0
        laid_out.append(
            {**panel, "id": panel_id, "gridPos": {"x": x, "y": y, "w": width, "h": height}}
        )
        x += width
        row_height = max(row_height, height)
        if kind == "row":
            x, y, row_height = 0, y + height, 0
    return laid_out


def _threshold_lines(panels: list[dict[str, Any]], app: WebApplication) -> None:
    """Draw the SLO limits on the error-ratio and latency graphs."""
    slo = app.spec.slo
    lines = {
        "Error ratio (5xx)": (Decimal(100) - slo.availability) / 100 if slo.availability else None,
        "Latency p50 / p95 / p99": slo.latency.threshold_ms if slo.latency else None,
    }
    for panel in panels:
        limit = lines.get(panel.get("title", ""))
        if limit is None:
            continue
        defaults = panel["fieldConfig"]["defaults"]
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": float(limit)}],
        }
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}


def dashboard(app: WebApplication, links: Links) -> dict[str, Any]:
    """The dashboard JSON (the `dashboard` member of POST /api/dashboards/db)."""
    features = _features(app)
    rendered: dict[str, Any] = render(template(), _values(app, links))
    rendered.pop("__comment", None)
    rendered["tags"] = [*rendered["tags"], f"webapp:{app.namespace}/{app.name}"]
    rendered["links"] = keep_supported(rendered["links"], features)
    panels = keep_supported(rendered["panels"], features)
    if app.spec.observability.extra_panels:
        panels.append(
            {"type": "row", "title": "From the WebApplication", "collapsed": False, "panels": []}
        )
        panels += [
            _extra_panel(panel.title, panel.expr, panel.unit)
            for panel in app.spec.observability.extra_panels
        ]
    _threshold_lines(panels, app)
    rendered["panels"] = _layout(panels)
    return rendered
