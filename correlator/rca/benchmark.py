"""Root-cause accuracy over a dataset: AC@k (is the truth among the first k?) and Avg@5, with
the figures that say whether it generalises (pure but for reading the dataset).

- **dev**: every case with the analysis' default options;
- **alerted / no alert**: the cases a front-end rule fired on, and the others (a live system
  would never have analysed those), scored apart;
- **cross-validated**, two schemes: leave one fault type out, and leave one service out. The
  few weights that are not statistics (`Options`) are chosen from a small grid on the other
  cases only, then the left-out cases are scored with that choice;
- **ablation**: the figures without each producer of evidence, and with it alone.
Findings are collected once per case; ranking them under other options is cheap.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from correlator.analysis.findings import Finding
from correlator.analysis.report import PRODUCERS, Options, collect, decide
from correlator.progress import Steps, quiet
from correlator.rca import nezha
from correlator.rca.tables import Problems

KS = (1, 2, 3, 4, 5)
DEFAULT = Options()
# The options cross-validation chooses from, in a fixed order that ties keep: the weights as
# they were before any tuning first. Not the defaults: those were chosen on all the dev cases,
# and preferring them would leak the held-out cases into their own scoring.
UNTUNED = Options(uncorroborated=1.0, victim_discount=0.6, metric_weight=1.0, span_weight=1.0)
_CHOICES = product((1.0, 0.5, 0.25), (0.6, 0.3, 0.9), (1.0, 0.5), (1.0, 0.5))
GRID = tuple(
    Options(uncorroborated=u, victim_discount=v, metric_weight=m, span_weight=s)
    for u, v, m, s in _CHOICES
)


@dataclass(frozen=True, slots=True)
class Outcome:
    case: str
    fault: str
    truth: str
    ranking: list[str]
    alerted: bool = True


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


def collected(
    root: Path, problems: Problems | None = None, *, steps: Steps = quiet
) -> list[Collected]:
    """Every case of the dataset with its findings (the slow part: each case is analysed)."""
    return [
        Collected(case, collect(case.telemetry, case.windows))
        for case in steps(nezha.cases(root, problems), "reading and analysing cases")
    ]


def run(root: Path, options: Options = DEFAULT) -> list[Outcome]:
    return [c.outcome(options) for c in collected(root)]


def _choose(training: Sequence[Collected], *, steps: Steps = quiet) -> Options:
    """The grid's options that rank the training cases best (Avg@5, then AC@1; ties keep the
    earlier, the defaults first)."""

    def fitness(options: Options) -> tuple[float, float]:
        s = summary([c.outcome(options) for c in training])
        return s["Avg@5"], s["AC@1"]

    return max(steps(GRID, "choosing options on all cases", total=len(GRID)), key=fitness)


def cross_validated(
    cases: Sequence[Collected],
    group: Callable[[nezha.Case], str],
    *,
    steps: Steps = quiet,
    what: str = "cross-validation",
) -> list[Outcome]:
    """Each group's cases scored with options chosen on the other groups only."""
    out = []
    names = sorted({group(c.case) for c in cases})
    for name in steps(names, what, total=len(names)):
        training = [c for c in cases if group(c.case) != name]
        chosen = _choose(training) if training else Options()
        out += [c.outcome(chosen) for c in cases if group(c.case) == name]
    return out


def _options_json(options: Options) -> dict[str, float]:
    return {
        "uncorroborated": options.uncorroborated,
        "victim_discount": options.victim_discount,
        "metric_weight": options.metric_weight,
        "span_weight": options.span_weight,
    }


def _by_fault(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    groups: defaultdict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.fault].append(o)
    return {f: {"cases": len(os), **summary(os)} for f, os in sorted(groups.items())}


def evaluate(
    cases: Sequence[Collected], problems: Problems | None = None, *, steps: Steps = quiet
) -> dict[str, Any]:
    started = time.perf_counter()
    dev = [c.outcome(Options()) for c in steps(cases, "ranking with the defaults")]
    alerted = [o for o in dev if o.alerted]
    no_alert = [o for o in dev if not o.alerted]
    lofo = cross_validated(
        cases, lambda c: c.fault, steps=steps, what="cross-validation, leaving out a fault type"
    )
    loso = cross_validated(
        cases, lambda c: c.truth, steps=steps, what="cross-validation, leaving out a service"
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
        "overall": summary(dev),
        "by_fault": _by_fault(dev),
        "untuned": summary([c.outcome(UNTUNED) for c in cases]),
        "alerted": {"cases": len(alerted), **summary(alerted)},
        "no_alert": {"cases": len(no_alert), **summary(no_alert)},
        "cross_validated": {
            "leave_one_fault_type_out": {
                "overall": summary(lofo),
                "by_fault": _by_fault(lofo),
            },
            "leave_one_service_out": {"overall": summary(loso), "by_fault": _by_fault(loso)},
        },
        "ablation": ablation,
        "chosen_on_all_cases": _options_json(_choose(cases, steps=steps)),
        "defaults": _options_json(DEFAULT),
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
    return (
        f"{name:<24} {n!s:>5} {row['AC@1']:>7.1f} {row['AC@3']:>7.1f} "
        f"{row['AC@5']:>7.1f} {row['Avg@5']:>7.1f}"
    )


def table(result: dict[str, Any]) -> Iterable[str]:
    head = f"{'':<24} {'cases':>5} {'AC@1':>7} {'AC@3':>7} {'AC@5':>7} {'Avg@5':>7}"
    yield f"dev set, default options\n{head}"
    for fault, row in result["by_fault"].items():
        yield _row(fault, row)
    yield _row("overall", result["overall"], result["cases"])
    if "alerted" in result:
        yield _row("  untuned weights", result["untuned"], result["cases"])
        yield _row("  a rule fired", result["alerted"])
        yield _row("  no rule fired", result["no_alert"])
    for scheme, cv in result.get("cross_validated", {}).items():
        yield f"\ncross-validated: {scheme.replace('_', ' ')}\n{head}"
        for fault, row in cv["by_fault"].items():
            yield _row(fault, row)
        yield _row("overall", cv["overall"], result["cases"])
    if "ablation" in result:
        yield f"\nablation (overall)\n{head}"
        for name, rows in result["ablation"].items():
            yield _row(f"without {name}", rows["without"], result["cases"])
            yield _row(f"{name} alone", rows["alone"], result["cases"])
    problems = result.get("data_problems") or {}
    if problems:
        skipped = sum(int(p["skipped_rows"]) for p in problems.values())
        yield f"\ndata problems: {skipped} rows skipped in {len(problems)} files (--json: which)"
    if "chosen_on_all_cases" in result:
        chosen, defaults = result["chosen_on_all_cases"], result["defaults"]
        same = "the defaults" if chosen == defaults else "not the defaults"
        yield f"the grid's choice on all cases ({same}): {chosen}"
    if "ranking_seconds" in result:
        yield f"ranking under every option: {result['ranking_seconds']} s"
