"""Edge evidence: the time a call spends between two services, and which service explains the
edges that slowed (pure).

For each call from one service to another (a span whose parent span runs in another service):
- *request time*: callee span start - caller span start, the time before the callee began;
- *response time*: caller span end - callee span end, the time for the answer to get back and
  be taken up by the caller.
A delayed network at a pod slows the answers it sends and the requests it makes; a starved
process takes up every answer late. Either way the pod is the common endpoint of the edges that
slowed, while each neighbour sees one slow edge among its healthy ones. Each edge (caller,
callee, direction) is scored against its own baseline, and must also have changed within the
incident window (a level that was already there at its start is a drift, not this incident).
Then the slowed edges are explained away greedily: the service that is an endpoint of the most
unexplained slowed edges (then the largest share of its own edges) takes them, and so on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from correlator.analysis.findings import (
    Finding,
    confirmed,
    median,
    poisson_surge,
    robust_scale,
)
from correlator.analysis.windows import Windows

# As for span timings (traces.py): jitter in proportion, and half a millisecond of resolution.
LATENCY_RELATIVE = 0.1
LATENCY_FLOOR_MS = 0.5

MIN_CALLS = 5  # a median of fewer calls is one call: no shift can be told from a slow one


@dataclass(frozen=True, slots=True)
class SlowEdge:
    caller: str
    callee: str
    direction: str  # "request" or "response"
    score: float
    before_ms: float
    after_ms: float
    since: pd.Timestamp | None


def parent_rows(spans: pd.DataFrame) -> np.ndarray:
    """Each span's parent as a row position in `spans`: the first span of the same trace with
    the parent's id; -1 for a root, or a parent the frame does not hold."""
    first: dict[tuple[str, str], int] = {}
    for i, key in enumerate(
        zip(spans["trace_id"].tolist(), spans["span_id"].tolist(), strict=True)
    ):
        first.setdefault(key, i)
    return np.fromiter(
        (
            first.get(key, -1) if key[1] else -1
            for key in zip(spans["trace_id"].tolist(), spans["parent_id"].tolist(), strict=True)
        ),
        dtype=np.int64,
        count=len(spans),
    )


def with_parents(spans: pd.DataFrame, parents: np.ndarray | None = None) -> pd.DataFrame:
    """`spans` (with their `client` column) with each span's parent joined once, for every
    window cut from it: `row` (the span's position), `parent_row` (its parent's, -1 for none),
    and the parent's service, operation, start (`parent_ns`, ns since the epoch), duration and
    whether it is a client span. A window's frame holds a span's parent exactly when it holds
    the row `parent_row` (`parents_inside`); elsewhere the parent columns are not to be read."""
    rows = parent_rows(spans) if parents is None else parents
    take = np.where(rows >= 0, rows, 0)
    return spans.assign(
        row=np.arange(len(spans), dtype=np.int64),
        parent_row=rows,
        parent_service=spans["service"].to_numpy()[take],
        parent_operation=spans["operation"].to_numpy()[take],
        parent_ns=spans["start"].astype("int64").to_numpy()[take],
        parent_duration_ms=spans["duration_ms"].to_numpy(float)[take],
        parent_client=spans["client"].to_numpy(bool)[take],
    )


def parents_inside(spans: pd.DataFrame) -> np.ndarray:
    """Which spans of a frame cut by `with_parents` have their parent in the same frame."""
    return np.isin(spans["parent_row"].to_numpy(), spans["row"].to_numpy())


def client_spans(spans: pd.DataFrame, parents: np.ndarray | None = None) -> pd.Series:
    """Which spans are a caller's client span. Its time around the child is the wire's (and the
    answer's pickup), not work; a server span's time around its calls is its own work.

    A span that says its OTLP kind is believed (client or producer, with a span under it); one
    that does not (Jaeger's v1 model without `span.kind`, a recording without kinds) is inferred
    from the structure: one child, in another service, and a parent in the span's own
    service. `parents`: `parent_rows(spans)`, if known."""
    if spans.empty:
        return pd.Series(False, index=spans.index)
    rows = parent_rows(spans) if parents is None else parents
    n = len(spans)
    children = np.bincount(rows[rows >= 0], minlength=n)
    inferred = _inferred_client_spans(spans, rows, children)
    if "kind" not in spans.columns:
        return inferred
    kind = spans["kind"].astype(str)
    # A client span with no span under it called something uninstrumented (a database, an
    # outside API): no callee span holds that time, so it stays the span's own.
    has_child = pd.Series(children > 0, index=spans.index)
    return inferred.where(kind == "", kind.isin(("client", "producer")) & has_child)


def _inferred_client_spans(
    spans: pd.DataFrame, rows: np.ndarray, children: np.ndarray
) -> pd.Series:
    service = spans["service"].to_numpy()
    has_parent = rows >= 0
    parent_service = service[np.where(has_parent, rows, 0)].copy()
    parent_service[~has_parent] = None
    # The service of each span's first child (by position).
    child_service = np.full(len(spans), None, dtype=object)
    kids = np.flatnonzero(has_parent)
    parents, first = np.unique(rows[kids], return_index=True)
    child_service[parents] = service[kids[first]]
    return pd.Series(
        (children == 1) & (child_service != service) & (parent_service == service),
        index=spans.index,
    )


