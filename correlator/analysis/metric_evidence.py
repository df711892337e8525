"""Metric evidence: which service's series left their baseline, when, and by how much (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class Series:
    """Metric samples `in_order` as arrays, read once for every window an analysis looks at:
    the rows of series `keys[i]` (service, signal) are `bounds[i]` to `bounds[i + 1]`, in
    time order."""

    keys: list[tuple[str, str]]
    bounds: np.ndarray
    times: np.ndarray  # UTC nanoseconds
    values: np.ndarray

    def between(
        self, start: datetime, end: datetime, *, closed: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The rows in [start, end) (`closed`: [start, end]), and where each series' begin
        among them (len(keys) + 1 cuts)."""
        t = self.times
        upper = t <= _ns(end) if closed else t < _ns(end)
        rows = np.flatnonzero((t >= _ns(start)) & upper)
        return rows, np.searchsorted(rows, self.bounds)


def _ns(moment: datetime) -> int:
    return int(pd.Timestamp(moment).value)


def series_of(metrics: pd.DataFrame) -> Series:
    """The metrics, `in_order`, as `Series`."""
    if metrics.empty:
        return Series([], np.zeros(1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0))
    ordered = in_order(metrics)
    service = ordered["service"].to_numpy()
    signal = ordered["signal"].to_numpy()
    change = np.ones(len(ordered), dtype=bool)
    change[1:] = (service[1:] != service[:-1]) | (signal[1:] != signal[:-1])
    starts = np.flatnonzero(change)
    return Series(
        [(str(service[i]), str(signal[i])) for i in starts],
        np.append(starts, len(ordered)),
        ordered["time"].to_numpy(dtype="datetime64[ns]").view("int64"),
        ordered["value"].to_numpy(dtype=float),
    )


def metric_findings(
    metrics: pd.DataFrame | Series,
    signals: dict[str, SignalMeta],
    windows: Windows,
    *,
    threshold: float = 3.0,
    min_points: int = 1,
) -> list[Finding]:
    """One finding per (service, signal) whose incident values moved, in the worse direction,
    more than `threshold` robust deviations from the baseline and stayed there (for at least
    `min_points` samples). `metrics`: a frame, or its `Series` (a caller looking at several
    windows reads them once)."""
    series = series_of(metrics) if isinstance(metrics, pd.DataFrame) else metrics
    before, before_cuts = series.between(windows.baseline_start, windows.baseline_end)
    during, during_cuts = series.between(windows.incident_start, windows.incident_end, closed=True)
    findings = []
    for i, key in enumerate(series.keys):
        if during_cuts[i] == during_cuts[i + 1]:
            continue  # no sample in the incident window
        past = series.values[before[before_cuts[i] : before_cuts[i + 1]]]
        rows = during[during_cuts[i] : during_cuts[i + 1]]
        found = series_finding(
            key,
            past,
            (series.values[rows], series.times[rows]),
            signals.get(key[1], SignalMeta()),
            threshold=threshold,
            min_points=min_points,
        )
        if found is not None:
            findings.append(found)
    return findings


def series_finding(
    key: tuple[str, str],
    past: np.ndarray,
    incident: tuple[np.ndarray, np.ndarray],
    meta: SignalMeta,
    *,
    threshold: float,
    min_points: int,
) -> Finding | None:
    """The finding of one (service, signal) series, from its baseline values (`past`) and its
    incident values and their times (nanoseconds), or None: see `metric_findings`."""
    if len(past) < MIN_BASELINE_POINTS:
        return None
    values, times = incident
    level = median(past)
    scale = robust_scale(past, floor=max(meta.floor, 1e-9))
    z = (values - level) / scale
    if meta.worse_when == "lower":
        z = -z
    elif meta.worse_when == "either":
        z = np.abs(z)
    start, score = sustained_change(z, threshold)
    if start is None or len(z) - start < min_points:
        return None
    # A signal that often strays this far in normal times is weaker evidence: divide by how
    # far the baseline itself strays (its 95th percentile |z|), when that is beyond NOISE_BAR
    # (whatever bar this call reports from).
    score /= max(1.0, float(np.quantile(np.abs(past - level) / scale, 0.95)) / NOISE_BAR)
    if score < threshold:
        return None
    after = median(values[start:])
    if meta.worse_when == "higher" and after < meta.floor:
        return None
    service, signal = key
    verb = "rose" if after > level else "fell"
    return Finding(
        service=service,
        kind="metric",
        signal=signal,
        score=score,
        before=level,
        after=after,
        unit=meta.unit,
        change_time=pd.Timestamp(int(times[start]), unit="ns", tz="UTC"),
        detail=f"{signal} {verb} from {_fmt(level, meta.unit)} to {_fmt(after, meta.unit)}",
        query=meta.query,
    )
