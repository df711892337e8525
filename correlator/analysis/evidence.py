"""All the evidence about one incident: every producer's findings over its telemetry, calibrated
and ranked into suspects (pure, JSON-ready; the stored report is pipeline/report.py's)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable
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
from correlator.analysis.metric_evidence import metric_findings, series_of
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
SOURCES = ("metrics", "logs", "traces")
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
    telemetry: Telemetry, spans_derived: Callable[[], pd.DataFrame]
) -> dict[str, tuple[Callable[[Windows], list[Finding]], pd.DataFrame, str]]:
    """Each producer as a function of the windows, with the frame its units come from;
    `spans_derived`: the spans `prepared` (derived once for every window)."""
    t = telemetry
    templates = Templates()  # log templates mined once for all runs
    # The metrics as arrays, in the order every window reads them, once.
    metric_series = functools.cache(lambda: series_of(t.metrics))

    def metrics(windows: Windows, threshold: float, min_points: int = 1) -> list[Finding]:
        return metric_findings(
            metric_series(),
            t.signals,
            windows,
            threshold=threshold,
            min_points=min_points,
        )

    def spans(windows: Windows) -> list[Finding]:
        return trace_findings(spans_derived(), windows, threshold=THRESHOLD, edges=False)

    def edges(windows: Windows) -> list[Finding]:
        return trace_findings(spans_derived(), windows, threshold=THRESHOLD, spans_evidence=False)

    return {
        WEAK: (lambda w: metrics(w, DEVIATES, DEVIATES_POINTS), t.metrics, "time"),
        "metrics": (lambda w: metrics(w, THRESHOLD), t.metrics, "time"),
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


# The frames each producer reads: a live correlation runs a producer as soon as they are in,
# while the other sources are still being fetched. Replicas arrive with the metrics.
READS: dict[str, frozenset[str]] = {
    WEAK: frozenset({"metrics"}),
    "metrics": frozenset({"metrics"}),
    "replicas": frozenset({"metrics"}),
    "log templates": frozenset({"logs"}),
    "log paths": frozenset({"logs", "traces"}),
    "spans": frozenset({"traces"}),
    "edges": frozenset({"traces"}),
}
# The producers that read one source alone: a live correlation running alone runs them in the
# same call that reads the source's answers (`pipeline/frames.py`).
READING_ONLY = {
    source: frozenset(name for name, reads in READS.items() if reads == {source})
    for source in SOURCES
}


@dataclass(slots=True)
class Context:
    """What ranking needs of the frames besides the findings: small, so the ranking of
    evidence collected in parts needs no frame again."""

    services: set[str] = field(default_factory=set)
    edges: set[tuple[str, str]] = field(default_factory=set)  # from spans and the call graph
    trace_lines: dict[str, list[str]] = field(default_factory=dict)  # logs by trace id
    missing: set[str] = field(default_factory=set)  # "metrics", "logs", "traces": none in

    def update(self, other: Context) -> None:
        self.services |= other.services
        self.edges |= other.edges
        self.trace_lines.update(other.trace_lines)
        self.missing |= other.missing


SAMPLES_PER_FINDING = 3


def context_of(
    telemetry: Telemetry,
    sources: Collection[str] = SOURCES,
    spans: pd.DataFrame | None = None,
) -> Context:
    """The ranking's context from the frames of `sources`; `spans`: the telemetry's spans
    `prepared`, if derived already (their parents are then not looked up again)."""
    t = telemetry
    frames = {"metrics": t.metrics, "logs": t.logs, "traces": t.spans}
    context = Context(edges=set(t.edges))
    for source in sources:
        frame = frames[source]
        if frame.empty:
            context.missing.add(source)
            continue
        context.services |= {str(name) for name in frame["service"].unique()}
    if "traces" in sources:
        context.edges |= call_edges(t.spans if spans is None else spans)
    if "logs" in sources and not t.logs.empty:
        by_trace = t.logs[t.logs["trace_id"] != ""].groupby("trace_id")["line"]
        context.trace_lines = {
            str(trace): list(group[:SAMPLES_PER_FINDING]) for trace, group in by_trace
        }
    for caller, callee in context.edges:
        context.services |= {caller, callee}
    context.services.discard("")
    return context


@dataclass(slots=True)
class Collected:
    """Some producers' findings, with their null scores for calibration and the context of
    the frames they read."""

    evidence: dict[str, list[Finding]] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)
    context: Context = field(default_factory=Context)


def collect_some(
    telemetry: Telemetry, windows: Windows, names: Collection[str], *, calibrate: bool = True
) -> Collected:
    """The findings of the producers `names` (the costly part; ranking them is cheap), with
    each one's scores on null windows of the incident's own baseline."""
    part = Collected()
    reads = frozenset().union(*(READS[name] for name in names))
    # The spans' exclusive times, origins, client spans and parents: derived once, when first
    # needed, for the context and every window of every trace producer.
    spans_derived = functools.cache(lambda: prepared(telemetry.spans))
    part.context = context_of(telemetry, reads, spans_derived() if "traces" in reads else None)
    for name, (produce, frame, column) in _producers(telemetry, spans_derived).items():
        if name not in names:
            continue
        part.evidence[name] = produce(windows) if not frame.empty else []
        # The small deviations are listed after all evidence, by their own scale: they need
        # no history (and running them again would cost a metrics pass for nothing).
        if calibrate and part.evidence[name] and name != WEAK:
            nulls = null_windows(frame[column], windows)
            part.calibration.nulls[name] = null_scores(
                produce, nulls, services_between(frame, column)
            )
    return part


def merged(parts: Iterable[Collected], *, calibrate: bool = True) -> dict[str, list[Finding]]:
    """The parts' findings together, each calibrated on its producer's null scores."""
    evidence: dict[str, list[Finding]] = {}
    calibration = Calibration()
    for part in parts:
        evidence.update(part.evidence)
        calibration.nulls.update(part.calibration.nulls)
    if calibrate:
        calibrated(evidence, calibration)
    return evidence


def collect(
    telemetry: Telemetry, windows: Windows, *, calibrate: bool = True
) -> dict[str, list[Finding]]:
    """Every producer's findings, calibrated."""
    part = collect_some(telemetry, windows, READS, calibrate=calibrate)
    return merged([part], calibrate=calibrate)


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
    return ranked(evidence, context_of(telemetry), windows, options, samples=samples)


