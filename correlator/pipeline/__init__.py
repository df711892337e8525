"""Alert group → scope → fan-out to the backends → analysis → report stored with the incident.

One correlation runs under one overall deadline. The call graph is read first (Jaeger's
dependencies, Istio's source/destination metrics) to widen the scope to neighbours; then every
metric signal, both log windows and both trace windows are fetched concurrently, each service
queried as its WebApplication says (else by label heuristics). Whatever does not answer in
time, or answers with an error or garbage, is named in the report's `missing` list and the
analysis runs on the rest: a report always comes out.

Importing a module of this package does not import the pipeline itself: the analysis processes
import `pipeline.frames` (and `pipeline.keep`) without the HTTP clients and the store that
`pipeline.core` brings, so `Pipeline` and `Fetch` are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from correlator.pipeline.core import Pipeline
    from correlator.pipeline.fetch import Fetch

__all__ = ["Fetch", "Pipeline"]
_WHERE = {"Pipeline": "correlator.pipeline.core", "Fetch": "correlator.pipeline.fetch"}


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
