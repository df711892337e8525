"""PNG graphs of a report's evidence series (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt


def _time(text: str) -> float:
    """An RFC 3339 time as matplotlib's date number."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]


def render_png(series: dict[str, Any], windows: dict[str, Any] | None) -> bytes:
    """One evidence series around the alert: the incident window shaded, the change marked."""
    times = [_time(t) for t, _ in series["points"]]
    values = [v for _, v in series["points"]]
    figure, axes = plt.subplots(figsize=(8, 3), dpi=100)
    try:
        axes.plot(times, values, color="#1f77b4", linewidth=1.5)
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
