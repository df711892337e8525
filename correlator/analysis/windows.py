"""The time windows of an incident: when to look, and what "normal" was before (pure).

An alert's `startsAt` is when its condition first held; the change behind it usually came
earlier, because alert expressions look back over rate windows. So the incident window opens
`lead` before the onset and runs until now, at most `max_incident` after the onset (an alert
that started hours ago is analysed around its onset, not around now). The baseline is the
`baseline` before the incident window, separated by `gap` so a slow start does not leak into
"normal". An onset in the future (clock skew between Prometheus and correlator) counts as now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Windows:
    baseline_start: datetime
    baseline_end: datetime
    incident_start: datetime
    incident_end: datetime
    onset: datetime

    @property
    def start(self) -> datetime:
        """Where a single query covering both windows begins."""
        return self.baseline_start


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    lead: timedelta = timedelta(minutes=15)
    tail_min: timedelta = timedelta(minutes=5)
    max_incident: timedelta = timedelta(hours=2)
    baseline: timedelta = timedelta(hours=1)
    gap: timedelta = timedelta(minutes=5)


def incident_windows(
    onset: datetime, now: datetime, policy: WindowPolicy = WindowPolicy()
) -> Windows:
    """Windows for an alert whose condition began at `onset`, analysed at `now`."""
    if onset.tzinfo is None or now.tzinfo is None:
        raise ValueError("onset and now must be timezone-aware")
    onset = min(onset, now)  # clock skew: an onset "in the future" is now
    incident_start = onset - policy.lead
    # At least a little after the onset, even if analysed at once; never past now, and no
    # more than max_incident after the onset for an alert that began long ago.
    incident_end = min(max(now, onset + policy.tail_min), onset + policy.max_incident)
    incident_end = max(min(incident_end, now), incident_start + policy.tail_min)
    baseline_end = incident_start - policy.gap
    return Windows(
        baseline_start=baseline_end - policy.baseline,
        baseline_end=baseline_end,
        incident_start=incident_start,
        incident_end=incident_end,
        onset=onset,
    )
