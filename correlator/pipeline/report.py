"""The stored report of one correlation (`models/report.Report`): ranked suspects with their
evidence and links, what was missing, deploys, the graphs' series, and the report of a
correlation that failed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import quote

import pandas as pd

from correlator.analysis.evidence import Analysis
from correlator.analysis.findings import Finding
from correlator.analysis.rank import Suspect as RankedSuspect
from correlator.analysis.windows import Windows
from correlator.models.report import (
    App,
    Change,
    Evidence,
    Inputs,
    Missing,
    Report,
    Scope,
    Series,
    Suspect,
)
from correlator.models.report import Windows as ReportWindows
from correlator.pipeline.changes import change_evidence
from correlator.pipeline.fetch import Fetch
from correlator.settings import Settings

MAX_GRAPHS = 3
MAX_POINTS = 240
MAX_SUSPECTS = 10

FindingLinks = Callable[[str, Finding], dict[str, str]]


def build_report(
    settings: Settings,
    incident_id: int,
    analysis: Analysis,
    fetch: Fetch,
    scope: tuple[list[str], list[str]],
    log_query: Callable[[str], str],
    now: datetime,
    *,
    series: list[Series] | None = None,
    app: App | None = None,
    inputs: Inputs | None = None,
) -> Report:
    """`scope`: the alerting services and every service in scope; `log_query(service)`: the
    LogQL stream its lines came from; `series`, `app`, `inputs`: see `Report`."""
    alerting, services = scope
    links = EvidenceLinks(settings, analysis.windows, log_query)
    changes = change_evidence(fetch.changes, analysis)
    for suspect in analysis.suspects:
        for finding in suspect.evidence:
            if finding.kind == "log" and not finding.query:  # the stream it came from
                finding.query = log_query(suspect.service)
            if finding.kind == "metric":  # the query of this service's labels
                finding.query = fetch.queries.get(suspect.service, {}).get(
                    finding.signal, finding.query
                )
    return Report(
        incident_id=incident_id,
        generated_at=now,
        status="partial" if fetch.missing else "complete",
        windows=report_windows(analysis.windows),
        scope=Scope(alerting=alerting, services=services),
        suspects=[
            ranked(s, i, links.for_finding)
            for i, s in enumerate(analysis.suspects[:MAX_SUSPECTS], 1)
        ],
        missing=[Missing.model_validate(m) for m in fetch.missing],
        changes=[Change.model_validate(c) for c in changes],
        notes=list(analysis.notes),
        series=series or [],
        timings_ms={k: round(v, 1) for k, v in fetch.timings_ms.items()},
        analysed_for=incident_id,  # the incident this analysis ran for
        app=app,
        inputs=inputs,
    )


def report_windows(windows: Windows) -> ReportWindows:
    return ReportWindows(
        baseline_start=windows.baseline_start,
        baseline_end=windows.baseline_end,
        incident_start=windows.incident_start,
        incident_end=windows.incident_end,
        onset=windows.onset,
    )


def evidence(finding: Finding, links: dict[str, str] | None = None) -> Evidence:
    return Evidence(
        kind=finding.kind,
        signal=finding.signal,
        detail=finding.detail,
        score=round(finding.score, 2),
        before=finding.before,
        after=finding.after,
        unit=finding.unit,
        change_time=finding.change_time,
        query=finding.query,
        samples=list(finding.samples),
        trace_ids=list(finding.trace_ids),
        links=links or {},
    )


def ranked(suspect: RankedSuspect, rank: int, links: FindingLinks | None = None) -> Suspect:
    """An analysis's suspect as the report shows it, at `rank`."""
    return Suspect(
        rank=rank,
        service=suspect.service,
        score=round(suspect.score, 4),
        confidence=round(suspect.confidence, 3),
        weak=suspect.weak,
        reason=suspect.reason,
        change_time=suspect.change_time,
        caused_by=list(suspect.caused_by),
        affects=list(suspect.affects),
        evidence=[
            evidence(f, links(suspect.service, f) if links else None) for f in suspect.evidence
        ],
    )


