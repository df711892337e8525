"""Fetching the telemetry of the services in scope: metric signals (Prometheus), log lines
(Loki) and traces (Jaeger), each service queried as its target says (`targets.py`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import TypeVar

import pandas as pd

from correlator.analysis.telemetry import (
    METRIC_COLUMNS,
    REPLICA_COLUMNS,
    empty,
    log_columns,
    span_frame,
)
from correlator.analysis.windows import Windows
from correlator.backends.jaeger import JaegerBackend
from correlator.backends.loki import LogBudget, LogLine, LokiBackend, PartialLogs
from correlator.backends.prometheus import PrometheusBackend
from correlator.backends.promql import label_name, regex_escape, string_literal
from correlator.pipeline.analysis_pool import AnalysisPool, AnalysisTimeout
from correlator.pipeline.fetch import Fetch, call
from correlator.pipeline.frames import (
    MetricFrames,
    RangeAnswer,
    SpanFrames,
    TraceAnswer,
    metric_frames,
    span_frames,
)
from correlator.pipeline.targets import Target, by_labels
from correlator.settings import LokiSettings
from correlator.signals import ServiceLabels, Signal, signal_query

log = logging.getLogger(__name__)
T = TypeVar("T")


def regex_selector(matchers: Mapping[str, Sequence[str]]) -> str:
    """`{label=~"a|b"}` matching any of each label's values, every value literally (a value
    holding `|` is one value, not two alternatives)."""
    parts = []
    for name, alternatives in sorted(matchers.items()):
        pattern = "|".join(regex_escape(v) for v in alternatives)
        parts.append(f"{label_name(name)}=~{string_literal(pattern)}")
    return "{" + ",".join(parts) + "}"


def log_query(target: Target | None, service: str, service_label: str) -> str:
    """The LogQL stream selector of a service's lines: its app's own, else by its label."""
    if target is not None and target.log_selector:
        return target.log_selector
    return regex_selector({service_label: [service]})


def metric_queries(
    signals: Sequence[Signal], found: Mapping[str, Target], namespaces: list[str]
) -> dict[str, dict[str, str]]:
    """The PromQL of each signal for each service: one query per group of services whose
    series carry the same label names."""
    queries: dict[str, dict[str, str]] = {}
    for labels, services in by_labels(found.values()).items():
        for signal in signals:
            query = signal_query(signal, namespaces=namespaces, services=services, labels=labels)
            for service in services:
                queries.setdefault(service, {})[signal.name] = query
    return queries


async def fetch_metrics(
    prometheus: PrometheusBackend,
    signals: Sequence[Signal],
    found: Mapping[str, Target],
    queries: dict[str, dict[str, str]],
    windows: Windows,
    step_s: float,
    fetch: Fetch,
) -> list[RangeAnswer]:
    """One range query per signal and group of services (`queries`), all at once → their
    answers as they came in (`read_metrics` reads them)."""
    step = max(step_s, (windows.incident_end - windows.start).total_seconds() / 10_000)

    async def one(signal: Signal, labels: ServiceLabels, services: list[str]) -> RangeAnswer | None:
        query = queries[services[0]][signal.name]
        body = await call(
            fetch,
            "prometheus",
            signal.name,
            lambda: prometheus.query_range_body(query, windows.start, windows.incident_end, step),
        )
        return None if body is None else RangeAnswer(signal.name, tuple(services), labels, body)

    groups = by_labels(found.values())
    answers = await asyncio.gather(
        *(one(s, labels, services) for labels, services in groups.items() for s in signals)
    )
    return [answer for answer in answers if answer is not None]


async def read_metrics(
    answers: Sequence[RangeAnswer],
    pool: AnalysisPool,
    fetch: Fetch,
    read: Callable[[Sequence[RangeAnswer]], Awaitable[MetricFrames | None]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The services' series, and the per-pod series of services with several replicas, read
    off the event loop in `pool`, all answers in one call: by `read` (with their evidence:
    `Collecting.read`), else (or if it gave nothing) by `frames.metric_frames`; an unusable
    answer is named."""
    if not answers:
        return empty(METRIC_COLUMNS), empty(REPLICA_COLUMNS)
    frames = None if read is None else await read(answers)
    if frames is None:
        frames = await _read(pool, fetch, "prometheus", "metrics", metric_frames, answers)
    if frames is None:
        return empty(METRIC_COLUMNS), empty(REPLICA_COLUMNS)
    for signal_name, reason in frames.unusable:
        fetch.miss("prometheus", signal_name, f"unusable answer: {reason}")
    return frames.metrics, frames.replicas


