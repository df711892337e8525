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
from correlator.sinks.message import duration_text
from correlator.web.graphs import render_png
from correlator.web.problems import Problem
from correlator.web.routes import ID_MAX, RETRY_AFTER_S, _incident_filter
from correlator.web.state import STORE

pages = web.RouteTableDef()
templates = Environment(
    loader=PackageLoader("correlator.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
# A page that shows alert content must never run script or be framed elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _html(name: str, **context: Any) -> web.Response:
    body = templates.get_template(name).render(**context)
    return web.Response(text=body, content_type="text/html", headers=SECURITY_HEADERS)


def _id(request: web.Request) -> int:
    raw = request.match_info["incident_id"]
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= ID_MAX:
        raise Problem(400, f"incident id must be a positive integer, got {raw!r}")
    return int(raw)


def _web_url(url: str | None) -> str | None:
    return url if url and url.startswith(("https://", "http://")) else None


async def _incident(request: web.Request, incident_id: int) -> Any:
    try:
        incident = await request.app[STORE].get_incident(incident_id)
    except StoreUnavailable as exc:
        raise Problem(
            503, f"the store is unavailable: {exc}", headers={"Retry-After": RETRY_AFTER_S}
        ) from None
    if incident is None:
        raise Problem(404, f"no incident with id {incident_id}")
    return incident


@pages.get("/incidents")
async def incident_list(request: web.Request) -> web.Response:
    incident_filter = _incident_filter(request.query)
    try:
        items, next_before = await request.app[STORE].list_incidents(incident_filter)
    except StoreUnavailable as exc:
        raise Problem(503, f"the store is unavailable: {exc}") from None
    from correlator.web.routes import encode_cursor

    cursor = encode_cursor(next_before) if next_before is not None else None
    status = request.query.get("status")
    return _html("incidents.html", items=items, next_cursor=cursor, status=status)


@pages.get("/incidents/{incident_id}")
async def incident_page(request: web.Request) -> web.Response:
    incident = await _incident(request, _id(request))
    report = incident.report
    resolved = incident.status == AlertStatus.RESOLVED and incident.resolved_at is not None
    duration = (
        duration_text((incident.resolved_at - incident.started_at).total_seconds())
        if resolved
        else None
    )
    annotations = incident.common_annotations
    return _html(
        "incident.html",
        incident=incident,
        report=report,
        graphs=(report or {}).get("series", []),
        severity=incident.common_labels.get("severity"),
        summary=annotations.get("summary") or annotations.get("description"),
        runbook=_web_url(annotations.get("runbook_url")),
        duration=duration,
    )


@pages.get("/api/v1/incidents/{incident_id}/graphs/{number}.png")
async def graph(request: web.Request) -> web.Response:
    incident = await _incident(request, _id(request))
    raw = request.match_info["number"]
    series = (incident.report or {}).get("series", [])
    if not raw.isascii() or not raw.isdigit() or int(raw) >= len(series):
        raise Problem(404, f"incident {incident.id} has no graph {raw!r} ({len(series)} graphs)")
    png = render_png(series[int(raw)], (incident.report or {}).get("windows"))
    return web.Response(
        body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"}
    )
