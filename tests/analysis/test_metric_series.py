"""Metric findings read from the samples as arrays once (`metric_evidence.Series`) are exactly
those of reading each window's rows from the frame, as the analysis did before (its grouping
kept here as the reference): on any samples, gaps, ties and windows, at every threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.findings import Finding
from correlator.analysis.metric_evidence import (
    in_order,
    metric_findings,
    series_finding,
    series_of,
)
from correlator.analysis.telemetry import SignalMeta, metric_frame
from correlator.analysis.windows import Windows


def _groups(
    frame: pd.DataFrame, keys: list[str], column: str
) -> tuple[list[tuple[object, ...]], list[np.ndarray]]:
    """The groups of a frame sorted by `keys`, as (keys, values): numpy slices rather than a
    pandas groupby, which costs more than the statistics for hundreds of small groups."""
    if frame.empty:
        return [], []
    codes = frame[keys].to_numpy()
    change = np.ones(len(frame), dtype=bool)
    change[1:] = np.any(codes[1:] != codes[:-1], axis=1)
    starts = np.flatnonzero(change)
    column_values = frame[column]
    if isinstance(column_values.dtype, pd.DatetimeTZDtype):
        # UTC instants as datetime64 (an object array of Timestamps costs a conversion each).
        values = column_values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    else:
        values = column_values.to_numpy()
    return [tuple(codes[i]) for i in starts], np.split(values, starts[1:])


def reference_findings(
    metrics: pd.DataFrame,
    signals: dict[str, SignalMeta],
    windows: Windows,
    *,
    threshold: float,
    min_points: int,
) -> list[Finding]:
    """The former `metric_findings` (its samples `in_order`): each window's rows filtered
    from the frame, then split into series by comparing their keys; each series judged by
    `series_finding`, as the arrays' are."""
    t = metrics["time"]
    baseline = metrics[(t >= windows.baseline_start) & (t < windows.baseline_end)]
    incident = metrics[(t >= windows.incident_start) & (t <= windows.incident_end)]
    keys = ["service", "signal"]
    history = dict(zip(*_groups(baseline, keys, "value"), strict=True))
    group_keys, group_values = _groups(incident, keys, "value")
    _, group_times = _groups(incident, keys, "time")
    findings = []
    for key, raw, times in zip(group_keys, group_values, group_times, strict=True):
        past = history.get(key, np.zeros(0))
        found = series_finding(
            (str(key[0]), str(key[1])),
            past.astype(float),
            (raw.astype(float), times.view("int64")),
            signals.get(str(key[1]), SignalMeta()),
            threshold=threshold,
            min_points=min_points,
        )
        if found is not None:
            findings.append(found)
    return findings


START = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
SIGNALS = {
    "error_ratio": SignalMeta("ratio", "higher"),
    "throughput": SignalMeta("rps", "lower"),
    "latency": SignalMeta("ms", "either", floor=1.0),
}


@st.composite
def samples(draw: st.DrawFn) -> pd.DataFrame:
    rows = []
    for service in draw(st.lists(st.sampled_from(["api", "db", "web", "é"]), max_size=3)):
        for signal in draw(st.lists(st.sampled_from([*SIGNALS, "other"]), min_size=1, max_size=3)):
            level = draw(st.floats(0, 100))
            jump = draw(st.floats(-50, 200))
            at = draw(st.integers(0, 40))
            missing = draw(st.sets(st.integers(0, 40), max_size=12))  # gaps
            repeated = draw(st.lists(st.integers(0, 40), max_size=3))  # two samples at once
            for step in sorted([*(s for s in range(41) if s not in missing), *repeated]):
                noise = draw(st.sampled_from([0.0, 0.5, -0.5, 3.0]))
                value = level + noise + (jump if step >= at else 0.0)
                rows.append((START + timedelta(minutes=step), service, signal, value))
    return metric_frame(rows)


@settings(max_examples=300, deadline=None)
@given(
    samples(),
    st.integers(-5, 20),  # the baseline from before the first sample to well inside
    st.integers(1, 20),
    st.integers(0, 5),
    st.integers(1, 25),  # the incident to the last sample, or past it
    st.sampled_from([(3.0, 1), (1.0, 3), (0.5, 1)]),
)
def test_findings_from_the_arrays_are_those_from_the_frame(
    frame: pd.DataFrame,
    baseline_at: int,
    baseline_len: int,
    gap: int,
    incident_len: int,
    bar: tuple[float, int],
) -> None:
    minute = timedelta(minutes=1)
    baseline_start = START + baseline_at * minute
    baseline_end = baseline_start + baseline_len * minute
    incident_start = baseline_end + gap * minute
    windows = Windows(
        baseline_start,
        baseline_end,
        incident_start,
        incident_start + incident_len * minute,
        incident_start,
    )
    threshold, min_points = bar
    ordered = in_order(frame)
    expected = reference_findings(
        ordered, SIGNALS, windows, threshold=threshold, min_points=min_points
    )
    series = series_of(frame)
    got = metric_findings(series, SIGNALS, windows, threshold=threshold, min_points=min_points)
    assert got == expected
    assert metric_findings(frame, SIGNALS, windows, threshold=threshold, min_points=min_points) == (
        expected
    )
