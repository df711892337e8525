"""What the incident page says in words: a suspect's score as the confidence it is, which
notification the report answers, and the incident's timeline (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from correlator.analysis.rank import CALLER_BONUS
from correlator.models.incidents import IncidentDetail, NotificationRecord
from correlator.models.report import Suspect

# A suspect's score: its own evidence combined (0 to 1, a noisy-OR of each kind's strength),
# lowered when a service it calls changed first, raised by up to CALLER_BONUS when its callers
# degraded after it (analysis/rank.py).
MAX_SCORE = 1.0 + CALLER_BONUS
BANDS = ((0.8, "strong"), (0.5, "moderate"), (0.25, "weak"), (0.0, "faint"))


def confidence(suspect: Suspect) -> dict[str, str]:
    """The score in words: a band, and what made it."""
    score = suspect.score
    band = next(label for floor, label in BANDS if score >= floor)
    because = ["how far its own metrics, logs and traces left their baseline (0 to 1)"]
    if suspect.weak:
        # Listed only because its metrics moved a little: after every suspect with evidence.
        band = "faint"
        because = ["only a small deviation of its metrics, below every threshold of evidence"]
    if suspect.caused_by:
        because.append(f"lowered: {', '.join(suspect.caused_by)}, which it calls, changed first")
    if suspect.affects:
        because.append(f"raised: {', '.join(suspect.affects)}, which call it, degraded after it")
    return {
        "band": band,
        "score": f"{score:.2f}",
        "of": f"{MAX_SCORE:.1f}",
        "title": f"{band} confidence that the incident started here",
        "because": "; ".join(because),
    }


@dataclass(frozen=True, slots=True)
class Analysed:
    at: str | None
    notification: NotificationRecord | None


def analysed_for(incident: IncidentDetail) -> Analysed | None:
    """When the shown report was analysed, and the notification it answers."""
    report = incident.report
    if report is None:
        return None
    done = [w for w in incident.work_items if w.state == "done" and w.notification_id]
    # The store keeps the report of the newest notification analysed (an older one finishing
    # later is refused), so that is the one shown.
    latest = max(done, key=lambda w: w.notification_id or 0, default=None)
    notification = next(
        (n for n in incident.timeline if latest and n.id == latest.notification_id), None
    )
    at = report.generated_at.astimezone(UTC)
    return Analysed(at=at.strftime("%Y-%m-%d %H:%M:%S"), notification=notification)


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    what: str
    detail: str


def timeline(incident: IncidentDetail) -> list[Event]:
    """Notifications received, analyses finished and messages sent, oldest first."""
    events = [
        Event(
            n.received_at,
            f"notification #{n.id}: {n.status.value}",
            f"{n.alerts_firing} firing, {n.alerts_resolved} resolved"
            + (f", {n.new_alerts} new" if n.new_alerts else "")
            + ("" if n.changed else ", nothing new"),
        )
        for n in incident.timeline
    ]
    events += [
        Event(w.updated_at, f"analysed notification #{w.notification_id}", "report stored")
        for w in incident.work_items
        if w.state == "done" and w.notification_id
    ]
    events += [
        Event(d["updated_at"], f"sent to {d['sink']}: {d['state']}", d.get("last_error") or "")
        for d in incident.deliveries
        if isinstance(d.get("updated_at"), datetime)
    ]
    return sorted(events, key=lambda e: _utc(e.at))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
