"""Trace evidence: where the time and the errors of slow and failing requests come from (pure).

A slow dependency makes every caller above it slow too, so span durations blame everyone on the
path. A span's *exclusive* time — its duration minus the time covered by its children — is the
time spent in that service itself (or on the wire to its children), and it is compared per
(service, operation) against the baseline. Errors propagate upwards the same way, so an error
span counts as an origin only when none of its children failed. Spans also yield the call graph.
"""

from __future__ import annotations

import itertools
from typing import cast

import numpy as np
import pandas as pd

from correlator.analysis.edges import (
    client_spans,
    edge_findings,
    parent_rows,
    parents_inside,
    with_parents,
)
from correlator.analysis.findings import (
    Finding,
    confirmed,
    median,
    poisson_surge,
    robust_scale,
)
from correlator.analysis.logs import _minutes, covered_minutes
from correlator.analysis.windows import Windows

# A timing's spread is at least a tenth of its level (durations jitter in proportion) and half
# a millisecond (the resolution that matters to a request).
LATENCY_RELATIVE = 0.1
LATENCY_FLOOR_MS = 0.5
# A share of requests that changed by less than 30 points is a different mix of requests more
# often than a different code path (a path taken or skipped changes most of its requests).
MIN_SHARE_CHANGE = 0.3
MIN_SPANS = 3  # as for metrics: the fewest samples with a median and a spread
MAX_TRACE_IDS = 3  # examples for people; the ranking uses every span


def exclusive_ms(spans: pd.DataFrame) -> pd.Series:
    """Each span's duration minus the union of its children's intervals (clipped to it)."""
    # Milliseconds from the first span (precise in a float), whatever the datetime resolution.
    start = ((spans["start"] - spans["start"].min()) / pd.Timedelta(milliseconds=1)).to_numpy(float)
    end = start + spans["duration_ms"].to_numpy(float)
    traces = spans["trace_id"].tolist()
    index = dict(zip(zip(traces, spans["span_id"].tolist(), strict=True), itertools.count()))
    parent_ids = spans["parent_id"].tolist()
    found = np.fromiter(
        (index.get(key, -1) if key[1] else -1 for key in zip(traces, parent_ids, strict=True)),
        dtype=np.int64,
        count=len(spans),
    )
    child = np.flatnonzero((found >= 0) & (found != np.arange(len(spans))))
    own = spans["duration_ms"].to_numpy(float).copy()
    if not len(child):
        return pd.Series(own, index=spans.index)
    parent = found[child]
    # Each child's interval clipped to its parent, in order of parent, then start, then end.
    a = np.maximum(start[child], start[parent])
    b = np.minimum(end[child], end[parent])
    order = np.lexsort((b, a, parent))
    parent, a, b = parent[order], a[order], b[order]
    # The union, walked in that order: what a child adds is its part after every earlier
    # child's end (the furthest end so far of the same parent).
    furthest = pd.Series(b).groupby(parent).cummax().to_numpy()
    before = np.empty_like(furthest)
    before[0] = -np.inf
    before[1:] = furthest[:-1]
    before[np.r_[True, parent[1:] != parent[:-1]]] = -np.inf  # a parent's first child
    added = np.maximum(b - np.maximum(a, before), 0.0)
    covered = np.bincount(parent, weights=added, minlength=len(own))
    parents = np.unique(parent)
    own[parents] = np.maximum(own[parents] - covered[parents], 0.0)
    return pd.Series(own, index=spans.index)


def onset_of(times: pd.Series) -> pd.Timestamp | None:
    """When a change began, from the times of its anomalous events: the 10th percentile, so
    that one early outlier (there is always one) does not date it."""
    if times.empty:
        return None
    ordered = times.sort_values()
    return pd.Timestamp(ordered.iloc[int(0.1 * (len(ordered) - 1))])


def call_edges(spans: pd.DataFrame) -> set[tuple[str, str]]:
    """caller → callee pairs of services, from parent/child spans of different services (the
    parents `prepared` spans hold, else looked up)."""
    if spans.empty:
        return set()
    rows = spans["parent_row"].to_numpy() if "parent_row" in spans else parent_rows(spans)
    service = spans["service"].to_numpy()
    found = rows >= 0
    pairs = zip(service[rows[found]].tolist(), service[found].tolist(), strict=True)
    return {(str(parent), str(child)) for parent, child in pairs if parent != child}


def _failing_origins(spans: pd.DataFrame) -> pd.Series:
    """Error spans none of whose children are error spans."""
    failing_parents = set(
        zip(
            spans.loc[spans["error"], "trace_id"],
            spans.loc[spans["error"], "parent_id"],
            strict=True,
        )
    )
    own = [
        (t, s) not in failing_parents
        for t, s in zip(spans["trace_id"], spans["span_id"], strict=True)
    ]
    return spans["error"] & pd.Series(own, index=spans.index)


