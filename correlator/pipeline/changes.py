"""Deploys of the services in scope, and deploys as evidence in the report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from correlator.analysis.evidence import Analysis
from correlator.analysis.findings import Finding
from correlator.analysis.rank import Suspect
from correlator.analysis.windows import Windows
from correlator.backends.prometheus import PrometheusBackend
from correlator.backends.promql import regex_escape, string_literal
from correlator.catalogue import Catalogue, deployed
from correlator.pipeline.fetch import Fetch, call

RECENT_DEPLOY = timedelta(hours=2)


async def fetch_changes(
    catalogue: Catalogue,
    prometheus: PrometheusBackend | None,
    services: list[str],
    namespaces: list[str],
    windows: Windows,
    fetch: Fetch,
) -> None:
    """Deploys of the services in scope: the revision and time the WebApplication records
    (annotations set by the delivery pipeline), else the creation of its newest ReplicaSet
    (kube-state-metrics) as the deploy time. Stored in `fetch.changes`."""
    found: dict[str, dict[str, Any]] = {}
    for service in services:
        app = catalogue.find_in(service, namespaces)
        if app is None:
            continue
        state = deployed(app)
        found[service] = {
            "service": service,
            "revision": state.revision,
            "deployed_at": state.deployed_at,
            "source": state.source,
            "repo": app.spec.repo,
        }
    if prometheus is not None:
        pattern = "|".join(f"{regex_escape(s)}-[a-z0-9]{{5,10}}" for s in sorted(services))
        matchers = f"replicaset=~{string_literal(pattern)}"
        if namespaces:
            spaces = "|".join(regex_escape(n) for n in namespaces)
            matchers += f",namespace=~{string_literal(spaces)}"
        query = f"max by (replicaset) (kube_replicaset_created{{{matchers}}})"
        samples = await call(
            fetch, "prometheus", "deploys", lambda: prometheus.query(query, windows.incident_end)
        )
        for sample in samples or []:
            name = re.sub(r"-[a-z0-9]{5,10}$", "", sample.labels.get("replicaset", ""))
            created = datetime.fromtimestamp(sample.value, UTC)
            if name not in services or created > windows.incident_end:
                continue
            entry = found.setdefault(
                name, {"service": name, "revision": None, "deployed_at": None,
                       "source": "ReplicaSet", "repo": None}
            )  # fmt: skip
            if entry["deployed_at"] is None or (
                entry["source"] == "ReplicaSet" and created > entry["deployed_at"]
            ):
                entry["deployed_at"] = created
    fetch.changes = list(found.values())


def change_evidence(changes: list[dict[str, Any]], analysis: Analysis) -> list[dict[str, Any]]:
    """Deploys as evidence: each suspect deployed shortly before the alert says so in its
    reason and evidence ("deployed 7 min before the alert: abc1234"). Returns the changes as
    JSON, nearest to the alert first."""
    onset = analysis.windows.onset
    out = []
    for change in changes:
        when = change["deployed_at"]
        before = (onset - when).total_seconds() / 60 if when else None
        item = {
            **change,
            "deployed_at": when.isoformat().replace("+00:00", "Z") if when else None,
            "minutes_before_alert": round(before, 1) if before is not None else None,
        }
        out.append(item)
        recent = when is not None and timedelta(0) <= onset - when <= RECENT_DEPLOY
        if not recent:
            continue
        suspect = next((s for s in analysis.suspects if s.service == change["service"]), None)
        if suspect is None:
            # A deploy just before the alert is a suspect of its own, after those with evidence.
            suspect = Suspect(change["service"], 0.0, 0.0, when, "no telemetry left its baseline")
            analysis.suspects.append(suspect)
        revision = f": {change['revision'][:12]}" if change["revision"] else ""
        text = f"deployed {before:.0f} min before the alert{revision}"
        suspect.reason = f"{text}; {suspect.reason}"
        suspect.evidence.insert(
            0,
            Finding(
                service=suspect.service,
                kind="change",
                signal="deploy",
                score=0.0,
                before=None,
                after=None,
                unit="",
                change_time=when,
                detail=text,
                query=change["source"],
            ),
        )
    out.sort(key=lambda c: (c["minutes_before_alert"] is None, c["minutes_before_alert"] or 0))
    return out
