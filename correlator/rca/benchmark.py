"""Root-cause accuracy over a dataset: AC@k (is the truth among the first k?) and Avg@5, with
the figures that say how far to trust them (pure but for reading the dataset).

Nothing is chosen by looking at the cases: the analysis has no weights to fit (each producer's
scores are calibrated on the incident's own fault-free history), so there is no grid and no
cross-validation; the figures are what the defaults do. Reported beside them:
- **intervals**: a 95 % bootstrap interval for each figure, resampling (service, fault type)
  groups, since cases of one fault on one service are alike;
- **calibration**: the same findings ranked on their producers' raw scores;
- **alerted / no alert**: the cases a front-end rule fired on, and the others (a live system
  would never have analysed those), scored apart;
- **telemetry**: metrics only, metrics + traces, metrics + logs and all three, each analysed
  anew with the other sources absent, as a team without them would run it;
- **onset**: the windows placed with the alert's onset moved by whole minutes;
- **ablation**: the figures without each producer of evidence, and with it alone.
A case that cannot be analysed is scored as a miss, with its reason in `data_problems`.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from correlator.analysis.evidence import PRODUCERS, Options, collect, decide
from correlator.analysis.findings import Finding
from correlator.analysis.telemetry import Telemetry, empty
from correlator.progress import Steps, quiet
from correlator.rca import nezha
from correlator.rca.tables import Problems

KS = (1, 2, 3, 4, 5)
DEFAULT = Options()
RAW = Options(calibrate=False)
# Resamples of the bootstrap: enough that the 2.5th and 97.5th percentiles move by less than
# one case between seeds; the seed is fixed so a run's intervals can be compared with another's.
BOOTSTRAP = 2000
SEED = 2026
SHIFTS = (-2, -1, 1, 2)  # minutes the onset is moved by
TELEMETRY = {
    "metrics only": ("metrics",),
    "metrics + traces": ("metrics", "traces"),
    "metrics + logs": ("metrics", "logs"),
    "all three": ("metrics", "logs", "traces"),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    case: str
    fault: str
    truth: str
    ranking: list[str]
    alerted: bool = True

    @property
    def group(self) -> tuple[str, str]:
        return self.truth, self.fault


@dataclass(slots=True)
class Collected:
    """One case with its findings, ready to be ranked under any options."""

    case: nezha.Case
    evidence: dict[str, list[Finding]]
    outcomes: dict[Options, Outcome] = field(default_factory=dict)

    def outcome(self, options: Options) -> Outcome:
        if options not in self.outcomes:
            telemetry, windows = self.case.telemetry, self.case.windows
            analysis = decide(self.evidence, telemetry, windows, options, samples=False)
            c = self.case
            self.outcomes[options] = Outcome(
                c.name, c.fault, c.truth, analysis.ranking(), c.alerted
            )
        return self.outcomes[options]


def hits(truth: str, ranking: Sequence[str]) -> dict[int, bool]:
    return {k: truth in ranking[:k] for k in KS}


def summary(outcomes: Sequence[Outcome]) -> dict[str, float]:
    if not outcomes:
        return {"AC@1": 0.0, "AC@3": 0.0, "AC@5": 0.0, "Avg@5": 0.0}
    n = len(outcomes)
    ac = {k: 100.0 * sum(hits(o.truth, o.ranking)[k] for o in outcomes) / n for k in KS}
    return {
        "AC@1": round(ac[1], 2),
        "AC@3": round(ac[3], 2),
        "AC@5": round(ac[5], 2),
        "Avg@5": round(sum(ac.values()) / len(KS), 2),
    }


def intervals(outcomes: Sequence[Outcome], *, rounds: int = BOOTSTRAP) -> dict[str, list[float]]:
    """95 % bootstrap intervals of AC@1/3/5, resampling whole (service, fault type) groups."""
    groups: defaultdict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.group].append(o)
    if not groups:
        return {}
    keys = sorted(groups)
    # Per group: its case count and its hits at each k, so a resample is a sum of rows.
    table = np.array(
        [
            [
                len(groups[g]),
                *(sum(hits(o.truth, o.ranking)[k] for o in groups[g]) for k in (1, 3, 5)),
            ]
            for g in keys
        ],
        dtype=float,
    )
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, len(keys), size=(rounds, len(keys)))
    sums = table[picks].sum(axis=1)  # rounds x (cases, hits@1, hits@3, hits@5)
    out = {}
    for column, k in enumerate((1, 3, 5), start=1):
        share = 100.0 * sums[:, column] / sums[:, 0]
        low, high = np.percentile(share, [2.5, 97.5])
        out[f"AC@{k}"] = [round(float(low), 1), round(float(high), 1)]
    return out


def _safe_collect(case: nezha.Case, problems: Problems | None) -> dict[str, list[Finding]]:
    """The case's findings; a case the analysis cannot handle is scored as a miss (no
    findings) with its reason among the data problems, never a traceback."""
    try:
        return collect(case.telemetry, case.windows)
    except Exception as exc:
        if problems is not None:
            problems.note(Path(case.name), f"analysis failed, scored as a miss: {exc!r}")
        return {}


def collected(
    root: Path, problems: Problems | None = None, *, steps: Steps = quiet
) -> list[Collected]:
    """Every case of the dataset with its findings (the slow part: each case is analysed)."""
    return [
        Collected(case, _safe_collect(case, problems))
        for case in steps(nezha.cases(root, problems), "reading and analysing cases")
    ]


def run(root: Path, options: Options = DEFAULT) -> list[Outcome]:
    return [c.outcome(options) for c in collected(root)]


Change = Callable[[nezha.Case], nezha.Case]


def _reanalysed(
    cases: Sequence[Collected], change: Change, problems: Problems | None
) -> list[Outcome]:
    """Each case analysed anew after `change` (other telemetry, other windows)."""
    return [
        Collected(new, _safe_collect(new, problems)).outcome(DEFAULT)
        for new in map(change, (c.case for c in cases))
    ]


def with_sources(case: nezha.Case, sources: Iterable[str]) -> nezha.Case:
    """The case as a team that has only `sources` of metrics, logs and traces would see it."""
    keep = set(sources)
    t = case.telemetry
    telemetry = Telemetry(
        metrics=t.metrics if "metrics" in keep else empty(t.metrics.columns),
        replicas=t.replicas if "metrics" in keep else empty(t.replicas.columns),
        logs=t.logs if "logs" in keep else empty(t.logs.columns),
        spans=t.spans if "traces" in keep else empty(t.spans.columns),
        signals=t.signals,
        edges=set(t.edges),
    )
    return replace(case, telemetry=telemetry)


def _by_fault(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    groups: defaultdict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.fault].append(o)
    return {f: {"cases": len(os), **summary(os)} for f, os in sorted(groups.items())}


def _figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    return {**summary(outcomes), "interval": intervals(outcomes)}


def evaluate(
    cases: Sequence[Collected],
    problems: Problems | None = None,
    *,
    steps: Steps = quiet,
    root: Path | None = None,
) -> dict[str, Any]:
    """The figures; the onset shifts need the dataset's `root` (each is read anew)."""
    started = time.perf_counter()
    dev = [c.outcome(DEFAULT) for c in steps(cases, "ranking with the defaults")]
    alerted = [o for o in dev if o.alerted]
    no_alert = [o for o in dev if not o.alerted]
    matrix = {}
    for name, sources in steps(TELEMETRY.items(), "telemetry combinations", total=len(TELEMETRY)):
        if name == "all three":
            matrix[name] = _figures(dev)
            continue
        keep: Change = functools.partial(with_sources, sources=sources)
        matrix[name] = _figures(_reanalysed(cases, keep, problems))
    onset = {}
    for minutes in steps(SHIFTS if root else (), "onset shifts", total=len(SHIFTS)):
        moved = nezha.cases(root, None, onset_shift=timedelta(minutes=minutes)) if root else ()
        onset[f"{minutes:+d} min"] = _figures(
            [Collected(case, _safe_collect(case, problems)).outcome(DEFAULT) for case in moved]
        )
    ablation = {}
    for name in steps(PRODUCERS, "ablation of each evidence producer", total=len(PRODUCERS)):
        without = Options(producers=frozenset(PRODUCERS) - {name})
        alone = Options(producers=frozenset({name}))
        ablation[name] = {
            "without": summary([c.outcome(without) for c in cases]),
            "alone": summary([c.outcome(alone) for c in cases]),
        }
    return {
        "cases": len(dev),
        "overall": _figures(dev),
        "by_fault": _by_fault(dev),
        "uncalibrated": summary([c.outcome(RAW) for c in cases]),
        "alerted": {"cases": len(alerted), **summary(alerted)},
        "no_alert": {"cases": len(no_alert), **summary(no_alert)},
        "telemetry": matrix,
        "onset_shift": onset,
        "ablation": ablation,
        "data_problems": problems.json() if problems else {},
        "ranking_seconds": round(time.perf_counter() - started, 2),
        "per_case": [
            {
                "case": o.case,
                "fault": o.fault,
                "truth": o.truth,
                "alerted": o.alerted,
                "rank": o.ranking.index(o.truth) + 1 if o.truth in o.ranking else None,
                "ranking": o.ranking[:10],
            }
            for o in dev
        ],
    }