async def fetch_logs(
    loki: LokiBackend,
    settings: LokiSettings,
    found: Mapping[str, Target],
    namespaces: list[str],
    windows: Windows,
    fetch: Fetch,
) -> pd.DataFrame:
    """Both windows of every service: an app's own stream selector where its spec gives one
    (its lines are its own), one selector on the service label for all the others."""
    budget = LogBudget(settings.max_bytes)  # shared by every window of this correlation
    streams: list[tuple[str, str | None]] = []  # (selector, the service its lines belong to)
    heuristic = sorted(s for s, t in found.items() if t.log_selector is None)
    if heuristic:
        matchers: dict[str, Sequence[str]] = {settings.service_label: heuristic}
        if namespaces:
            matchers[settings.namespace_label] = namespaces
        streams.append((regex_selector(matchers), None))
    streams += [(t.log_selector, s) for s, t in sorted(found.items()) if t.log_selector]

    async def window(selector: str, start: datetime, end: datetime, what: str) -> list[LogLine]:
        async def read() -> list[LogLine]:
            try:
                return await loki.logs(
                    selector, start, end, max_lines=settings.max_lines, budget=budget
                )
            except PartialLogs as partial:
                # Keep every line that arrived (it may be the one that names the cause) and
                # say the window is partial.
                fetch.miss("loki", what, f"partial: {partial}")
                return partial.lines

        return await call(fetch, "loki", what, read) or []

    reads = [
        (owner, window(selector, start, end, what + (f" of {owner}" if owner else "")))
        for selector, owner in streams
        for start, end, what in (
            (windows.baseline_start, windows.baseline_end, "baseline logs"),
            (windows.incident_start, windows.incident_end, "incident logs"),
        )
    ]
    answers = await asyncio.gather(*(read for _, read in reads))
    times: list[int] = []
    services: list[str] = []
    texts: list[str] = []
    traces: list[str] = []
    label = settings.service_label
    for (owner, _), lines in zip(reads, answers, strict=True):
        for line in lines:
            # Nanoseconds: the frame converts them all at once (exactly, as a Timestamp would).
            times.append(line.timestamp_ns)
            services.append(owner or line.labels.get(label, ""))
            texts.append(line.line)
            traces.append(line.trace_id or "")
    return log_columns(times, services, texts, traces)


async def fetch_traces(
    jaeger: JaegerBackend,
    alerting: Sequence[Target],
    windows: Windows,
    limit: int,
    fetch: Fetch,
) -> list[TraceAnswer]:
    """Both windows of the traces through the alerting apps (they carry their callees' spans),
    as they came in (`read_traces` reads them)."""

    async def window(
        target: Target, start: datetime, end: datetime, what: str
    ) -> TraceAnswer | None:
        name = target.trace_service
        found = await call(
            fetch, "jaeger", what, lambda: jaeger.search_body(name, start, end, limit=limit)
        )
        return None if found is None else TraceAnswer(what, found)

    answers = await asyncio.gather(
        *(
            window(t, start, end, f"{what} traces of {t.service}")
            for t in alerting
            if t.trace_service
            for start, end, what in (
                (windows.baseline_start, windows.baseline_end, "baseline"),
                (windows.incident_start, windows.incident_end, "incident"),
            )
        )
    )
    return [answer for answer in answers if answer is not None]


async def read_traces(
    answers: Sequence[TraceAnswer],
    names: dict[str, str],
    pool: AnalysisPool,
    fetch: Fetch,
    *,
    alone: bool = True,
    read: Callable[[Sequence[TraceAnswer]], Awaitable[SpanFrames | None]] | None = None,
) -> pd.DataFrame:
    """The spans of the trace answers, all answers in one call, under the analysis' service
    names (`names`): by `read` (with their evidence: `Collecting.read`), else (or if it gave
    nothing) by `frames.span_frames`, off the event loop in `pool` for a correlation that runs
    `alone` while a process is free, else here; an unusable answer is named."""
    if not answers:
        return span_frame([])
    frames = None if read is None else await read(answers)
    if frames is None:
        # Alone, a correlation's answers are read in parallel with its other sources. Among
        # others (a storm), handing them over and the frame back costs both sides more CPU
        # than reading them here, and with every process busy they would wait behind whole
        # analyses.
        here = not alone or pool.saturated()
        frames = await _read(
            pool, fetch, "jaeger", "traces", span_frames, answers, names, here=here
        )
    if frames is None:
        return span_frame([])
    for what, reason in frames.unusable:
        fetch.miss("jaeger", what, f"unusable answer: {reason}")
    return frames.spans


async def _read(
    pool: AnalysisPool,
    fetch: Fetch,
    backend: str,
    what: str,
    reader: Callable[..., T],
    *args: object,
    here: bool = False,
) -> T | None:
    """`reader(*args)` in `pool` (`here`: on this loop); None (and `what` named missing) if it
    could not run."""
    try:
        return reader(*args) if here else await pool.run(reader, *args)
    except (AnalysisTimeout, BrokenProcessPool) as exc:
        fetch.miss(backend, what, f"the answers could not be read: {exc}")
    except Exception as exc:  # a reader's bug must cost the source, not the whole report
        log.exception("reading %s's answers failed", backend)
        fetch.miss(backend, what, f"the answers could not be read: {exc!r}")
    return None
