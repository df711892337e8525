"""Log paths: which log events each request writes in each service, and how that changed (pure).

A code fault shows in the logs of the service that has it: a statement that every request of an
operation used to reach is no longer reached (the code threw before it), or a new one is (an
error branch). Counting lines per minute confuses that with traffic (a quieter minute makes
everything "vanish", a request type absent from the baseline makes its lines "new"), so the
unit here is the request: for each service and its entry operation, the share of its requests
(traces) that wrote each event, before and during the incident, compared with a two-proportion
test. The change must also begin inside the incident window (a shift already there when it
opened is a drift of the baseline, not this incident).

An event is the source location of the statement (`OrderServiceImpl#123`, `Order.java:123`,
`views.py:123`, `handler.go:123`) where the log format carries one, else the line with its ids
and numbers masked.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd

from correlator.analysis.findings import Finding, confirmed, poisson_surge, proportion_z
from correlator.analysis.logs import MASKS, normalise
from correlator.analysis.windows import Windows

MIN_REQUESTS = 8  # fewer: one request moves a share by over 12 %, too coarse to test
MAX_SAMPLES = 3
# A statement's source location as common formats print it:
# - logback/log4j with a logger and line (`%logger{15}#%line`): `c.s.ContactsServiceImpl#88`;
# - logback/log4j `%file:%line` or a caller frame: `OrderService.java:42`,
#   `o.s.OrderService.price(OrderService.java:42)` (the file and line are the location);
# - Python logging `%(filename)s:%(lineno)d` or `%(pathname)s…`: `app.py:42`,
#   `/srv/app/views.py:42`;
# - Go's log.Lshortfile / Llongfile, zap and slog callers: `main.go:42`, `pkg/server/handler.go:42`.
_SOURCE_FILE = r"/?(?:[\w.$-]+/)*[\w$-]+\.(?:java|kt|scala|groovy|py|go|rb|js|ts|cs|php|rs)"
_LOCATION = re.compile(rf"(?<![\w.$/-])({_SOURCE_FILE}:\d+|[A-Za-z_$][\w$.\[\]]*#\d+)\b")
_MASKS = [(re.compile(pattern), f"<{name}>") for pattern, name in MASKS]
# A non-error event that appeared on a path counts half: per request, a new branch is already
# normalised by traffic (unlike a template's rate), but a new INFO line is more often a new
# request variant than a fault. A vanished event or any error event counts fully.
NON_ERROR_WEIGHT = 0.5


# Pure in the line, and each line is read again by the calibration's null windows: cached
# (bounded, so a long-lived analysis process does not grow with every line it ever saw).
@functools.lru_cache(maxsize=1 << 16)
def event_of(line: str) -> tuple[str, bool]:
    """A log line → (its event, whether it is error-level)."""
    text, is_error = normalise(line)
    found = _LOCATION.search(text[:300])
    if found is None and line.lstrip().startswith("{"):
        # A structured line keeps its location beside the message (zap's "caller", logback's
        # JSON encoder "caller_file_name"…): the first location anywhere in it.
        found = _LOCATION.search(line[:1000])
    if found:
        return found.group(1), is_error
    for pattern, name in _MASKS:
        text = pattern.sub(name, text)
    return text[:120], is_error


def requests(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per (service, trace): the operation it was entered by and when."""
    if spans.empty:
        return pd.DataFrame(columns=["service", "trace_id", "operation", "start"])
    owner = spans.set_index(["trace_id", "span_id"])["service"]
    owner = owner[~owner.index.duplicated()]
    parent = owner.reindex(pd.MultiIndex.from_arrays([spans["trace_id"], spans["parent_id"]]))
    entry = spans[parent.to_numpy() != spans["service"].to_numpy()]
    entry = entry.sort_values("start").drop_duplicates(["service", "trace_id"])
    return pd.DataFrame(entry[["service", "trace_id", "operation", "start"]]).reset_index(drop=True)


