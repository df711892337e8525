"""The incident pages (server-rendered HTML, no front-end build) and the report's graphs.

Templates autoescape everything (Jinja2), links are kept only when they are http(s), and the
page loads nothing from elsewhere: its style is inline and its graphs come from this server.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from correlator.errors import StoreUnavailable
from correlator.models.alerts import AlertStatus
from correlator.models.incidents import IncidentDetail
from correlator.sinks.links import kiali_graph
from correlator.sinks.message import duration_text, silence_url
from correlator.store.replay import recent_outcomes
from correlator.web.explain import analysed_for, confidence, timeline
from correlator.web.graphs import render_png
from correlator.web.problems import Problem
from correlator.web.replay import cause_of
from correlator.web.routes import (
    ID_MAX,
    _incident_filter,
    bounded_int,
    encode_cursor,
    incident_of,
)
from correlator.web.state import SETTINGS, STORE

pages = web.RouteTableDef()
templates = Environment(
    loader=PackageLoader("correlator.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
# A page that shows alert content must never run script or be framed elsewhere. Its forms post
# to this site only; `same-origin` keeps the referrer (and a form's Origin) within the site, which
# the forms' cross-site check reads (web/replay.py), and from every link to elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# "Right at rank 1 on N of the last M confirmed incidents of this app": M at most this.
ACCURACY_OF_LAST = 20


def _html(name: str, **context: Any) -> web.Response:
    body = templates.get_template(name).render(**context)
    return web.Response(text=body, content_type="text/html", headers=SECURITY_HEADERS)


def _web_url(url: str | None) -> str | None:
    return url if url and url.startswith(("https://", "http://")) else None


@pages.get("/incidents")
async def incident_list(request: web.Request) -> web.Response:
    incident_filter = _incident_filter(request.query)
    try:
        items, next_before = await request.app[STORE].list_incidents(incident_filter)
    except StoreUnavailable as exc:
        raise Problem(503, f"the store is unavailable: {exc}") from None
    cursor = encode_cursor(next_before) if next_before is not None else None
    status = request.query.get("status")
    return _html("incidents.html", items=items, next_cursor=cursor, status=status)


@pages.get("/incidents/{incident_id}")
async def incident_page(request: web.Request) -> web.Response:
    incident = await incident_of(request)
    report = incident.report
    duration = None
    if incident.status == AlertStatus.RESOLVED and incident.resolved_at is not None:
        duration = duration_text((incident.resolved_at - incident.started_at).total_seconds())
    annotations = incident.common_annotations
    cause = await cause_of(request, incident.id)
    app = report.app.name if report is not None and report.app is not None else None
    outcomes: list[str] = []
    if app is not None:
        try:
            outcomes = await request.app[STORE].read(recent_outcomes, app, ACCURACY_OF_LAST)
        except StoreUnavailable as exc:
            raise Problem(503, f"the store is unavailable: {exc}") from None
    return _html(
        "incident.html",
        incident=incident,
        report=report,
        graphs=report.series if report is not None else [],
        severity=incident.common_labels.get("severity"),
        summary=annotations.get("summary") or annotations.get("description"),
        runbook=_web_url(annotations.get("runbook_url")),
        duration=duration,
        silence=silence_url(incident),
        mesh=_mesh(request, incident),
        confidence=confidence,
        analysed=analysed_for(incident),
        timeline=timeline(incident),
        cause=cause,
        app=app,
        accuracy={"right": outcomes.count("rank1"), "of": len(outcomes)} if outcomes else None,
        in_scope=report.scope.services if report is not None else [],
    )


def _mesh(request: web.Request, incident: IncidentDetail) -> str | None:
    """Kiali's graph around the alerting service (the app's workload) in its namespace (the
    group's, else the first the alerts name)."""
    correlation = request.app[SETTINGS].correlation
    report = incident.report
    alerting: list[str | None] = [*(report.scope.alerting if report else []), None]
    named = (
        alert.labels[label]
        for alert in incident.alerts
        for label in correlation.namespace_labels
        if alert.labels.get(label)
    )
    return kiali_graph(correlation.kiali_url, incident.namespace or next(named, None), alerting[0])


@pages.get("/api/v1/incidents/{incident_id}/graphs/{number}.png")
async def graph(request: web.Request) -> web.Response:
    raw = request.match_info["number"]
    # A number that is no number is the request's fault (400), as a bad id is; one past the
    # report's graphs names a graph that does not exist (404).
    number = bounded_int(raw, 0, ID_MAX)
    if number is None:
        raise Problem(400, f"graph number must be a non-negative integer, got {raw[:40]!r}")
    incident = await incident_of(request)
    report = incident.report
    series = report.series if report is not None else []
    if number >= len(series):
        raise Problem(404, f"incident {incident.id} has no graph {number} ({len(series)} graphs)")
    # graphs.py draws from the JSON form (RFC 3339 strings), as the API serves it.
    windows = report.windows.model_dump(mode="json") if report and report.windows else None
    png = render_png(series[number].model_dump(mode="json"), windows)
    return web.Response(
        body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"}
    )
