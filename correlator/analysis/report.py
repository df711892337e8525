"""The whole analysis of one incident's telemetry → a ranked report (pure, JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from correlator.analysis.findings import Finding
from correlator.analysis.logs import log_findings
from correlator.analysis.metrics import metric_findings
from correlator.analysis.paths import path_findings
from correlator.analysis.rank import Suspect, rank
from correlator.analysis.telemetry import Telemetry
from correlator.analysis.traces import call_edges, trace_findings
from correlator.analysis.windows import Windows


@dataclass(slots=True)
class Analysis:
    windows: Windows
    suspects: list[Suspect]
    services: list[str]
    notes: list[str] = field(default_factory=list)

    def ranking(self) -> list[str]:
        return [s.service for s in self.suspects]


def analyse(telemetry: Telemetry, windows: Windows) -> Analysis:
    findings: list[Finding] = []
    findings += metric_findings(telemetry.metrics, telemetry.signals, windows)
    findings += log_findings(telemetry.logs, windows)
    findings += trace_findings(telemetry.spans, windows)
    findings += path_findings(telemetry.logs, telemetry.spans, windows)
    link_traces_to_logs(findings, telemetry.logs)
    edges = set(telemetry.edges) | call_edges(telemetry.spans)
    notes = []
    for name, frame in (
        ("metrics", telemetry.metrics),
        ("logs", telemetry.logs),
        ("traces", telemetry.spans),
    ):
        if frame.empty:
            notes.append(f"no {name} in the analysed windows")
    services = sorted(telemetry.services())
    return Analysis(windows, rank(findings, edges, services=services), services, notes)


def link_traces_to_logs(findings: list[Finding], logs: pd.DataFrame, per_finding: int = 3) -> None:
    """A trace finding's sample lines are the logs its example traces wrote (same trace id):
    the slow or failing request, told by the service itself."""
    if logs.empty:
        return
    by_trace = logs[logs["trace_id"] != ""].groupby("trace_id")["line"]
    lines = {trace: list(group[:per_finding]) for trace, group in by_trace}
    for finding in findings:
        if finding.kind != "trace" or finding.samples:
            continue
        for trace_id in finding.trace_ids:
            finding.samples += lines.get(trace_id, [])[: per_finding - len(finding.samples)]


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def finding_json(finding: Finding, links: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "signal": finding.signal,
        "detail": finding.detail,
        "score": round(finding.score, 2),
        "before": finding.before,
        "after": finding.after,
        "unit": finding.unit,
        "change_time": _time(finding.change_time),
        "query": finding.query,
        "samples": finding.samples,
        "trace_ids": finding.trace_ids,
        "links": links or {},
    }


def windows_json(windows: Windows) -> dict[str, str | None]:
    return {
        "baseline_start": _time(windows.baseline_start),
        "baseline_end": _time(windows.baseline_end),
        "incident_start": _time(windows.incident_start),
        "incident_end": _time(windows.incident_end),
        "onset": _time(windows.onset),
    }


def suspect_json(suspect: Suspect, rank_: int, links: Any = None) -> dict[str, Any]:
    return {
        "rank": rank_,
        "service": suspect.service,
        "score": round(suspect.score, 4),
        "reason": suspect.reason,
        "change_time": _time(suspect.change_time),
        "caused_by": suspect.caused_by,
        "affects": suspect.affects,
        "evidence": [
            finding_json(f, links(suspect.service, f) if links else None) for f in suspect.evidence
        ],
    }
