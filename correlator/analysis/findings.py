"""One piece of evidence about one service, and the robust statistics every kind shares (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import NormalDist

import numpy as np
import pandas as pd

# 1.4826 x MAD estimates sigma for normal data, without letting the outliers we look for inflate it.
MAD_TO_SIGMA = 1.4826


@dataclass(slots=True)
class Finding:
    service: str
    kind: str  # "metric", "log" or "trace"
    signal: str  # what changed: a metric signal, a log template, an operation…
    score: float  # robust z-like: how many baseline deviations from normal, ≥ 0
    before: float | None
    after: float | None
    unit: str
    change_time: datetime | None
    detail: str  # a plain-language phrase: "error_ratio rose from 0.1% to 12%"
    query: str = ""
    samples: list[str] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    # Once calibrated (analysis.calibrate): the producer's own score, and how often this
    # system's fault-free windows reach it; `score` is then the normal quantile of `p`.
    raw_score: float | None = None
    p: float | None = None

    @property
    def strength(self) -> float:
        return strength(self.score)


def strength(score: float) -> float:
    """A z-like score → (0, 1): 3sigma is weak evidence (≈0.45), 10sigma strong (≈0.86). The
    scale 5 keeps the map from saturating below 10sigma, so strong findings still order."""
    return 1.0 - math.exp(-max(score, 0.0) / 5.0)


def median(values: np.ndarray | Sequence[float]) -> float:
    """`np.median` of a one-dimensional sample, without its generality: the analysis takes
    ten thousand medians of small arrays per correlation, where np.median's own overhead is
    most of the cost. NaN if the sample is empty or holds a NaN, as np.median."""
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    if n == 0 or np.isnan(ordered[-1]):  # NaN sorts last
        return math.nan
    middle = n // 2
    if n % 2:
        return float(ordered[middle])
    return float((ordered[middle - 1] + ordered[middle]) / 2)


def robust_scale(values: np.ndarray, *, relative: float = 0.05, floor: float = 1e-9) -> float:
    """The spread of a baseline, never below `relative` of its level or `floor`: a perfectly
    flat baseline must not turn a tiny wobble into a huge score. 5 % is the resolution of a
    rate over a scrape window (a count of 20 moves by one in 20)."""
    level = median(values)
    mad = median(np.abs(values - level)) * MAD_TO_SIGMA
    return max(mad, relative * abs(level), floor)


def poisson_surge(count: int, baseline_count: int, ratio: float) -> float:
    """How surprising `count` events are when the baseline saw `baseline_count` in a window
    `ratio` times shorter than this one (≥ 0; Anscombe-stabilised)."""
    expected = baseline_count * ratio
    return max(0.0, 2.0 * (math.sqrt(count + 3 / 8) - math.sqrt(expected + 3 / 8)))


def sustained_change(z: np.ndarray, threshold: float) -> tuple[int | None, float]:
    """The first point from which the change holds (at least half of the later points are
    beyond `threshold`), and the median z from there; a single spike is not a change."""
    beyond = z > threshold
    if not beyond.any():
        return None, 0.0
    # Fraction of points beyond threshold from each position to the end.
    tail_counts = np.cumsum(beyond[::-1])[::-1]
    remaining = np.arange(len(z), 0, -1)
    for i in np.flatnonzero(beyond):
        if tail_counts[i] / remaining[i] >= 0.5 and tail_counts[i] >= min(2, len(z) - i):
            return int(i), median(z[i:])
    return None, 0.0


def change_point(values: np.ndarray) -> tuple[int | None, float]:
    """Where a sequence (in time order) shifted, and how surely: Pettitt's rank test, which
    assumes no distribution and ignores a trend that runs through the whole sequence less than
    a step. Returns the first index after the change and a z-like score (the normal quantile of
    the test's p-value); (None, 0.0) for a sequence too short to tell."""
    n = len(values)
    if n < 6:
        return None, 0.0
    ranks = pd.Series(values).rank().to_numpy(float)
    u = 2.0 * np.cumsum(ranks)[:-1] - np.arange(1, n) * (n + 1)
    at = int(np.argmax(np.abs(u)))
    k = float(abs(u[at]))
    p = min(1.0, 2.0 * math.exp(-6.0 * k * k / (n**3 + n**2)))
    return at + 1, z_of_p(p)


def z_of_p(p: float) -> float:
    """The one-sided normal quantile of a p-value (0 for p ≥ 0.5), for scores on one scale."""
    if p >= 0.5:
        return 0.0
    return -float(NormalDist().inv_cdf(max(p, 1e-300)))


def proportion_z(k_before: int, n_before: int, k_after: int, n_after: int) -> float:
    """Two-proportion z (pooled): how surely a share changed between two samples, signed
    (negative when it fell)."""
    if n_before == 0 or n_after == 0:
        return 0.0
    pooled = (k_before + k_after) / (n_before + n_after)
    spread = math.sqrt(max(pooled * (1 - pooled) * (1 / n_before + 1 / n_after), 1e-12))
    return (k_after / n_after - k_before / n_before) / spread


# Within-window change (Pettitt z) that fully confirms a shift seen against the baseline: 3 is
# the one-sided 0.1 % level, the same bar every producer sets for its own scores.
CONFIRM_Z = 3.0
# A level already there when the window opened keeps this share of its score: it may be this
# incident begun early, or a baseline from another hour; 0.3 leaves a 10-sigma drift at the
# 3-sigma bar, so only a drift far beyond anything else still counts as evidence.
DRIFT_WEIGHT = 0.3


def confirmed(
    values: np.ndarray, times: Sequence[datetime], *, up: bool = True
) -> tuple[float, pd.Timestamp | None]:
    """Did a shift of `values` (in time order) begin inside the window? → (weight for its
    score, when it began or None). A baseline taken at another time of day (a table that grew,
    a busier hour) shifts a signal for the whole window: that is a drift, not this incident."""
    at, z = change_point(values)
    if at is None or z <= 0:
        return DRIFT_WEIGHT, None
    later, earlier = median(values[at:]), median(values[:at])
    if (later > earlier) != up:
        return DRIFT_WEIGHT, None
    return max(DRIFT_WEIGHT, min(1.0, z / CONFIRM_Z)), pd.Timestamp(times[at])
