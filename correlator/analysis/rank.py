"""Ranking suspects: combine metric, log and trace evidence with the call graph (pure).

Per service, the strongest finding of each kind gives a strength in (0, 1); kinds combine as a
noisy-OR, so agreeing evidence from logs and traces outweighs one loud metric. Then the call
graph: failures travel from callee to caller. A service with an anomalous callee that changed
no later than it did is probably a victim and is discounted by that callee's strength; a service
whose callers degraded after it gains a little. So the service whose own signals changed first,
with its callers following, ranks above the services that merely felt it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from correlator.analysis.findings import Finding

# A service whose anomalous callee changed first keeps at least 40 % of its score: the call
# graph says where a failure *may* come from, never that this service is innocent, so the
# discount may demote a victim below its cause but not erase it from the list.
VICTIM_DISCOUNT = 0.6
# How far down the call graph a cause may sit: a fault surfaces at the caller within two or
# three hops (Train-Ticket's and Online Boutique's call depths are 3-5); farther, timing says
# too little.
DEPTH = 3
# Callers that degraded after a service add at most a fifth: corroboration, one step weaker
# than the victim discount, so it orders near-ties without outvoting the evidence itself.
CALLER_BONUS = 0.2
MAX_EVIDENCE = 8  # what a report shows per suspect; the ranking uses all of it
# Rarity is an inverse document frequency: with fewer services than this, a share says little;
# a family on 1 in RARITY_SCALE services (or fewer) keeps its full weight. Eight is the
# smallest scope where "one service in eight" is rarer than chance agreement of two signals.
RARITY_MIN_SERVICES = 8
RARITY_SCALE = 8.0


@dataclass(slots=True)
class Suspect:
    service: str
    score: float
    own_score: float
    change_time: datetime | None
    reason: str
    evidence: list[Finding] = field(default_factory=list)
    caused_by: list[str] = field(default_factory=list)  # anomalous callees that changed first
    affects: list[str] = field(default_factory=list)  # anomalous callers that changed after
    # Listed only because it deviates a little (below every producer's threshold): after all
    # the services with evidence, so the responder still has an order to look in.
    weak: bool = False

    @property
    def confidence(self) -> float:
        """How sure its own evidence is, 0 to 1 (a noisy-OR of its calibrated findings)."""
        return self.own_score


def _own(findings: list[Finding], weight: dict[str, float] | None = None) -> float:
    best: dict[str, float] = {}
    for f in findings:
        best[f.kind] = max(best.get(f.kind, 0.0), f.strength * (weight or {}).get(f.signal, 1.0))
    remaining = 1.0
    for value in best.values():
        remaining *= 1.0 - value
    return 1.0 - remaining


def _family(finding: Finding) -> str:
    """What a finding is about, across services: the metric signal, the kind of trace or log
    evidence (one template or operation is specific to a service, its kind is not)."""
    if finding.kind == "metric":
        return f"metric:{finding.signal}"
    head = finding.signal.split(" ", 2)
    return f"{finding.kind}:{' '.join(head[:2])}"


def _significance(findings: list[Finding], services: int, own: float) -> float:
    """How sure it is that this service is anomalous at all, among the `services` in scope:
    1 - its smallest calibrated p times their number (Bonferroni: one of forty services reaches
    p = 0.025 by chance about every time). Uncalibrated findings: their strength."""
    ps = [f.p for f in findings if f.p is not None]
    if not ps:
        return own
    return max(0.0, 1.0 - min(ps) * max(services, 1))


def _changed(findings: list[Finding]) -> datetime | None:
    strongest = max(f.strength for f in findings)
    times = [f.change_time for f in findings if f.change_time and f.strength >= 0.5 * strongest]
    return min(times) if times else None


def _no_later(
    a: datetime | None, b: datetime | None, slack: timedelta, *, unknown: bool = False
) -> bool:
    """a changed no later than b; an unknown time orders nothing (`unknown` says what then)."""
    if a is None or b is None:
        return unknown
    return a <= b + slack


def _downstream(service: str, callees: dict[str, set[str]], depth: int = DEPTH) -> set[str]:
    """The services `service` calls, directly or through others, up to `depth` calls away."""
    found: set[str] = set()
    frontier = {service}
    for _ in range(depth):
        frontier = {c for s in frontier for c in callees.get(s, ())} - found - {service}
        found |= frontier
    return found


def rank(
    findings: Iterable[Finding],
    edges: Iterable[tuple[str, str]],
    *,
    slack: timedelta = timedelta(seconds=30),
    services: Iterable[str] | None = None,
    victim_discount: float = VICTIM_DISCOUNT,
    weak: Iterable[Finding] = (),
) -> list[Suspect]:
    """The services with evidence, most likely cause first; then the services whose only
    evidence is `weak` (small deviations), by their strength."""
    suspects = _rank(
        findings, edges, slack=slack, services=services, victim_discount=victim_discount
    )
    listed = {s.service for s in suspects}
    faint: defaultdict[str, list[Finding]] = defaultdict(list)
    for finding in weak:
        if finding.service not in listed:
            faint[finding.service].append(finding)
    # Their scores stay below every suspect with evidence, so a list sorted by score, or a
    # page banding them by it, keeps them last.
    ceiling = min((s.score for s in suspects), default=1.0)
    tail = [
        Suspect(
            service=service,
            score=_own(found) * ceiling,
            own_score=_own(found),
            change_time=_changed(found),
            reason="",
            evidence=sorted(found, key=lambda f: -f.score)[:MAX_EVIDENCE],
            weak=True,
        )
        for service, found in faint.items()
    ]
    tail.sort(key=lambda s: (-s.score, s.service))
    for suspect in tail:
        suspect.reason = reason(suspect)
    return suspects + tail


def _rank(
    findings: Iterable[Finding],
    edges: Iterable[tuple[str, str]],
    *,
    slack: timedelta,
    services: Iterable[str] | None,
    victim_discount: float,
) -> list[Suspect]:
    by_service: defaultdict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_service[finding.service].append(finding)
    # Evidence that singles out a few services says more than evidence every service shows
    # (a baseline taken at a calmer time shifts everyone): each signal is weighted by how rare
    # it is among the services in scope, as inverse document frequency weighs words.
    total = len(set(services or ()) | set(by_service))
    holders: defaultdict[str, set[str]] = defaultdict(set)
    for service, fs in by_service.items():
        for f in fs:
            holders[_family(f)].add(service)
    weight = {}
    if total >= RARITY_MIN_SERVICES:
        for fs in by_service.values():
            for f in fs:
                share = len(holders[_family(f)]) / total
                weight[f.signal] = min(1.0, math.log(1 / share) / math.log(RARITY_SCALE))
    own = {s: _own(fs, weight) for s, fs in by_service.items()}
    changed = {s: _changed(fs) for s, fs in by_service.items()}
    sure = {s: _significance(fs, total, own[s]) for s, fs in by_service.items()}
    callees: defaultdict[str, set[str]] = defaultdict(set)
    callers: defaultdict[str, set[str]] = defaultdict(set)
    for caller, callee in edges:
        if caller != callee:
            callees[caller].add(callee)
            callers[callee].add(caller)
    suspects = []
    for service, mine in by_service.items():
        # Anomalous services downstream (callees, their callees…) that changed no later: a
        # failure travels up the call graph, so they may explain this one.
        causes = sorted(
            (
                c
                for c in _downstream(service, callees)
                if c in own and _no_later(changed[c], changed[service], slack, unknown=True)
            ),
            key=lambda c: (-own[c], c),  # ties by name: the same text on every run
        )
        affected = sorted(
            (
                c
                for c in callers[service]
                if c in own and _no_later(changed[service], changed[c], slack)
            ),
            key=lambda c: (-own[c], c),  # ties by name: the same text on every run
        )
        # A weaker anomaly downstream explains a stronger one here only in part; one whose
        # timing is unknown, half as much.
        discount = max(
            (
                sure[c]
                * min(1.0, own[c] / max(own[service], 1e-9))
                * (1.0 if _no_later(changed[c], changed[service], slack) else 0.5)
                for c in causes
            ),
            default=0.0,
        )
        bonus = max((sure[c] for c in affected), default=0.0)
        score = own[service] * (1 - victim_discount * discount) * (1 + CALLER_BONUS * bonus)
        evidence = sorted(mine, key=lambda f: -f.score)[:MAX_EVIDENCE]
        suspects.append(
            Suspect(
                service=service,
                score=score,
                own_score=own[service],
                change_time=changed[service],
                reason="",
                evidence=evidence,
                caused_by=causes,
                affects=affected,
            )
        )
    suspects.sort(key=lambda s: (-s.score, s.service))
    for suspect in suspects:
        suspect.reason = reason(suspect)
    return suspects


KIND_NAMES = {
    "metric": "metrics",
    "log": "logs",
    "trace": "traces",
    "network": "time between services",
}


def reason(suspect: Suspect) -> str:
    """One plain-language line: the evidence that decided (the strongest finding, named by its
    kind), a second kind that agrees, since when, and how it relates to its neighbours."""
    if not suspect.evidence:
        return "no evidence"
    if suspect.weak:
        strongest = max(suspect.evidence, key=lambda f: f.score)
        return f"only a small deviation, below every threshold: {strongest.detail}"
    ordered = sorted(suspect.evidence, key=lambda f: (-f.score, f.kind, f.signal))
    decided = ordered[0]
    text = f"decided by {KIND_NAMES.get(decided.kind, decided.kind)}: {decided.detail}"
    other = next((f for f in ordered if f.kind != decided.kind), None)
    if other is not None:
        text += f"; also {KIND_NAMES.get(other.kind, other.kind)}: {other.detail}"
    if suspect.change_time is not None:
        text += f", since {suspect.change_time:%H:%M:%S}"
    if suspect.caused_by:
        text += f"; may be a victim of {', '.join(suspect.caused_by[:2])}, which changed first"
    elif suspect.affects:
        text += f"; then its callers {', '.join(suspect.affects[:3])} degraded"
    return text
