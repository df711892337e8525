"""Incident and baseline windows, with an injected now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from correlator.analysis.windows import WindowPolicy, incident_windows

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("onset", "incident", "baseline"),
    [
        # Fresh alert: 15 min lead, until now; an hour of baseline, 5 min apart.
        (NOW - 10 * M, (NOW - 25 * M, NOW), (NOW - 90 * M, NOW - 30 * M)),
        # Analysed the moment it fired: the window still reaches 5 min past the start.
        (NOW, (NOW - 15 * M, NOW), (NOW - 80 * M, NOW - 20 * M)),
        # Started 6 h ago: analysed around its onset, at most 2 h after it.
        (NOW - 360 * M, (NOW - 375 * M, NOW - 240 * M), (NOW - 440 * M, NOW - 380 * M)),
        # Clock skew: an onset 3 min in the future is now.
        (NOW + 3 * M, (NOW - 15 * M, NOW), (NOW - 80 * M, NOW - 20 * M)),
    ],
    ids=["fresh", "just-fired", "hours-old", "future-onset"],
)
def test_windows(
    onset: datetime, incident: tuple[datetime, datetime], baseline: tuple[datetime, datetime]
) -> None:
    windows = incident_windows(onset, NOW)
    assert (windows.incident_start, windows.incident_end) == incident
    assert (windows.baseline_start, windows.baseline_end) == baseline
    assert windows.baseline_end < windows.incident_start <= windows.onset <= windows.incident_end


def test_policy_is_configurable() -> None:
    windows = incident_windows(
        NOW - 10 * M, NOW, WindowPolicy(lead=5 * M, baseline=30 * M, gap=0 * M)
    )
    assert windows.incident_start == NOW - 15 * M
    assert (windows.baseline_start, windows.baseline_end) == (NOW - 45 * M, NOW - 15 * M)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        incident_windows(datetime(2026, 1, 1), NOW)
