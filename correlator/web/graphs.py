"""PNG graphs of a report's evidence series (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt

# The stretch of baseline shown before the incident: as long as the incident shown, within
# these bounds, so the change sits mid-graph with enough "normal" before it to compare.
MIN_BASELINE = timedelta(minutes=10)
MAX_BASELINE = timedelta(minutes=60)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _time(text: str) -> float:
    """An RFC 3339 time as matplotlib's date number."""
    return float(mdates.date2num(_moment(text)))  # type: ignore[no-untyped-call]


def view(points: list[list[Any]], windows: dict[str, Any] | None) -> tuple[datetime, datetime]:
    """The time range a graph shows: the incident window (up to the last point) and before it
    a stretch of baseline as long as that, between MIN_BASELINE and MAX_BASELINE; the whole
    series when the windows are not known."""
    first, last = _moment(points[0][0]), _moment(points[-1][0])
    if not windows or not windows.get("incident_start"):
        return first, last
    start = _moment(windows["incident_start"])
    end = min(_moment(windows.get("incident_end") or points[-1][0]), last)
    if end <= start:
        return first, last
    baseline = min(max(end - start, MIN_BASELINE), MAX_BASELINE)
    return max(start - baseline, first), end


def render_png(series: dict[str, Any], windows: dict[str, Any] | None) -> bytes:
    """One evidence series around the alert: a proportionate stretch of baseline, the incident
    window shaded, the change marked."""
    if not series["points"]:
        points: list[list[Any]] = []
    else:
        low, high = view(series["points"], windows)
        points = [p for p in series["points"] if low <= _moment(p[0]) <= high]
    times = [_time(t) for t, _ in points]
    values = [v for _, v in points]
    figure, axes = plt.subplots(figsize=(8, 3), dpi=100)
    try:
        axes.plot(times, values, color="#1f77b4", linewidth=1.5)
        if times:
            axes.set_xlim(times[0], times[-1])
        if windows and windows.get("incident_start") and windows.get("incident_end"):
            axes.axvspan(
                _time(windows["incident_start"]),
                _time(windows["incident_end"]),
                color="#d62728",
                alpha=0.08,
                label="incident window",
            )
        if series.get("change_time"):
            axes.axvline(
                _time(series["change_time"]), color="#d62728", linestyle="--", label="change"
            )
        if windows and windows.get("onset"):
            axes.axvline(_time(windows["onset"]), color="#7f7f7f", linestyle=":", label="alert")
        # Titles are drawn as text (no TeX/mathtext from alert content).
        axes.set_title(series["title"], fontsize=10, usetex=False, parse_math=False)
        axes.set_ylabel(series.get("unit") or "", parse_math=False)
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", fontsize=8)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
