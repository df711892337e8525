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

from correlator.analysis.findings import Finding, confirmed, poisson_surge, robust_scale
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


def client_spans(spans: pd.DataFrame) -> pd.Series:
    """Which spans are a caller's client span. Its time around the child is the wire's (and the
    answer's pickup), not work; a server span's time around its calls is its own work.

    A span that says its OTLP kind is believed (client or producer, with a span under it); one
    that does not (Jaeger's v1 model without `span.kind`, a recording without kinds) is inferred
    from the structure: one child, in another service, and a parent in the span's own
    service."""
    if spans.empty:
        return pd.Series(False, index=spans.index)
    inferred = _inferred_client_spans(spans)
    if "kind" not in spans.columns:
        return inferred
    kind = spans["kind"].astype(str)
    # A client span with no span under it called something uninstrumented (a database, an
    # outside API): no callee span holds that time, so it stays the span's own.
    parents = set(zip(spans["trace_id"], spans["parent_id"], strict=True))
    has_child = pd.Series(
        [(t, s) in parents for t, s in zip(spans["trace_id"], spans["span_id"], strict=True)],
        index=spans.index,
    )
    return inferred.where(kind == "", kind.isin(("client", "producer")) & has_child)


def _inferred_client_spans(spans: pd.DataFrame) -> pd.Series:
    owner = spans.set_index(["trace_id", "span_id"])["service"]
    owner = owner[~owner.index.duplicated()]
    parent_service = owner.reindex(
        pd.MultiIndex.from_arrays([spans["trace_id"], spans["parent_id"]])
    ).to_numpy()
    children = spans[spans["parent_id"] != ""].assign(
        parent_service=parent_service[spans["parent_id"].to_numpy() != ""]
    )
    per_parent = children.groupby(["trace_id", "parent_id"]).agg(
        n=("span_id", "size"), child_service=("service", "first")
    )
    info = per_parent.reindex(pd.MultiIndex.from_arrays([spans["trace_id"], spans["span_id"]]))
    return pd.Series(
        (info["n"].to_numpy() == 1)
        & (info["child_service"].to_numpy() != spans["service"].to_numpy())
        & (parent_service == spans["service"].to_numpy()),
        index=spans.index,
    )


def calls(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per call between services through a client span: caller, callee, start,
    request_ms, response_ms."""
    if spans.empty or "client" not in spans.columns:
        return pd.DataFrame(columns=["caller", "callee", "start", "request_ms", "response_ms"])
    parent = spans[spans["client"]].set_index(["trace_id", "span_id"])[
        ["service", "start", "duration_ms"]
    ]
    parent = parent[~parent.index.duplicated()]
    joined = parent.reindex(pd.MultiIndex.from_arrays([spans["trace_id"], spans["parent_id"]]))
    ms = pd.Timedelta(milliseconds=1)
    child_start = spans["start"].to_numpy()
    parent_start = joined["start"].to_numpy()
    request = (child_start - parent_start) / ms
    child_end = spans["duration_ms"].to_numpy(float) + 0.0
    parent_end = joined["duration_ms"].to_numpy(float) - request
    out = pd.DataFrame(
        {
            "caller": joined["service"].to_numpy(),
            "callee": spans["service"].to_numpy(),
            "start": child_start,
            "request_ms": np.asarray(request, dtype=float),
            # Both ends measured from the child's start: parent end - child end.
            "response_ms": parent_end - child_end,
        }
    ).dropna(subset=["caller"])
    return out[out["caller"] != out["callee"]].reset_index(drop=True)


def _shift(past: np.ndarray, now: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """How far `now` moved up from `past`: the typical call, or a slow tail beyond anything
    the baseline saw; (score, before, after medians)."""
    scale = robust_scale(past, relative=LATENCY_RELATIVE, floor=LATENCY_FLOOR_MS)
    typical = (float(np.median(now)) - float(np.median(past))) / scale
    beyond = int(np.sum(now > past.max() + threshold * scale))
    tail = poisson_surge(beyond, 1, len(now) / (len(past) + 1))
    return max(typical, tail), float(np.median(past)), float(np.median(now))


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
