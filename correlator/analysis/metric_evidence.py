"""Metric evidence: which service's series left their baseline, when, and by how much (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from correlator.analysis.findings import Finding, median, robust_scale, sustained_change
from correlator.analysis.telemetry import SignalMeta
from correlator.analysis.windows import Windows

# A normal series strays beyond 1.96 deviations 5 % of the time; one whose 95th percentile is
# beyond 3 is noisier than that, and its scores are scaled down by how much.
NOISE_BAR = 3.0
MIN_BASELINE_POINTS = 3  # the fewest points with a median and a spread (MAD) of their own


def _fmt(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    return f"{value:.3g} {unit}".strip()


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


ORDER = ["service", "signal", "time"]


def in_order(metrics: pd.DataFrame) -> pd.DataFrame:
    """The samples by service, signal and time, as every window of them is read (a stable
    sort: samples of the same instant keep their order).

    The order of `metrics.sort_values(ORDER, kind="stable")`, at a third of its cost: the
    strings are ranked once per distinct value (`pd.factorize(sort=True)`), the instants are
    read as integers, and one stable `np.lexsort` orders the rows (pandas also made a
    category of every instant, most of its time on a correlation's 83,000 samples)."""
    if len(metrics) < 2:
        return metrics
    service, _ = pd.factorize(metrics["service"].to_numpy(), sort=True)
    signal, _ = pd.factorize(metrics["signal"].to_numpy(), sort=True)
    times = metrics["time"].to_numpy(dtype="datetime64[ns]").view("int64")
    return metrics.take(np.lexsort((times, signal, service)))  # the last key sorts first


def metric_findings(
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
                detail=(
                    f"{signal} {verb} from {_fmt(level, meta.unit)} to {_fmt(after, meta.unit)}"
                ),
                query=meta.query,
            )
        )
    return findings