def evidence_series(analysis: Analysis, metrics: pd.DataFrame) -> list[Series]:
    """The series behind the top suspects' strongest metric evidence, for the graphs of the
    report (at most MAX_POINTS points each, over both windows)."""
    series: list[Series] = []
    if metrics.empty:
        return series
    shown = [
        (suspect, finding)
        for suspect in analysis.suspects
        for finding in [next((f for f in suspect.evidence if f.kind == "metric"), None)]
        if finding is not None
    ]
    if not shown:
        return series
    # One pass over the frame for all of them (it holds every service's every signal), not
    # two comparisons of every row per suspect.
    wanted = metrics[
        metrics["service"].isin({s.service for s, _ in shown})
        & metrics["signal"].isin({f.signal for _, f in shown})
    ]
    groups = dict(list(wanted.groupby(["service", "signal"], sort=False)))
    for suspect, finding in shown:
        rows = groups.get((suspect.service, finding.signal))
        if rows is None:  # a group-by's groups are never empty
            continue
        rows = rows.sort_values("time")
        step = max(1, len(rows) // MAX_POINTS)
        points = [
            (t, float(v)) for t, v in zip(rows["time"][::step], rows["value"][::step], strict=True)
        ]
        series.append(
            Series(
                title=f"{suspect.service}: {finding.signal}",
                service=suspect.service,
                signal=finding.signal,
                unit=finding.unit,
                change_time=finding.change_time,
                points=points,
            )
        )
        if len(series) == MAX_GRAPHS:
            break
    return series


def failed_report(incident_id: int, now: datetime, exc: BaseException) -> Report:
    return Report(
        incident_id=incident_id,
        generated_at=now,
        status="partial",
        windows=None,
        missing=[
            Missing(backend="analysis", what="everything", reason=f"{type(exc).__name__}: {exc}")
        ],
        notes=["the correlation failed; see the service log for the stack trace"],
    )


class EvidenceLinks:
    """Grafana Explore and Jaeger UI links of each piece of evidence (templates in settings)."""

    def __init__(
        self, settings: Settings, windows: Windows, log_query: Callable[[str], str]
    ) -> None:
        self.c = settings.correlation
        self.log_query = log_query
        self.jaeger = (self.c.jaeger_ui_url or settings.jaeger.url or "").rstrip("/")
        self.start_ms = int(windows.baseline_start.timestamp() * 1000)
        self.end_ms = int(windows.incident_end.timestamp() * 1000)

    def _pane(self, uid: str, query: str) -> str:
        pane = {
            "a": {
                "datasource": uid,
                "queries": [{"refId": "A", "expr": query, "datasource": {"uid": uid}}],
                "range": {"from": str(self.start_ms), "to": str(self.end_ms)},
            }
        }
        return quote(json.dumps(pane, separators=(",", ":")), safe="")

    def for_finding(self, service: str, finding: Finding) -> dict[str, str]:
        links: dict[str, str] = {}
        grafana = (self.c.grafana_url or "").rstrip("/")
        values: Mapping[str, str] = {
            "grafana": grafana,
            "query": quote(finding.query, safe=""),
            "from": str(self.start_ms),
            "to": str(self.end_ms),
            "jaeger": self.jaeger,
        }
        if grafana and finding.kind == "metric" and finding.query:
            links["explore"] = self.c.metric_link.format(
                prometheus_pane=self._pane(self.c.grafana_prometheus_uid, finding.query), **values
            )
        if grafana and finding.kind == "log":
            links["explore"] = self.c.log_link.format(
                loki_pane=self._pane(self.c.grafana_loki_uid, self.log_query(service)), **values
            )
        if self.jaeger:
            for i, trace_id in enumerate(finding.trace_ids):
                links[f"trace_{i + 1}"] = self.c.trace_link.format(
                    trace_id=quote(trace_id, safe=""), **values
                )
        return links
