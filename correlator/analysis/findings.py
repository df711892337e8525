"""One piece of evidence about one service, and the robust statistics every kind shares (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

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

    @property
    def strength(self) -> float:
        return strength(self.score)


def strength(score: float) -> float:
    """A z-like score → (0, 1): 3sigma is weak evidence (≈0.45), 10sigma strong (≈0.86)."""
    return 1.0 - math.exp(-max(score, 0.0) / 5.0)


def robust_scale(values: np.ndarray, *, relative: float = 0.05, floor: float = 1e-9) -> float:
    """The spread of a baseline, never below `relative` of its level or `floor`: a perfectly
    flat baseline must not turn a tiny wobble into a huge score."""
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * MAD_TO_SIGMA
    return max(mad, relative * abs(median), floor)


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
            return int(i), float(np.median(z[i:]))
    return None, 0.0