def _units(logs: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """Every request of every service, from spans and from logs with a trace id: service,
    trace_id, operation ("" when no span names it), start."""
    from_spans = requests(spans)
    traced = logs[logs["trace_id"] != ""]
    first = traced.groupby(["service", "trace_id"])["time"].min()
    from_logs = pd.DataFrame(
        {
            "service": first.index.get_level_values(0),
            "trace_id": first.index.get_level_values(1),
            "operation": "",
            "start": first.to_numpy(),
        }
    )
    both = pd.concat([from_spans, from_logs], ignore_index=True)
    # A span names the operation; a request only seen in logs keeps "".
    both = both.sort_values(["operation"], ascending=False, kind="stable")
    return pd.DataFrame(both.drop_duplicates(["service", "trace_id"])).reset_index(drop=True)


def path_findings(
    logs: pd.DataFrame, spans: pd.DataFrame, windows: Windows, *, threshold: float = 3.0
) -> list[Finding]:
    if logs.empty:
        return []
    traced = logs[logs["trace_id"] != ""]
    if traced.empty:
        return []
    units = _units(traced, spans)
    t = units["start"]
    units["period"] = np.where(
        (t >= windows.baseline_start) & (t < windows.baseline_end),
        "before",
        np.where((t >= windows.incident_start) & (t <= windows.incident_end), "after", ""),
    )
    units = units[units["period"] != ""]
    if units.empty:
        return []
    distinct = traced["line"].drop_duplicates()
    events = {line: event_of(line) for line in distinct.tolist()}
    lines = traced.assign(
        event=traced["line"].map(lambda line: events[line][0]),
        error=traced["line"].map(lambda line: events[line][1]),
    )
    wrote = lines.merge(units, on=["service", "trace_id"], how="inner")
    samples = wrote.drop_duplicates(["service", "operation", "event"]).set_index(
        ["service", "operation", "event"]
    )
    presence = wrote.drop_duplicates(["service", "trace_id", "event"])
    counts = presence.groupby(["service", "operation", "event", "period"]).size()
    errors = wrote.groupby(["service", "operation", "event"])["error"].any()
    totals = units.groupby(["service", "operation", "period"]).size()
    findings = []
    for service, operation, event in errors.index:
        n_b = int(totals.get((service, operation, "before"), 0))
        n_a = int(totals.get((service, operation, "after"), 0))
        if n_b < MIN_REQUESTS or n_a < MIN_REQUESTS:
            continue
        k_b = int(counts.get((service, operation, event, "before"), 0))
        k_a = int(counts.get((service, operation, event, "after"), 0))
        z = proportion_z(k_b, n_b, k_a, n_a)
        if z > 0:
            # A rare new event is a small share of many requests: count it as events per
            # request too (Poisson against the baseline's rate), whichever is surer.
            z = max(z, poisson_surge(k_a, k_b, n_a / n_b))
        error = bool(errors[(service, operation, event)])
        if error and z < 0:
            continue  # an error that stopped is good news, not a cause
        weight = 1.0 if error or z < 0 else NON_ERROR_WEIGHT
        if abs(z) * weight < threshold:
            continue
        mine = units[
            (units["service"] == service)
            & (units["operation"] == operation)
            & (units["period"] == "after")
        ].sort_values("start")
        has = presence[
            (presence["service"] == service)
            & (presence["operation"] == operation)
            & (presence["event"] == event)
        ]["trace_id"]
        series = mine["trace_id"].isin(set(has)).to_numpy(float)
        # Dated where it changed inside the window; not weakened when it did not: code paths
        # do not drift with the hour the way latencies do, and a fault may predate the window.
        _, began = confirmed(series, mine["start"].tolist(), up=z > 0)
        score = abs(z) * weight
        if score < threshold:
            continue
        findings.append(_finding(service, operation, event, (k_b, n_b, k_a, n_a), score, began))
        if z > 0:
            findings[-1].samples = [str(samples.loc[(service, operation, event), "line"])[:500]]
    return findings


def _finding(
    service: str,
    operation: str,
    event: str,
    counts: tuple[int, int, int, int],
    score: float,
    began: pd.Timestamp | None,
) -> Finding:
    k_b, n_b, k_a, n_a = counts
    p_b, p_a = k_b / n_b, k_a / n_a
    path = f"requests of {operation}" if operation else "its requests"
    if k_b == 0:
        what = f"new log event {event}: written by {k_a} of {n_a} {path} (none of {n_b} before)"
    elif p_a < p_b:
        what = (
            f"log event {event} vanished from {path}: {p_a:.0%} of {n_a} write it, "
            f"{p_b:.0%} of {n_b} did"
        )
    else:
        what = f"log event {event} in {p_a:.0%} of {n_a} {path}, was {p_b:.0%} of {n_b}"
    return Finding(
        service=service,
        kind="log",
        signal=f"path {operation} {event}",
        score=score,
        before=p_b,
        after=p_a,
        unit="ratio",
        change_time=began,
        detail=what,
    )
