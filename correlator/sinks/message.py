"""The platform-neutral message of an incident (`models/message.Message`): what every sink
renders (pure).

It holds only what a reader needs and what changes meaningfully: a re-notification with
nothing new yields the same message (so nothing is sent), a new alert, a new ranking or the
resolve yields a different one (so the message is edited). The duration is part of it only
once resolved; a running clock would make every notification "new".
"""

from __future__ import annotations

from typing import Any

from correlator.catalogue import deployed
from correlator.models.alerts import AlertStatus
from correlator.models.incidents import IncidentAlerts
from correlator.models.message import (
    GrafanaDetails,
    Message,
    MessageApp,
    MessageEvidence,
    MessageSuspect,
)
from correlator.models.report import Report
from correlator.models.webapp import WebApplication
from correlator.sinks.links import alertmanager_silence, kiali_graph

TOP_SUSPECTS = 3
EVIDENCE_PER_SUSPECT = 2


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def incident_message(
    incident: IncidentAlerts,
    report: Report | None,
    *,
    public_url: str,
    app: WebApplication | None = None,
    dashboard_url: str | None = None,
    kiali_url: str | None = None,
) -> Message:
    labels = incident.common_labels
    firing = [a for a in incident.alerts if a.status == AlertStatus.FIRING]
    resolved = incident.status == AlertStatus.RESOLVED
    suspects = [
        MessageSuspect(
            service=suspect.service,
            reason=suspect.reason,
            evidence=[
                MessageEvidence(detail=e.detail, links=e.links)
                for e in suspect.evidence[:EVIDENCE_PER_SUSPECT]
            ],
        )
        for suspect in (report.suspects if report is not None else [])[:TOP_SUSPECTS]
    ]
    base = public_url.rstrip("/")
    return Message(
        incident_id=incident.id,
        title=incident.alertname or labels.get("alertname") or "alert group",
        status="resolved" if resolved else "firing",
        severity=labels.get("severity", ""),
        namespace=incident.namespace or "",
        summary=incident.common_annotations.get("summary")
        or incident.common_annotations.get("description", ""),
        runbook_url=incident.common_annotations.get("runbook_url", ""),
        alerts_firing=len(firing),
        alerts_total=len(incident.alerts),
        started_at=incident.started_at,
        resolved_at=incident.resolved_at if resolved else None,
        duration=(
            duration_text((incident.resolved_at - incident.started_at).total_seconds())
            if resolved and incident.resolved_at
            else None
        ),
        suspects=suspects,
        missing=[f"{m.backend}: {m.reason}" for m in (report.missing if report else [])],
        analysed=report is not None,
        incident_url=f"{base}/incidents/{incident.id}",
        # The app's dashboard over the incident: from 30 min before it began to its end.
        dashboard_url=_time_range(dashboard_url, incident) if dashboard_url else None,
        graphs=[
            f"{base}/api/v1/incidents/{incident.id}/graphs/{n}.png"
            for n in range(len(report.series if report else []))
        ],
        # Who owns it (from the WebApplication), and what was deployed before the incident.
        app=_app(app, report),
        # Grafana Alerting's own links and values, when a Grafana-managed rule fired.
        grafana=_grafana(incident),
        # A responder's next clicks: silence the group, see the mesh around the app.
        silence_url=silence_url(incident),
        mesh_url=kiali_graph(
            kiali_url, app.namespace if app else incident.namespace, app.name if app else None
        ),
    )


def silence_url(incident: IncidentAlerts) -> str | None:
    """Grafana's own silence link for a Grafana-managed rule; else Alertmanager's form (its
    `externalURL`) prefilled with the labels every alert of the group shares."""
    grafana = _grafana(incident)
    if grafana is not None:
        return grafana.links.get("Silence") or None
    return alertmanager_silence(
        incident.external_url, incident.common_labels or incident.group_labels
    )


def responder_links(message: Message) -> list[tuple[str, str]]:
    """(title, url) of the links every renderer offers, in a fixed order: the incident page,
    the dashboard, the graphs, the runbook, Silence, Mesh, then Grafana's rule and panel."""
    links = [("Incident page", message.incident_url)]
    if message.dashboard_url:
        links.append(("Dashboard", message.dashboard_url))
    links += [(f"Graph {n}", url) for n, url in enumerate(message.graphs, 1)]
    if message.runbook_url.startswith(("https://", "http://")):
        links.append(("Runbook", message.runbook_url))
    if message.silence_url:
        links.append(("Silence", message.silence_url))
    if message.mesh_url:
        links.append(("Mesh", message.mesh_url))
    links += [(t, u) for t, u in grafana_links(message) if t != "Silence"]
    return links


def evidence_links(evidence: MessageEvidence) -> list[tuple[str, str]]:
    """(title, url) of one piece of evidence: Explore, then its traces."""
    titles = {"explore": "Explore"}
    return [
        (titles.get(name, name.replace("_", " ").capitalize()), url)
        for name, url in evidence.links.items()
        if url.startswith(("https://", "http://"))
    ]


GRAFANA_LINKS = (("rule_url", "Alert rule"), ("panel_url", "Panel"), ("silence_url", "Silence"))


def _grafana(incident: IncidentAlerts) -> GrafanaDetails | None:
    """The rule, panel and silence links and the values of the first firing alert Grafana
    sent (the first alert if none fires); None when Alertmanager sent the group."""
    with_details = [a for a in incident.alerts if a.details]
    if not with_details:
        return None
    alert = next((a for a in with_details if a.status == AlertStatus.FIRING), with_details[0])
    details = alert.details or {}
    links = {
        title: details[name]
        for name, title in GRAFANA_LINKS
        if str(details.get(name, "")).startswith(("https://", "http://"))
    }
    values = details.get("values") or {}
    return GrafanaDetails(
        links=links,
        values=", ".join(f"{ref}={value:g}" for ref, value in values.items() if value is not None)
        or details.get("value_string", ""),
    )


def grafana_links(message: Message) -> list[tuple[str, str]]:
    """(title, url) of the Grafana links a message carries, in a fixed order."""
    return list(message.grafana.links.items()) if message.grafana is not None else []


def _time_range(url: str, incident: IncidentAlerts) -> str:
    start = int((incident.started_at.timestamp() - 1800) * 1000)
    end = f"{int(incident.resolved_at.timestamp() * 1000)}" if incident.resolved_at else "now"
    return f"{url}?from={start}&to={end}"


def _app(app: WebApplication | None, report: Report | None) -> MessageApp | None:
    if app is None:
        return None
    changes = report.changes if report is not None else []
    change = next((c for c in changes if c.service == app.name and c.revision), None)
    return MessageApp(
        name=app.name,
        namespace=app.namespace,
        team=app.spec.team,
        chat_channel=app.spec.alerting.chat_channel,
        repo=app.spec.repo,
        revision=change.revision if change else deployed(app).revision,
        deployed_minutes_before_alert=change.minutes_before_alert if change else None,
        runbook_url=app.spec.observability.runbook_url,
    )


def material(message: Message) -> dict[str, Any]:
    """What makes a message news: its status, its alerts, which services are suspected, what is
    missing. A re-analysis that only moves numbers in the reasons edits nothing."""
    return {
        "status": message.status,
        "title": message.title,
        "alerts": [message.alerts_firing, message.alerts_total],
        "suspects": [s.service for s in message.suspects],
        "missing": sorted(m.split(":", 1)[0] for m in message.missing),
        "analysed": message.analysed,
        "revision": message.app.revision if message.app is not None else None,
    }
