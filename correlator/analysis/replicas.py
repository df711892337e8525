"""Replica evidence: one pod of a service saturated while its siblings are not (pure).

A resource fault (a noisy neighbour on the node, a leak, a hot shard) often hits one replica.
The service's aggregate moves little, and a baseline may be missing or unlike today, but the
siblings are a baseline of their own, measured at the same moments under the same traffic: a
replica whose incident level stands out from its siblings', and that changed against its own
baseline too (a replica that was always the hot one is not this incident), is evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from correlator.analysis.findings import Finding, robust_scale, sustained_change
from correlator.analysis.telemetry import SignalMeta
from correlator.analysis.windows import Windows

MIN_POINTS = 3  # as for metrics: the fewest points with a median and a spread


def replica_findings(
    replicas: pd.DataFrame,
    signals: dict[str, SignalMeta],
    windows: Windows,
    *,
    threshold: float = 3.0,
) -> list[Finding]:
    if replicas.empty:
        return []
    t = replicas["time"]
    baseline = replicas[(t >= windows.baseline_start) & (t < windows.baseline_end)]
    incident = replicas[(t >= windows.incident_start) & (t <= windows.incident_end)]
    before = {k: g["value"].to_numpy(float) for k, g in baseline.groupby(["instance", "signal"])}
    findings = []
    for (service, signal), group in incident.groupby(["service", "signal"]):
        meta = signals.get(str(signal), SignalMeta())
        if meta.worse_when != "higher":
            continue  # saturation: usage, throttling, restarts, memory
        table = group.pivot_table(index="time", columns="instance", values="value")
        if table.shape[1] < 2 or len(table) < MIN_POINTS:
            continue
        for instance in table.columns:
            mine = table[instance].to_numpy(float)
            others = table.drop(columns=instance).to_numpy(float)
            siblings = np.nanmedian(others, axis=1)
            ok = ~np.isnan(mine) & ~np.isnan(siblings)
            if ok.sum() < MIN_POINTS:
                continue
            pooled = others[~np.isnan(others)]
            # Siblings differ by a tenth at least: pods of one service are never identical.
            spread = robust_scale(pooled, relative=0.1, floor=max(meta.floor, 1e-9))
            # From when on it stands apart from its siblings at the same moments, and by how much.
            start, apart = sustained_change((mine[ok] - siblings[ok]) / spread, threshold)
            if start is None:
                continue
            level = float(np.median(mine[ok][start:]))
            past = before.get((instance, str(signal)))
            if past is None or len(past) < MIN_POINTS:
                changed = apart  # no baseline of its own: the siblings are the baseline
            else:
                own = robust_scale(past, relative=0.1, floor=max(meta.floor, 1e-9))
                changed = (level - float(np.median(past))) / own
            score = min(apart, changed)
            if score < threshold or level < meta.floor:
                continue
            peers = float(np.median(siblings[ok][start:]))
            findings.append(
                Finding(
                    service=str(service),
                    kind="metric",
                    signal=f"{signal} of one replica",
                    score=float(score),
                    before=peers,
                    after=level,
                    unit=meta.unit,
                    change_time=pd.Timestamp(table.index[ok][start]),
                    detail=(
                        f"replica {instance}: {signal} at {level:.3g} {meta.unit}, its "
                        f"{others.shape[1]} siblings at {peers:.3g}"
                    ),
                    query=meta.query,
                )
            )
    return findings
