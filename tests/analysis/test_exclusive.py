"""Exclusive time, computed over arrays, against its definition walked span by span: the
hot part of every trace analysis must not change what it computes."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.telemetry import span_frame
from correlator.analysis.traces import exclusive_ms, prepared, trace_findings
from correlator.analysis.windows import incident_windows

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def reference(spans: pd.DataFrame) -> list[float]:
    """The definition: each span's duration minus the union of its children's intervals
    clipped to it (a parent id names the last span of the trace with that id)."""
    start = ((spans["start"] - spans["start"].min()) / pd.Timedelta(milliseconds=1)).tolist()
    durations = spans["duration_ms"].tolist()
    index = {
        (t, s): i for i, (t, s) in enumerate(zip(spans["trace_id"], spans["span_id"], strict=True))
    }
    children: defaultdict[int, list[int]] = defaultdict(list)
    for i, (t, p) in enumerate(zip(spans["trace_id"], spans["parent_id"], strict=True)):
        j = index.get((t, p))
        if p and j is not None and j != i:
            children[j].append(i)
    own = list(durations)
    for parent, kids in children.items():
        lo, hi = start[parent], start[parent] + durations[parent]
        covered, cursor = 0.0, lo
        for a, b in sorted((max(start[k], lo), min(start[k] + durations[k], hi)) for k in kids):
            a = max(a, cursor)
            if b > a:
                covered += b - a
                cursor = b
        own[parent] = max(own[parent] - covered, 0.0)
    return own


span_rows = st.lists(
    st.tuples(
        st.sampled_from(["t1", "t2"]),
        st.sampled_from(["a", "b", "c", "d", "e"]),  # span ids repeat: B3 shared spans do
        st.sampled_from(["", "a", "b", "c", "x"]),  # "x": a parent the frame does not hold
        st.integers(0, 200),  # start, ms
        st.integers(0, 150) | st.floats(0, 150, allow_nan=False),  # duration, ms
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(span_rows)
def test_exclusive_time_is_its_definition(rows: list[tuple[str, str, str, int, float]]) -> None:
    frame = span_frame(
        [
            {"trace_id": t, "span_id": s, "parent_id": p, "service": f"svc-{s}",
             "operation": "op", "start": NOW + timedelta(milliseconds=at),
             "duration_ms": float(d), "error": False}
            for t, s, p, at, d in rows
        ]
    )  # fmt: skip
    if frame.empty:
        return
    assert exclusive_ms(frame).tolist() == reference(frame)  # exactly: the same additions


def test_a_parent_that_lasts_less_than_its_children_has_no_negative_time() -> None:
    frame = span_frame(
        [
            {"trace_id": "t", "span_id": "p", "parent_id": "", "service": "a", "operation": "x",
             "start": NOW, "duration_ms": 10.0, "error": False},
            {"trace_id": "t", "span_id": "c", "parent_id": "p", "service": "b", "operation": "y",
             "start": NOW - timedelta(milliseconds=5), "duration_ms": 30.0, "error": False},
            {"trace_id": "t", "span_id": "s", "parent_id": "s", "service": "c", "operation": "z",
             "start": NOW, "duration_ms": 7.0, "error": False},  # its own parent: no child
        ]
    )  # fmt: skip
    assert exclusive_ms(frame).tolist() == [0.0, 30.0, 7.0]


def test_a_call_is_matched_to_its_parent_in_its_own_trace() -> None:
    """`GET /` calls `db SELECT` in every baseline request and in the first third of the
    incident window's, then stops. Span ids are counters within each trace (every root is
    "1"), so a parent is its trace's span "1", not every span "1": the change begins inside
    the incident window and is evidence (matched by id alone, every request would seem to
    call still, and the change would look like a baseline from another hour)."""
    rows = []
    times = [NOW - timedelta(minutes=60, seconds=i) for i in range(20)]  # baseline
    times += [NOW - timedelta(minutes=20, seconds=i) for i in range(10)]  # incident, calling
    times += [NOW - timedelta(minutes=5, seconds=i) for i in range(20)]  # incident, not
    for i, at in enumerate(times):
        rows.append(
            {
                "trace_id": f"t{i}",
                "span_id": "1",
                "parent_id": "",
                "service": "api",
                "operation": "GET /",
                "start": at,
                "duration_ms": 20.0,
                "error": False,
            }
        )
        if i < 30:
            rows.append({"trace_id": f"t{i}", "span_id": "2", "parent_id": "1", "service": "db",
                         "operation": "SELECT", "start": at, "duration_ms": 5.0,
                         "error": False})  # fmt: skip
    windows = incident_windows(NOW - timedelta(minutes=10), NOW)
    findings = trace_findings(prepared(span_frame(rows)), windows, edges=False)
    stopped = [f for f in findings if f.signal == "calls of GET /"]
    assert len(stopped) == 1, findings
    assert (stopped[0].before, round(stopped[0].after, 3)) == (1.0, 0.333)
    assert "stopped calling db SELECT" in stopped[0].detail
    assert stopped[0].change_time is not None
    assert stopped[0].change_time > NOW - timedelta(minutes=20)
