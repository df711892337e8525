"""All the evidence about one incident: every producer's findings over its telemetry, calibrated
and ranked into suspects (pure, JSON-ready; the stored report is pipeline/report.py's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from correlator.analysis.calibrate import (
    Calibration,
    calibrated,
    null_scores,
    null_windows,
    services_between,
)
from correlator.analysis.findings import Finding
from correlator.analysis.logs import Templates, log_findings
from correlator.analysis.metric_evidence import metric_findings
from correlator.analysis.paths import path_findings
from correlator.analysis.rank import Suspect, rank
from correlator.analysis.replicas import replica_findings
from correlator.analysis.telemetry import Telemetry
from correlator.analysis.traces import call_edges, prepared, trace_findings
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
# A producer reports a service from this many of its own deviations (z-like) on: below it, the
# deviation is within what a normal distribution shows one time in a thousand, too common to
# be a lead; above it, calibration decides what it is worth on this system.
THRESHOLD = 3.0
# A service "deviates at all" when one of its metrics moves in the worse direction beyond one
# robust deviation of its baseline, and stays there for at least DEVIATES_POINTS samples (a
# steady series does that by chance a few times in a hundred): such services are listed after
# those with evidence, so a ranking is empty only when nothing moved.
DEVIATES = 1.0
DEVIATES_POINTS = 3  # the fewest samples that make a level, not a spike
WEAK = "small deviations"


@dataclass(frozen=True, slots=True)
class Options:
    """What the analysis uses: the producers of evidence, and whether their scores are
    calibrated on the incident's own fault-free history (the default; off only to measure
    what calibration does)."""

    producers: frozenset[str] = frozenset(PRODUCERS)
    calibrate: bool = True


def _producers(
    telemetry: Telemetry,
) -> dict[str, tuple[Callable[[Windows], list[Finding]], pd.DataFrame, str]]:
    """Each producer as a function of the windows, with the frame its units come from."""
    t = telemetry
    derived = prepared(t.spans)  # exclusive times, origins, client spans: once for all runs
    templates = Templates()  # log templates mined once for all runs

    def spans(windows: Windows) -> list[Finding]:
        return trace_findings(derived, windows, threshold=THRESHOLD, edges=False)

    def edges(windows: Windows) -> list[Finding]:
        return trace_findings(derived, windows, threshold=THRESHOLD, spans_evidence=False)

    return {
        WEAK: (
            lambda w: metric_findings(
                t.metrics, t.signals, w, threshold=DEVIATES, min_points=DEVIATES_POINTS
            ),
            t.metrics,
            "time",
        ),
        "metrics": (
            lambda w: metric_findings(t.metrics, t.signals, w, threshold=THRESHOLD),
            t.metrics,
            "time",
        ),
        "replicas": (
            lambda w: replica_findings(t.replicas, t.signals, w, threshold=THRESHOLD),
            t.replicas,
            "time",
        ),
        "log templates": (
            lambda w: log_findings(t.logs, w, threshold=THRESHOLD, templates=templates),
            t.logs,
            "time",
        ),
        "log paths": (
            lambda w: path_findings(t.logs, t.spans, w, threshold=THRESHOLD),
            t.logs,
            "time",
        ),
        "spans": (spans, t.spans, "start"),
        "edges": (edges, t.spans, "start"),
    }


def collect(
    telemetry: Telemetry, windows: Windows, *, calibrate: bool = True
) -> dict[str, list[Finding]]:
    """Every producer's findings (the costly part; ranking them is cheap), each calibrated on
    null windows of the same producer over the incident's own baseline."""
    evidence: dict[str, list[Finding]] = {}
    calibration = Calibration()
    for name, (produce, frame, column) in _producers(telemetry).items():
        evidence[name] = produce(windows) if not frame.empty else []
        # The small deviations are listed after all evidence, by their own scale: they need
        # no history (and running them again would cost a metrics pass for nothing).
        if calibrate and evidence[name] and name != WEAK:
            nulls = null_windows(frame[column], windows)
            calibration.nulls[name] = null_scores(produce, nulls, services_between(frame, column))
    if calibrate:
        calibrated(evidence, calibration)
    return evidence


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
        for f in evidence.get(name, [])
    ]
    if not options.calibrate:
        for finding in findings:
            finding.score = finding.raw_score if finding.raw_score is not None else finding.score
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
    weak = [replace(f) for f in evidence.get(WEAK, [])] if options.producers & {"metrics"} else []
    if not options.calibrate:
        for finding in weak:
            finding.score = finding.raw_score if finding.raw_score is not None else finding.score
    ranked = rank(findings, edges, services=services, weak=weak)
    return Analysis(windows, ranked, services, notes)


def analyse(telemetry: Telemetry, windows: Windows, options: Options = Options()) -> Analysis:
    return decide(
        collect(telemetry, windows, calibrate=options.calibrate), telemetry, windows, options
    )


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