def ranked(
    evidence: dict[str, list[Finding]],
    context: Context,
    windows: Windows,
    options: Options = Options(),
    *,
    samples: bool = True,
) -> Analysis:
    """`decide` over the frames' context instead of the frames."""
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
        link_traces_to_logs(findings, context.trace_lines)
    notes = [f"no {name} in the analysed windows" for name in SOURCES if name in context.missing]
    services = sorted(context.services)
    weak = [replace(f) for f in evidence.get(WEAK, [])] if options.producers & {"metrics"} else []
    if not options.calibrate:
        for finding in weak:
            finding.score = finding.raw_score if finding.raw_score is not None else finding.score
    suspects = rank(findings, context.edges, services=services, weak=weak)
    return Analysis(windows, suspects, services, notes)


def analyse(telemetry: Telemetry, windows: Windows, options: Options = Options()) -> Analysis:
    """`decide` over `collect`, with the frames' context read once for both."""
    part = collect_some(telemetry, windows, READS, calibrate=options.calibrate)
    evidence = merged([part], calibrate=options.calibrate)
    return ranked(evidence, part.context, windows, options)


def analyse_collected(parts: list[Collected], windows: Windows) -> Analysis:
    """The analysis of findings collected in parts (`collect_some`, every producer once), as
    `analyse` would give."""
    context = Context()
    for part in parts:
        context.update(part.context)
    return ranked(merged(parts), context, windows)


def link_traces_to_logs(findings: list[Finding], trace_lines: dict[str, list[str]]) -> None:
    """A trace finding's sample lines are the logs its example traces wrote (same trace id):
    the slow or failing request, told by the service itself."""
    if not trace_lines:
        return
    for finding in findings:
        if finding.kind != "trace" or finding.samples:
            continue
        for trace_id in finding.trace_ids:
            taken = trace_lines.get(trace_id, [])
            finding.samples += taken[: SAMPLES_PER_FINDING - len(finding.samples)]