def prepared(spans: pd.DataFrame) -> pd.DataFrame:
    """The spans with what every trace producer derives from the whole frame: exclusive time,
    failure origins, client spans, and each span's parent (`edges.with_parents`), joined once
    for every window cut from it. Idempotent, so a caller running several producers (or the
    same on several windows) derives it once."""
    if spans.empty or "own_ms" in spans.columns:
        return spans
    parents = parent_rows(spans)
    derived = spans.assign(
        own_ms=exclusive_ms(spans),
        origin=_failing_origins(spans),
        client=client_spans(spans, parents),
    )
    return with_parents(derived, parents)


def trace_findings(
    spans: pd.DataFrame,
    windows: Windows,
    *,
    threshold: float = 3.0,
    spans_evidence: bool = True,
    edges: bool = True,
) -> list[Finding]:
    if spans.empty:
        return []
    spans = prepared(spans)
    t = spans["start"]
    baseline = spans[(t >= windows.baseline_start) & (t < windows.baseline_end)]
    incident = spans[(t >= windows.incident_start) & (t <= windows.incident_end)]
    if incident.empty:
        return []
    findings: list[Finding] = []
    if spans_evidence:
        findings += _latency(baseline, incident, threshold)
        findings += _errors(baseline, incident, windows, threshold)
        findings += _patterns(baseline, incident, threshold)
    if edges:
        findings += edge_findings(baseline, incident, windows, threshold=threshold)
    return findings


def _latency(baseline: pd.DataFrame, incident: pd.DataFrame, threshold: float) -> list[Finding]:
    # A client span's own time is the wire's: edge evidence weighs it, not self time.
    baseline, incident = baseline[~baseline["client"]], incident[~incident["client"]]
    # Positions per (service, operation), not a frame per group: most groups are dismissed
    # on their numbers alone.
    past = baseline["own_ms"].to_numpy(float)
    before = {k: past[v] for k, v in baseline.groupby(["service", "operation"]).indices.items()}
    now = incident["own_ms"].to_numpy(float)
    findings = []
    groups = cast(
        dict[tuple[str, str], np.ndarray], incident.groupby(["service", "operation"]).indices
    )
    for (service, operation), rows in groups.items():
        history = before.get((service, operation))
        if history is None or len(history) < MIN_SPANS or len(rows) < MIN_SPANS:
            continue
        # A shift of the typical request (up, or down: failing fast is a change too), or a slow
        # tail: more requests beyond anything the baseline saw than chance allows (a new
        # sample exceeds the largest of n with probability 1/(n+1)).
        scale = robust_scale(history, relative=LATENCY_RELATIVE, floor=LATENCY_FLOOR_MS)
        own, usual = now[rows], median(history)
        typical = (median(own) - usual) / scale
        beyond = int(np.sum(own > history.max() + threshold * scale))
        tail = poisson_surge(beyond, 1, len(own) / (len(history) + 1))
        score = max(typical, tail, -typical)
        if score < threshold:
            continue
        group = incident.iloc[rows]
        ordered = group.sort_values("start")
        weight, began = confirmed(
            ordered["own_ms"].to_numpy(float), ordered["start"].tolist(), up=-typical < score
        )
        score *= weight
        if score < threshold:
            continue
        slow = group[own > usual + threshold * scale].sort_values("start")
        slowest = group.sort_values("own_ms", ascending=False)["trace_id"].drop_duplicates()
        b, a = usual, median(own)
        findings.append(
            Finding(
                service=str(service),
                kind="trace",
                signal=f"own time of {operation}",
                score=float(score),
                before=b,
                after=a,
                unit="ms",
                change_time=began or onset_of((slow if len(slow) else group)["start"]),
                detail=(
                    f"own time of {operation} went from {b:.3g} ms to {a:.3g} ms"
                    if typical >= tail
                    else f"{beyond} of {len(own)} calls of {operation} spent longer in it "
                    f"than any of {len(history)} before (up to {own.max():.3g} ms, "
                    f"was at most {history.max():.3g} ms)"
                ),
                trace_ids=list(slowest[:MAX_TRACE_IDS]),
            )
        )
    return findings


