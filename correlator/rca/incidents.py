"""Accuracy on your own incidents: every stored bundle with a confirmed cause replayed through
the current code (`correlator bench rca --incidents`), and the labelled bundles exported
(`correlator export-incidents DIR`).

A replay ranks the kept inputs exactly as the live analysis would have, on the windows it used.
Beside it: the ranking the live analysis stored (the version that ran then), and, given a
second settings file (`--against`), the same bundles under that file's window policy and
signal catalogue, so a team can check an upgrade or a change of settings on its own cases
before rolling it out. AC@1/3/5 come from `rca.benchmark` (overall, per app, per team).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from correlator.analysis.evidence import collect, decide
from correlator.analysis.telemetry import SignalMeta, Telemetry
from correlator.analysis.windows import WindowPolicy, Windows, incident_windows
from correlator.rca.benchmark import Outcome, intervals, summary
from correlator.rca.bundle import Bundle, BundleError
from correlator.rca.bundle_write import KINDS, bundle_files, policy_document, write
from correlator.rca.frames import WRITTEN, decode
from correlator.settings import Settings
from correlator.store import Store
from correlator.store.replay import Cause, confirmed, get_bundle


@dataclass(frozen=True, slots=True)
class Case:
    cause: Cause
    alert: dict[str, Any]
    meta: dict[str, Any]
    bundle: Bundle
    stored_ranking: list[str]


async def cases(
    settings: Settings,
    problems: list[str],
    *,
    since: datetime | None = None,
    app: str | None = None,
) -> AsyncIterator[Case]:
    """Each confirmed incident whose inputs were kept, oldest first, one bundle in memory at a
    time; a bundle that cannot be read is skipped (its reason added to `problems`)."""
    store = await Store.open(settings.database)
    try:
        for cause in await store.read(lambda c: confirmed(c, since=since, app=app)):
            stored = await store.read(get_bundle, cause.incident_id)
            if stored is None or stored.body is None:
                continue  # pruned since it was listed
            report = await store.get_report(cause.incident_id)
            ranking = [s.service for s in report.suspects] if report is not None else []
            try:
                alert, meta, bundle = decode(stored.body)
            except BundleError as exc:
                problems.append(f"incident {cause.incident_id}: {exc}")
                continue
            yield Case(cause, alert, meta, bundle, ranking)
    finally:
        await store.close()


def _policy(settings: Settings) -> WindowPolicy:
    c = settings.correlation
    return WindowPolicy(
        lead=timedelta(minutes=c.lead_min),
        max_incident=timedelta(minutes=c.max_incident_min),
        baseline=timedelta(minutes=c.baseline_min),
    )


def under(settings: Settings, case: Case) -> tuple[Telemetry, Windows]:
    """The case as `settings` would analyse it: its window policy (the stored windows when the
    policy is the one that placed them) and its signal catalogue's units and directions."""
    bundle, meta = case.bundle, case.meta
    policy = _policy(settings)
    windows = bundle.windows
    if meta.get("policy") not in (None, policy_document(policy)) and meta.get("analysed_at"):
        analysed_at = datetime.fromisoformat(str(meta["analysed_at"]).replace("Z", "+00:00"))
        step = settings.correlation.step_s  # the windows end on the step grid, as live
        aligned = datetime.fromtimestamp(analysed_at.timestamp() // step * step, tz=UTC)
        windows = incident_windows(bundle.windows.onset, aligned, policy)
    signals = dict(bundle.telemetry.signals)
    for signal in settings.correlation.signals:
        known = signals.get(signal.name, SignalMeta())
        signals[signal.name] = replace(known, unit=signal.unit, worse_when=signal.worse_when)
    return replace(bundle.telemetry, signals=signals), windows


def ranking(telemetry: Telemetry, windows: Windows) -> list[str]:
    analysis = decide(collect(telemetry, windows), telemetry, windows, samples=False)
    return analysis.ranking()


def _figures(outcomes: Sequence[Outcome], key: Callable[[Outcome], str]) -> dict[str, Any]:
    groups: defaultdict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[key(outcome)].append(outcome)
    return {name: {"cases": len(os), **summary(os)} for name, os in sorted(groups.items())}


def scored(outcomes: Sequence[Outcome], teams: dict[str, str]) -> dict[str, Any]:
    return {
        "cases": len(outcomes),
        "overall": {**summary(outcomes), "interval": intervals(outcomes)},
        "per_app": _figures(outcomes, lambda o: o.fault),
        "per_team": _figures(outcomes, lambda o: teams.get(o.case) or "(no team)"),
    }


async def evaluate(
    settings: Settings,
    *,
    since: datetime | None = None,
    app: str | None = None,
    against: Settings | None = None,
    names: tuple[str, str] = ("replayed", "against"),
) -> dict[str, Any]:
    """The confirmed incidents scored as stored, as replayed now, and under `against`."""
    problems: list[str] = []
    runs: dict[str, list[Outcome]] = {"stored": [], names[0]: []}
    if against is not None:
        runs[names[1]] = []
    teams: dict[str, str] = {}
    per_incident = []
    async for case in cases(settings, problems, since=since, app=app):
        cause = case.cause
        assert cause.service is not None
        label = f"incident {cause.incident_id}"
        teams[label] = cause.team or ""
        rankings = {"stored": case.stored_ranking}
        rankings[names[0]] = ranking(*under(settings, case))
        if against is not None:
            rankings[names[1]] = ranking(*under(against, case))
        for run, ranked in rankings.items():
            runs[run].append(Outcome(label, cause.app or "(no app)", cause.service, ranked))
        per_incident.append(
            {
                "incident_id": cause.incident_id,
                "app": cause.app,
                "team": cause.team,
                "cause": cause.service,
                "rank": {
                    run: ranked.index(cause.service) + 1 if cause.service in ranked else None
                    for run, ranked in rankings.items()
                },
            }
        )
    return {
        "incidents": len(per_incident),
        "runs": {run: scored(outcomes, teams) for run, outcomes in runs.items()},
        "per_incident": per_incident,
        "problems": problems,
    }


def table(result: dict[str, Any]) -> list[str]:
    """The figures as text: one block per run, overall then per app and per team."""
    lines = [f"{result['incidents']} confirmed incidents with kept inputs"]
    for run, figures in result["runs"].items():
        o = figures["overall"]
        interval = o.get("interval") or {}
        lines.append(
            f"{run:<10} AC@1 {o['AC@1']:6.1f}  AC@3 {o['AC@3']:6.1f}  AC@5 {o['AC@5']:6.1f}"
            + (f"  (AC@1 95% {interval['AC@1']})" if "AC@1" in interval else "")
        )
        for kind in ("per_app", "per_team"):
            for name, row in figures[kind].items():
                lines.append(
                    f"  {kind[4:]:<5} {name:<30} {row['cases']:>4} cases  AC@1 {row['AC@1']:6.1f}"
                    f"  AC@3 {row['AC@3']:6.1f}  AC@5 {row['AC@5']:6.1f}"
                )
    moved = [i for i in result["per_incident"] if len({str(r) for r in i["rank"].values()}) > 1]
    for item in moved:
        ranks = ", ".join(f"{run} {rank or '-'}" for run, rank in item["rank"].items())
        lines.append(f"incident {item['incident_id']} ({item['cause']}): rank {ranks}")
    for problem in result["problems"]:
        lines.append(f"not replayed: {problem}")
    return lines


class Anonymiser:
    """Label values → salted digests, the same value the same digest within one export."""

    def __init__(self, salt: bytes | None = None) -> None:
        self.salt = salt if salt is not None else secrets.token_bytes(16)

    def __call__(self, value: str) -> str:
        if not value:
            return value
        return "h" + hashlib.sha256(self.salt + value.encode("utf-8", "replace")).hexdigest()[:12]

    def telemetry(self, t: Telemetry) -> Telemetry:
        def mapped(frame: Any, *columns: str) -> Any:
            frame = frame.copy()
            for column in columns:
                frame[column] = frame[column].map(self)
            return frame

        return Telemetry(
            metrics=mapped(t.metrics, "service"),
            logs=mapped(t.logs, "service"),
            spans=mapped(t.spans, "service"),
            replicas=mapped(t.replicas, "service", "instance"),
            signals={name: replace(s, query="") for name, s in t.signals.items()},
            edges={(self(a), self(b)) for a, b in t.edges},
        )

    def alert(self, payload: dict[str, Any]) -> dict[str, Any]:
        def labels(values: dict[str, str]) -> dict[str, str]:
            return {name: self(str(value)) for name, value in values.items()}

        return {
            **payload,
            "receiver": self(str(payload.get("receiver", "correlator"))),
            "groupKey": self(str(payload.get("groupKey", "group"))),
            "groupLabels": labels(payload.get("groupLabels") or {}),
            "commonLabels": labels(payload.get("commonLabels") or {}),
            "commonAnnotations": {},
            "externalURL": "",
            "alerts": [
                {
                    **alert,
                    "labels": labels(alert.get("labels") or {}),
                    "annotations": {},
                    "generatorURL": "",
                }
                for alert in payload.get("alerts") or []
            ],
        }


async def export(
    settings: Settings,
    directory: Path,
    *,
    anonymise: bool = False,
    since: datetime | None = None,
    app: str | None = None,
) -> tuple[list[Path], list[str]]:
    """Write each confirmed incident's bundle with its truth.json below `directory`; the
    directories written, and the bundles that could not be read."""
    problems: list[str] = []
    hide = Anonymiser() if anonymise else None
    written = []
    async for case in cases(settings, problems, since=since, app=app):
        cause = case.cause
        assert cause.service is not None
        truth: dict[str, Any] = {
            "service": cause.service,
            "fault": "confirmed",
            "app": cause.app,
            "team": cause.team,
            "text": cause.text,
            "answered_at": cause.answered_at.isoformat().replace("+00:00", "Z"),
        }
        meta, alert, telemetry = case.meta, case.alert, case.bundle.telemetry
        about: dict[str, Any] = {k: v for k, v in meta.items() if k not in WRITTEN}
        if hide is not None:
            kept = ("analysed_at", "policy", "version")
            about = {key: meta[key] for key in kept if key in meta}
            about["anonymised"] = True
            alert, telemetry = hide.alert(alert), hide.telemetry(telemetry)
            truth = {"service": hide(cause.service), "fault": "confirmed"}
        files = bundle_files(
            alert=alert,
            telemetry=telemetry,
            windows=case.bundle.windows,
            kinds=meta.get("kinds") or KINDS,
            about=about,
            truth=truth,
        )
        written.append(write(files, directory / f"incident-{cause.incident_id}"))
    return written, problems