def _row(name: str, row: dict[str, Any], cases: int | None = None) -> str:
    n = row.get("cases", cases)
    text = (
        f"{name:<24} {n!s:>5} {row['AC@1']:>7.1f} {row['AC@3']:>7.1f} "
        f"{row['AC@5']:>7.1f} {row['Avg@5']:>7.1f}"
    )
    interval = row.get("interval")
    if interval:
        text += "   " + "  ".join(f"{lo:.0f}-{hi:.0f}" for lo, hi in interval.values())
    return text


def table(result: dict[str, Any]) -> Iterable[str]:
    head = f"{'':<24} {'cases':>5} {'AC@1':>7} {'AC@3':>7} {'AC@5':>7} {'Avg@5':>7}"
    ci = "   95% interval AC@1 AC@3 AC@5"
    yield f"defaults (nothing chosen on these cases)\n{head}{ci}"
    for fault, row in result["by_fault"].items():
        yield _row(fault, row)
    yield _row("overall", result["overall"], result["cases"])
    if "alerted" in result:
        yield _row("  uncalibrated scores", result["uncalibrated"], result["cases"])
        yield _row("  a rule fired", result["alerted"])
        yield _row("  no rule fired", result["no_alert"])
    if result.get("telemetry"):
        yield f"\ntelemetry a team has\n{head}{ci}"
        for name, row in result["telemetry"].items():
            yield _row(name, row, result["cases"])
    if result.get("onset_shift"):
        yield f"\nonset moved\n{head}{ci}"
        for name, row in result["onset_shift"].items():
            yield _row(name, row, result["cases"])
    if "ablation" in result:
        yield f"\nablation (overall)\n{head}"
        for name, rows in result["ablation"].items():
            yield _row(f"without {name}", rows["without"], result["cases"])
            yield _row(f"{name} alone", rows["alone"], result["cases"])
    problems = result.get("data_problems") or {}
    if problems:
        skipped = sum(int(p["skipped_rows"]) for p in problems.values())
        notes = sum(len(p.get("reasons", [])) for p in problems.values())
        yield (
            f"\ndata problems: {skipped} rows skipped, {notes} notes, in {len(problems)} files"
            " (--json: which)"
        )
    if "ranking_seconds" in result:
        yield f"ranking and re-analysis: {result['ranking_seconds']} s"