def _errors(
    baseline: pd.DataFrame, incident: pd.DataFrame, windows: Windows, threshold: float
) -> list[Finding]:
    ratio = _minutes(windows.incident_start, windows.incident_end) / covered_minutes(
        baseline["start"], windows.baseline_start, windows.baseline_end
    )
    before = baseline[baseline["origin"]].groupby("service").size()
    findings = []
    for service, group in incident[incident["origin"]].groupby("service"):
        seen = int(before.get(service, 0))
        score = poisson_surge(len(group), seen, ratio)
        if score < threshold:
            continue
        operations = group["operation"].value_counts()
        findings.append(
            Finding(
                service=str(service),
                kind="trace",
                signal="error spans",
                score=score,
                before=float(seen),
                after=float(len(group)),
                unit="spans",
                change_time=onset_of(group["start"]),
                detail=(
                    f"{len(group)} failing spans that start the failure here "
                    f"(baseline {seen}), mostly {operations.index[0]}"
                ),
                trace_ids=list(group["trace_id"].drop_duplicates()[:MAX_TRACE_IDS]),
            )
        )
    return findings


def _patterns(baseline: pd.DataFrame, incident: pd.DataFrame, threshold: float) -> list[Finding]:
    """Operations whose calls changed: a child call that (nearly) always happened and stopped,
    or a new one — an operation that fails fast, or takes another path, changes its calls."""
    findings = []
    # Per window: how many of an operation's spans called a child operation (each parent span
    # counted once, however often it called it), and how many spans the operation had.
    shares: dict[str, dict[tuple[str, str, str, str], int]] = {}
    totals: dict[str, dict[tuple[str, str], int]] = {}
    after = pd.DataFrame()
    for name, frame in (("before", baseline), ("after", incident)):
        frame = prepared(frame)  # as cut from prepared spans: each span's parent is joined
        if frame.empty:
            shares[name], totals[name] = {}, {}
            continue
        kids = frame[parents_inside(frame)]
        per_parent = pd.DataFrame(
            {
                "service": kids["parent_service"].to_numpy(),
                "operation": kids["parent_operation"].to_numpy(),
                "parent": kids["parent_row"].to_numpy(),  # the parent span, in its trace
                "trace": kids["trace_id"].to_numpy(),
                "parent_id": kids["parent_id"].to_numpy(),
                "child_service": kids["service"].to_numpy(),
                "child_operation": kids["operation"].to_numpy(),
            }
        ).drop_duplicates(["parent", "child_service", "child_operation"])
        calls = per_parent.groupby(["service", "operation", "child_service", "child_operation"])
        shares[name] = cast(dict[tuple[str, str, str, str], int], calls.size().to_dict())
        spans = frame.groupby(["service", "operation"]).size()
        totals[name] = cast(dict[tuple[str, str], int], spans.to_dict())
        after = per_parent
    keys = sorted(shares["before"].keys() | shares["after"].keys(), key=_call_order)
    for key in keys:
        service, operation, child_service, child_operation = key
        n_b = int(totals["before"].get((service, operation), 0))
        n_a = int(totals["after"].get((service, operation), 0))
        if n_b < MIN_SPANS or n_a < MIN_SPANS:
            continue
        p_b = min(shares["before"].get(key, 0) / n_b, 1.0)
        p_a = min(shares["after"].get(key, 0) / n_a, 1.0)
        pooled = (p_b * n_b + p_a * n_a) / (n_b + n_a)
        spread = (pooled * (1 - pooled) * (1 / n_b + 1 / n_a)) ** 0.5
        score = abs(p_a - p_b) / max(spread, 1e-9)
        if score < threshold or abs(p_a - p_b) < MIN_SHARE_CHANGE:
            continue
        child = f"{child_service} {child_operation}"
        # The change must begin inside the window: a baseline from another hour calls
        # differently (an error handler it called then, a cache warm now) without any fault.
        parents = incident[
            (incident["service"] == service) & (incident["operation"] == operation)
        ].sort_values("start")
        mine = after[
            (after["service"] == service)
            & (after["operation"] == operation)
            & (after["child_service"] == child_service)
            & (after["child_operation"] == child_operation)
        ]
        # Every span of the trace with a calling parent's id (a span reported twice is one).
        calling = set(zip(mine["trace"], mine["parent_id"], strict=True))
        has = np.fromiter(
            (key in calling for key in zip(parents["trace_id"], parents["span_id"], strict=True)),
            dtype=float,
            count=len(parents),
        )
        weight, began = confirmed(has, parents["start"].tolist(), up=p_a > p_b)
        score *= weight
        if score < threshold:
            continue
        verb = "stopped calling" if p_a < p_b else "started calling"
        findings.append(
            Finding(
                service=str(service),
                kind="trace",
                signal=f"calls of {operation}",
                score=float(score),
                before=p_b,
                after=p_a,
                unit="ratio",
                change_time=began,
                detail=f"{operation} {verb} {child} ({p_b:.0%} of requests before, {p_a:.0%} now)",
            )
        )
    return findings


def _call_order(key: tuple[str, str, str, str]) -> tuple[str, str, str]:
    """Calls in the order of their names (operation, then the child as "service operation")."""
    service, operation, child_service, child_operation = key
    return service, operation, f"{child_service} {child_operation}"
