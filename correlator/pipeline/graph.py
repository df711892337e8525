"""The call graph around the alerting apps: Jaeger's dependency links and Istio's
source/destination request metrics, both within a share of the correlation's deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from correlator.analysis.windows import Windows
from correlator.backends.jaeger import JaegerBackend
from correlator.backends.prometheus import PrometheusBackend
from correlator.backends.promql import regex_escape, string_literal
from correlator.pipeline.fetch import Fetch, call


def query_range(windows: Windows) -> str:
    """A PromQL range covering the baseline and the incident."""
    return f"{max(int((windows.incident_end - windows.baseline_start).total_seconds()), 60)}s"


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
        lookback = windows.incident_end - windows.baseline_start
        calls["jaeger"] = call(
            fetch,
            "jaeger",
            "dependencies",
            lambda: jaeger.dependencies(windows.incident_end, lookback),
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
