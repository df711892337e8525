"""The whole analysis of one incident's telemetry → a ranked report (pure, JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pandas as pd

from correlator.analysis.findings import Finding
from correlator.analysis.logs import log_findings
from correlator.analysis.metrics import metric_findings
from correlator.analysis.paths import path_findings
from correlator.analysis.rank import VICTIM_DISCOUNT, Suspect, rank
from correlator.analysis.replicas import replica_findings
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


# The evidence producers, by name: what an ablation switches off.
PRODUCERS = ("metrics", "replicas", "log templates", "log paths", "spans", "edges")


@dataclass(frozen=True, slots=True)
class Options:
    """What the analysis uses: the producers of evidence, and the few weights that are not
    statistics (chosen by cross-validation in `correlator bench rca`, never per case)."""

    producers: frozenset[str] = frozenset(PRODUCERS)
    # Trace latency that the service's latency metric, over its much longer baseline, did not
    # see keeps this share of its score (a short trace baseline misses periodic slowness).
    uncorroborated: float = 0.5
    victim_discount: float = VICTIM_DISCOUNT
    # How much a producer's evidence counts: metrics and span timings are the noisiest (a busy
    # minute moves them everywhere); edges and log paths are normalised by their own traffic.
    # Metrics at 0.5 is what the grid of `correlator bench rca` chooses on the whole dev set
    # (its cross-validated figures say what such a choice is worth on cases it did not see).
    # The grid would also halve span timings, but that loses a slow database without a
    # sidecar, seen only in traces, to the API in front of it (tests/e2e): 14 cases of one
    # system do not outweigh it.
    metric_weight: float = 0.5
    span_weight: float = 1.0


def collect(telemetry: Telemetry, windows: Windows) -> dict[str, list[Finding]]:
    """Every producer's findings (the costly part; ranking them is cheap)."""
    spans = trace_findings(telemetry.spans, windows)
    return {
        "metrics": metric_findings(telemetry.metrics, telemetry.signals, windows),
        "replicas": replica_findings(telemetry.replicas, telemetry.signals, windows),
        "log templates": log_findings(telemetry.logs, windows),
        "log paths": path_findings(telemetry.logs, telemetry.spans, windows),
        "spans": [f for f in spans if f.kind != "network"],
        "edges": [f for f in spans if f.kind == "network"],
    }


def decide(
    evidence: dict[str, list[Finding]],
    telemetry: Telemetry,
    windows: Windows,
    options: Options = Options(),
    *,
    samples: bool = True,
) -> Analysis:
    """Rank the findings of the producers `options` uses (the findings are not changed);
    `samples`: give trace evidence the log lines of its traces (for people, not the ranking)."""
    findings = [
        replace(f, samples=list(f.samples), trace_ids=list(f.trace_ids))
        for name in PRODUCERS
        if name in options.producers
        for f in evidence[name]
    ]
    weights = {"metric": options.metric_weight, "trace": options.span_weight}
    for finding in findings:
        finding.score *= weights.get(finding.kind, 1.0)
    corroborate(findings, telemetry.metrics, options.uncorroborated)
    if samples:
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
    ranked = rank(findings, edges, services=services, victim_discount=options.victim_discount)
    return Analysis(windows, ranked, services, notes)


def analyse(telemetry: Telemetry, windows: Windows, options: Options = Options()) -> Analysis:
    return decide(collect(telemetry, windows), telemetry, windows, options)


def corroborate(findings: list[Finding], metrics: pd.DataFrame, weight: float) -> None:
    """Trace latency of a service whose latency metric was measured and did not move keeps
    `weight` of its score: the metric's baseline (an hour) knows the service's usual slow
    spells, the traces' (often minutes) may not."""
    if metrics.empty or weight >= 1.0:
        return
    latency = metrics[metrics["signal"].astype(str).str.startswith("latency")]
    measured = set(latency["service"].astype(str))
    moved = {f.service for f in findings if f.kind == "metric" and f.signal.startswith("latency")}
    for finding in findings:
        if (
            finding.kind == "trace"
            and finding.unit == "ms"
            and finding.service in measured
            and finding.service not in moved
        ):
            finding.score *= weight


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
