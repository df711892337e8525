"""Metric signals: which service's series left their baseline, when, and by how much (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from correlator.analysis.findings import Finding, robust_scale, sustained_change
from correlator.analysis.telemetry import SignalMeta
from correlator.analysis.windows import Windows

MIN_BASELINE_POINTS = 3


def _fmt(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    return f"{value:.3g} {unit}".strip()


def metric_findings(
    metrics: pd.DataFrame,
    signals: dict[str, SignalMeta],
    windows: Windows,
    *,
    threshold: float = 3.0,
) -> list[Finding]:
    """One finding per (service, signal) whose incident values moved, in the worse direction,
    more than `threshold` robust deviations from the baseline and stayed there."""
    if metrics.empty:
        return []
    t = metrics["time"]
    baseline = metrics[(t >= windows.baseline_start) & (t < windows.baseline_end)]
    incident = metrics[(t >= windows.incident_start) & (t <= windows.incident_end)]
    before = {
        key: group["value"].to_numpy(float)
        for key, group in baseline.groupby(["service", "signal"])
    }
    findings = []
    for (service, signal), group in incident.sort_values("time").groupby(["service", "signal"]):
        history = before.get((service, signal))
        if history is None or len(history) < MIN_BASELINE_POINTS:
            continue
        meta = signals.get(str(signal), SignalMeta())
        values = group["value"].to_numpy(float)
        median = float(np.median(history))
        scale = robust_scale(history, floor=max(meta.floor, 1e-9))
        z = (values - median) / scale
        if meta.worse_when == "lower":
            z = -z
        elif meta.worse_when == "either":
            z = np.abs(z)
        start, score = sustained_change(group["time"], z, threshold)
        # A signal that often strays this far in normal times is weaker evidence: divide by
        # how far the baseline itself strays (its 95th percentile |z|), when that is beyond 3.
        score /= max(1.0, float(np.quantile(np.abs(history - median) / scale, 0.95)) / threshold)
        if score < threshold:
            continue
        if start is None:
            continue
        after = float(np.median(values[start:]))
        if meta.worse_when == "higher" and after < meta.floor:
            continue
        verb = "rose" if after > median else "fell"
        changed_at = group["time"].iloc[start]
        findings.append(
            Finding(
                service=str(service),
                kind="metric",
                signal=str(signal),
                score=score,
                before=median,
                after=after,
                unit=meta.unit,
                change_time=changed_at,
                detail=(
                    f"{signal} {verb} from {_fmt(median, meta.unit)} to {_fmt(after, meta.unit)}"
                ),
                query=meta.query,
            )
        )
    return findings
