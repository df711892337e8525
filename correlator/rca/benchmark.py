"""Root-cause accuracy over a dataset: AC@k (is the truth among the first k?) and Avg@5."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from correlator.analysis.report import analyse
from correlator.rca import nezha

KS = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class Outcome:
    case: str
    fault: str
    truth: str
    ranking: list[str]


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


def run(root: Path) -> list[Outcome]:
    outcomes = []
    for case in nezha.cases(root):
        result = analyse(case.telemetry, case.windows)
        outcomes.append(Outcome(case.name, case.fault, case.truth, result.ranking()))
    return outcomes


def report(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    by_fault: defaultdict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_fault[o.fault].append(o)
    return {
        "cases": len(outcomes),
        "overall": summary(outcomes),
        "by_fault": {
            fault: {"cases": len(os), **summary(os)} for fault, os in sorted(by_fault.items())
        },
        "per_case": [
            {"case": o.case, "fault": o.fault, "truth": o.truth, "ranking": o.ranking[:10]}
            for o in outcomes
        ],
    }


def table(result: dict[str, Any]) -> Iterable[str]:
    yield f"{'fault':<16} {'cases':>5} {'AC@1':>7} {'AC@3':>7} {'AC@5':>7} {'Avg@5':>7}"
    rows = [
        *result["by_fault"].items(),
        ("overall", {"cases": result["cases"], **result["overall"]}),
    ]
    for name, row in rows:
        yield (
            f"{name:<16} {row['cases']:>5} {row['AC@1']:>7.1f} {row['AC@3']:>7.1f} "
            f"{row['AC@5']:>7.1f} {row['Avg@5']:>7.1f}"
        )
