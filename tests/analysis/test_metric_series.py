"""Metric findings read from the samples as arrays once (`metric_evidence.Series`) are exactly
those of reading each window's rows from the frame, as the analysis did before (kept here as
the reference): on any samples, gaps, ties and windows, at every threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.findings import (
    Finding,
    median,
    robust_scale,
    sustained_change,
)
from correlator.analysis.metric_evidence import (
    MIN_BASELINE_POINTS,
    NOISE_BAR,
    in_order,
    metric_findings,
    series_of,
)
from correlator.analysis.metric_evidence import (
    _fmt as fmt,
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
    threshold: float = 3.0,
    min_points: int = 1,
    ordered: bool = False,
) -> list[Finding]:
    """One finding per (service, signal) whose incident values moved, in the worse direction,
    more than `threshold` robust deviations from the baseline and stayed there (for at least
    `min_points` samples). `ordered`: the metrics are `in_order` already (a caller looking
    at several windows orders them once)."""
    if metrics.empty:
        return []
    if not ordered:
        metrics = in_order(metrics)
    t = metrics["time"]
    baseline = metrics[(t >= windows.baseline_start) & (t < windows.baseline_end)]
    incident = metrics[(t >= windows.incident_start) & (t <= windows.incident_end)]
    findings = []
    keys = ["service", "signal"]
    history = dict(zip(*_groups(baseline, keys, "value"), strict=True))
    group_keys, group_values = _groups(incident, keys, "value")
    _, group_times = _groups(incident, keys, "time")
    for key, raw, times in zip(group_keys, group_values, group_times, strict=True):
        service, signal = key
        past = history.get(key)
        if past is None or len(past) < MIN_BASELINE_POINTS:
            continue
        past = past.astype(float)
        values = raw.astype(float)
        meta = signals.get(str(signal), SignalMeta())
        level = median(past)
        scale = robust_scale(past, floor=max(meta.floor, 1e-9))
        z = (values - level) / scale
        if meta.worse_when == "lower":
            z = -z
        elif meta.worse_when == "either":
            z = np.abs(z)
        start, score = sustained_change(z, threshold)
        if start is None or len(z) - start < min_points:
            continue
        # A signal that often strays this far in normal times is weaker evidence: divide by
        # how far the baseline itself strays (its 95th percentile |z|), when that is beyond
        # NOISE_BAR (whatever bar this call reports from).
        score /= max(1.0, float(np.quantile(np.abs(past - level) / scale, 0.95)) / NOISE_BAR)
        if score < threshold:
            continue
        after = median(values[start:])
        if meta.worse_when == "higher" and after < meta.floor:
            continue
        verb = "rose" if after > level else "fell"
        findings.append(
            Finding(
                service=str(service),
                kind="metric",
                signal=str(signal),
                score=score,
                before=level,
                after=after,
                unit=meta.unit,
                change_time=pd.Timestamp(times[start], tz="UTC"),
                detail=(f"{signal} {verb} from {fmt(level, meta.unit)} to {fmt(after, meta.unit)}"),
                query=meta.query,
            )
        )
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
        ordered, SIGNALS, windows, threshold=threshold, min_points=min_points, ordered=True
    )
    series = series_of(ordered)
    got = metric_findings(series, SIGNALS, windows, threshold=threshold, min_points=min_points)
    assert got == expected
    assert metric_findings(frame, SIGNALS, windows, threshold=threshold, min_points=min_points) == (
        expected
    )
