"""Calibration: how rare a producer's score is on this system's own fault-free data (pure).

Each producer of evidence scores on its own scale: a robust z of a metric, a Poisson surprise of
a log template, a proportion test of a log path, the share of slowed edges. Those scales do not
compare, and weights chosen by looking at incidents do not carry to another system. So each
score becomes a tail probability measured on the incident's own history: the producer is run on
*null windows* carved from the baseline (fault-free by construction: they end before the
incident window opens), each compared with the baseline before it exactly as the incident is,
and a score's p is how often a service reached it there.

- The null incident windows tile the second half of the data the baseline actually holds, each
  as long as the incident window (or the half, if shorter), at most `MAX_NULLS` of them.
- A unit is one service in one null window; its value is the producer's highest score there (0
  when it found nothing). p(s) = (units reaching s + prior(s)) / (units + 1): one pseudo-unit
  drawn from the prior keeps a score never reached in the history from p = 0 and orders the
  scores beyond all of it.
- The prior is a Laplace tail, 0.5·e^-s: scores are z-like, and real telemetry has heavier
  tails than the normal; with no history at all, this is what a score is worth.

The ranking then uses each score discounted by how much less rare the history says it is than
the producer's own scale does (the ratio of the normal quantiles of p and of the prior alone,
at most 1): noise this system's fault-free windows show counts for less, with no weight chosen
per kind of evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from correlator.analysis.findings import Finding, z_of_p
from correlator.analysis.windows import Windows

# More null windows sharpen p but each costs a run of the producer; four keep an analysis
# within a few times its uncalibrated cost while giving every service four chances to be noisy.
MAX_NULLS = 4


@dataclass(frozen=True, slots=True)
class Null:
    """What one producer scored on the null windows: each unit's highest score (sorted)."""

    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def units(self) -> int:
        return len(self.scores)

    def p(self, score: float) -> float:
        """How often a fault-free unit reaches `score` (with one pseudo-unit from the prior)."""
        reached = self.units - int(np.searchsorted(self.scores, score, side="left"))
        return (reached + prior(score)) / (self.units + 1)


def prior(score: float) -> float:
    return 0.5 * math.exp(-max(score, 0.0))


def null_windows(times: pd.Series, windows: Windows, most: int = MAX_NULLS) -> list[Windows]:
    """Fault-free windows shaped like the incident's, inside what the baseline holds."""
    base = times[(times >= windows.baseline_start) & (times < windows.baseline_end)]
    if len(base) < 2:
        return []
    first = base.min().to_pydatetime(warn=False)
    last = base.max().to_pydatetime(warn=False)
    half = (last - first) / 2
    length = min(windows.incident_end - windows.incident_start, half)
    if length.total_seconds() <= 0:
        return []
    count = min(most, int(half / length))
    out = []
    for k in range(count):
        end = last - k * length
        start = end - length
        out.append(Windows(first, start, start, end, start))
    return out


Producer = Callable[[Windows], list[Finding]]


def null_scores(
    producer: Producer, nulls: Iterable[Windows], services: Callable[[Windows], set[str]]
) -> Null:
    """Run `producer` on each null window; every service with data there is a unit."""
    values: list[float] = []
    for window in nulls:
        best: dict[str, float] = dict.fromkeys(services(window), 0.0)
        for finding in producer(window):
            best[finding.service] = max(best.get(finding.service, 0.0), finding.score)
        values += best.values()
    return Null(np.sort(np.asarray(values, dtype=float)))


@dataclass(slots=True)
class Calibration:
    nulls: dict[str, Null] = field(default_factory=dict)

    def p(self, producer: str, score: float) -> float:
        return self.nulls.get(producer, Null()).p(score)

    def units(self) -> dict[str, int]:
        return {name: null.units for name, null in self.nulls.items()}


def calibrated(evidence: Mapping[str, list[Finding]], calibration: Calibration) -> None:
    """Each finding gets its tail probability `p` on this system's history, and its score is
    discounted by how much less rare that history says it is than its producer's own scale
    does (`z(p) / z(prior)`, at most 1): evidence this system's fault-free windows also
    produce counts for less; evidence they never reach keeps its producer's score. In place;
    the producer's own score is kept as `raw_score`."""
    for producer, findings in evidence.items():
        for finding in findings:
            raw = finding.score
            finding.raw_score = raw
            finding.p = calibration.p(producer, raw)
            alone = z_of_p(prior(raw))
            finding.score = raw * min(1.0, z_of_p(finding.p) / alone) if alone > 0 else raw


def services_between(frame: pd.DataFrame, column: str) -> Callable[[Windows], set[str]]:
    """The services with rows of `frame` inside a window's incident part."""

    def inside(window: Windows) -> set[str]:
        if frame.empty:
            return set()
        t = frame[column]
        rows = frame[(t >= window.incident_start) & (t <= window.incident_end)]
        return {str(s) for s in rows["service"].unique()}

    return inside