def calls(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per call between services through a client span: caller, callee, start,
    request_ms, response_ms."""
    if spans.empty or "client" not in spans.columns:
        return pd.DataFrame(columns=["caller", "callee", "start", "request_ms", "response_ms"])
    if "parent_row" not in spans.columns:
        spans = with_parents(spans)
    joined = spans[parents_inside(spans) & spans["parent_client"].to_numpy(bool)]
    # Both ends measured from the child's start: request = child start - parent start, and
    # response = parent end - child end.
    request = (joined["start"].astype("int64").to_numpy() - joined["parent_ns"].to_numpy()) / 1e6
    child_end = joined["duration_ms"].to_numpy(float) + 0.0
    parent_end = joined["parent_duration_ms"].to_numpy(float) - request
    out = pd.DataFrame(
        {
            "caller": joined["parent_service"].to_numpy(),
            "callee": joined["service"].to_numpy(),
            "start": joined["start"].to_numpy(),
            "request_ms": np.asarray(request, dtype=float),
            "response_ms": parent_end - child_end,
        }
    )
    return out[out["caller"] != out["callee"]].reset_index(drop=True)


def _shift(past: np.ndarray, now: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """How far `now` moved up from `past`: the typical call, or a slow tail beyond anything
    the baseline saw; (score, before, after medians)."""
    scale = robust_scale(past, relative=LATENCY_RELATIVE, floor=LATENCY_FLOOR_MS)
    typical = (median(now) - median(past)) / scale
    beyond = int(np.sum(now > past.max() + threshold * scale))
    tail = poisson_surge(beyond, 1, len(now) / (len(past) + 1))
    return max(typical, tail), median(past), median(now)


def slow_edges(
    baseline: pd.DataFrame, incident: pd.DataFrame, threshold: float
) -> tuple[list[SlowEdge], dict[str, set[tuple[str, str]]]]:
    """The edges that slowed, and every service's measured edges (for shares)."""
    before = {key: group for key, group in calls(baseline).groupby(["caller", "callee"])}
    slowed: list[SlowEdge] = []
    measured: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
    for (caller, callee), group in calls(incident).groupby(["caller", "callee"]):
        history = before.get((caller, callee))
        if history is None or len(history) < MIN_CALLS or len(group) < MIN_CALLS:
            continue
        edge = (str(caller), str(callee))
        measured[edge[0]].add(edge)
        measured[edge[1]].add(edge)
        group = group.sort_values("start")
        best: SlowEdge | None = None
        for direction in ("request", "response"):
            past = history[f"{direction}_ms"].to_numpy(float)
            now = group[f"{direction}_ms"].to_numpy(float)
            score, b, a = _shift(past, now, threshold)
            if score < threshold:
                continue
            weight, began = confirmed(now, group["start"].tolist())
            score *= weight
            since = began
            if score >= threshold and (best is None or score > best.score):
                best = SlowEdge(edge[0], edge[1], direction, score, b, a, since)
        if best is not None:
            slowed.append(best)
    return slowed, measured


def edge_findings(
    baseline: pd.DataFrame, incident: pd.DataFrame, windows: Windows, *, threshold: float = 3.0
) -> list[Finding]:
    del windows  # the windows already cut the frames; kept for one signature across kinds
    slowed, measured = slow_edges(baseline, incident, threshold)
    unexplained = list(slowed)
    findings = []
    while unexplained:
        touching: defaultdict[str, list[SlowEdge]] = defaultdict(list)
        for edge in unexplained:
            touching[edge.caller].append(edge)
            touching[edge.callee].append(edge)
        # Most slowed edges first, then the largest share of its own edges, then the callee
        # (a single slow answer is the answering side's), then the name: deterministic.
        service = min(
            touching,
            key=lambda s: (
                -len(touching[s]),
                -len(touching[s]) / max(len(measured[s]), 1),
                -sum(e.callee == s for e in touching[s]),
                s,
            ),
        )
        mine = touching[service]
        unexplained = [e for e in unexplained if e not in mine]
        share = len(mine) / max(len(measured[service]), 1)
        score = share * float(np.median([e.score for e in mine]))
        if score < threshold:
            continue
        worst = max(mine, key=lambda e: e.score)
        other = worst.caller if worst.callee == service else worst.callee
        times = [e.since for e in mine if e.since is not None]
        findings.append(
            Finding(
                service=service,
                kind="network",
                signal="time between services",
                score=score,
                before=worst.before_ms,
                after=worst.after_ms,
                unit="ms",
                change_time=min(times) if times else None,
                detail=(
                    f"{len(mine)} of its {len(measured[service])} call edges slowed between the "
                    f"services, e.g. the {worst.direction} with {other}: "
                    f"{worst.before_ms:.3g} ms → {worst.after_ms:.3g} ms"
                ),
            )
        )
    return findings
