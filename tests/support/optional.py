"""Material the repository cannot carry, checked when it is there: Grafana's OpenAPI (AGPL-3.0)
and the 126 MB root-cause benchmark dataset, in `../shared/` beside the checkout or where
CORRELATOR_SHARED points.

Absent, the checks that need it skip with the reason and the run says once, at its end, what was
not checked. Under CI=true its absence fails those tests instead: CI always has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CORRELATOR_SHARED") or ROOT.parent / "shared")
GRAFANA_OPENAPI = "contracts/grafana/openapi3.json"
NEZHA_DATASET = "datasets/nezha-tt-dev"
WHAT = {
    GRAFANA_OPENAPI: "Grafana's OpenAPI (AGPL-3.0): the Grafana test server's requests and "
    "answers are not validated against it",
    NEZHA_DATASET: "the Nezha benchmark dataset (126 MB): the root-cause benchmark on real "
    "cases does not run",
}
not_checked: set[str] = set()


def find(relative: str) -> Path | None:
    """`relative` under the shared folder, or None (remembered, for the run's summary)."""
    path = SHARED / relative
    if path.exists():
        return path
    not_checked.add(relative)
    return None


def require(relative: str) -> Path:
    """In a test: the path, or a skip naming what is missing (a failure under CI=true)."""
    path = find(relative)
    if path is not None:
        return path
    message = f"{SHARED / relative} is absent, so {WHAT.get(relative, relative)}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run these checks (set CORRELATOR_SHARED)")
    pytest.skip(message)


def summary() -> list[str]:
    return [f"not checked: {WHAT.get(r, r)} ({SHARED / r} is absent)" for r in sorted(not_checked)]
