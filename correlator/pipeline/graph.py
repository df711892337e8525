"""The call graph around the alerting apps: Jaeger's dependency links and Istio's
source/destination request metrics, both within a share of the correlation's deadline."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import Any

from correlator.analysis.windows import Windows
from correlator.backends.jaeger import JaegerBackend
from correlator.backends.prometheus import PrometheusBackend
from correlator.backends.promql import regex_escape, string_literal
from correlator.pipeline.fetch import Fetch, call

# The graph looks back a whole number of these (seconds): alerts of one fault start
# seconds apart, and their correlations (whose windows end on the step grid) then ask both
# backends the same question, which the request cache answers once (`cache_s`).
LOOKBACK_GRID_S = 300


def lookback(windows: Windows) -> timedelta:
    """What the graph looks back over from the incident's end: the baseline and the incident,
    rounded up to the grid."""
    seconds = (windows.incident_end - windows.baseline_start).total_seconds()
    return timedelta(seconds=max(math.ceil(seconds / LOOKBACK_GRID_S), 1) * LOOKBACK_GRID_S)


def query_range(windows: Windows) -> str:
    """A PromQL range covering the baseline and the incident (`lookback`)."""
    return f"{int(lookback(windows).total_seconds())}s"


async def call_graph(
    jaeger: JaegerBackend | None,
    prometheus: PrometheusBackend | None,
    namespaces: list[str],
    windows: Windows,
    fetch: Fetch,
    deadline: float,
    names: Mapping[str, str],
) -> set[tuple[str, str]]:
    """caller → callee edges; Jaeger's service names are mapped through `names` to the
    names the analysis uses. A source slower than `deadline` is named in `fetch.missing`."""
    edges: set[tuple[str, str]] = set()
    calls: dict[str, Awaitable[Any]] = {}
    if jaeger is not None:
        calls["jaeger"] = call(
            fetch,
            "jaeger",
            "dependencies",
            lambda: jaeger.dependencies(windows.incident_end, lookback(windows)),
        )
    if prometheus is not None:
        matchers = 'reporter="destination"'
        if namespaces:  # workload names repeat across namespaces
            pattern = "|".join(regex_escape(n) for n in namespaces)
            matchers += f",destination_workload_namespace=~{string_literal(pattern)}"
        query = (
            "sum by (source_workload, destination_workload) "
            f"(rate(istio_requests_total{{{matchers}}}[{query_range(windows)}]))"
        )
        calls["prometheus"] = call(
            fetch,
            "prometheus",
            "istio call graph",
            lambda: prometheus.query(query, windows.incident_end),
        )
    tasks = {asyncio.ensure_future(c): name for name, c in calls.items()}
    if not tasks:
        return edges
    done, pending = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.001))
    for task in pending:
        task.cancel()
        fetch.miss(tasks[task], "call graph", "its share of the correlation deadline passed")
    for task in done:
        for item in task.result() or []:
            if hasattr(item, "parent"):
                edges.add((names.get(item.parent, item.parent), names.get(item.child, item.child)))
            else:
                caller = item.labels.get("source_workload")
                callee = item.labels.get("destination_workload")
                if caller and callee and caller != "unknown":
                    edges.add((caller, callee))
    return edges
