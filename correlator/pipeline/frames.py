"""A correlation's metric and trace answers → its metric and span frames, in the analysis
processes.

Parsing an answer and turning it into rows is CPU: in a storm, Prometheus' answers were a fifth
of the serving process's time (JSON, the matrix, the long frame), and for a single alert
Jaeger's were as much as all of Prometheus' (OTLP JSON, a Span per span). The serving process
fetches each answer's bytes (`PrometheusBackend.query_range_body`,
`JaegerBackend.search_body`) and hands a source's answers over at once; one call here, in the
analysis pool, gives the frames the analysis reads and says which answers were unusable. For
a correlation running alone the same call also runs the producers that read that source alone
(`metric_evidence`, `trace_evidence`): the frames cross to the pool once, not back and over
again. Values in, values out: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pandas as pd

from correlator.analysis.evidence import READING_ONLY, Collected, collect_some
from correlator.analysis.telemetry import (
    METRIC_COLUMNS,
    REPLICA_COLUMNS,
    SignalMeta,
    Telemetry,
    conform,
    empty,
    span_frame,
    wide_to_metrics,
    wide_to_replicas,
)
from correlator.analysis.windows import Windows
from correlator.backends.jaeger_spans import MalformedSpans, SearchBody, search_spans
from correlator.backends.prometheus_matrix import MalformedAnswer, matrix_frame
from correlator.signals import ServiceLabels

F = TypeVar("F")
_POD_SUFFIX = re.compile(r"-[a-z0-9]{5,10}-[a-z0-9]{5}$")


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    """One signal's range answer for a group of services whose series carry `labels`."""

    signal: str
    services: tuple[str, ...]
    labels: ServiceLabels
    body: bytes


@dataclass(frozen=True, slots=True)
class MetricFrames:
    metrics: pd.DataFrame
    replicas: pd.DataFrame
    # (signal, why its answer was unusable)
    unusable: tuple[tuple[str, str], ...] = ()


def _labels(column: object) -> dict[str, str]:
    return dict(column) if isinstance(column, tuple) else {}


def series_services(
    columns: Any, services: Sequence[str], labels: ServiceLabels
) -> dict[object, str]:
    """The service of each series (column: its labels as pairs): its Istio workload, else its
    pod's name without the ReplicaSet and pod suffixes; series of no service in `services`
    are left out."""
    wanted = set(services)
    mapping: dict[object, str] = {}
    for column in columns:
        named = _labels(column)
        name = named.get(labels.istio_workload)
        if name is None and (pod := named.get(labels.pod)):
            name = _POD_SUFFIX.sub("", pod)
        if name is not None and name in wanted:
            mapping[column] = name
    return mapping


def metric_frames(answers: Sequence[RangeAnswer]) -> MetricFrames:
    """Every answer's series as metric rows (one service per series), and the per-pod rows of
    services with several replicas; an unusable answer is named, the others are kept."""
    metrics: list[pd.DataFrame] = []
    replicas: list[pd.DataFrame] = []
    unusable: list[tuple[str, str]] = []
    for answer in answers:
        try:
            wide = matrix_frame(answer.body)
        except MalformedAnswer as exc:
            unusable.append((answer.signal, str(exc)))
            continue
        if wide.empty:
            continue
        service_of = series_services(wide.columns, answer.services, answer.labels)
        instance_of: dict[object, str] = {
            column: _labels(column).get(answer.labels.pod, "") for column in wide.columns
        }
        metrics.append(wide_to_metrics(wide, answer.signal, service_of))
        replicas.append(wide_to_replicas(wide, answer.signal, service_of, instance_of))
    metrics = [m for m in metrics if not m.empty]
    replicas = [r for r in replicas if not r.empty]
    return MetricFrames(
        conform(
            pd.concat(metrics, ignore_index=True) if metrics else empty(METRIC_COLUMNS),
            METRIC_COLUMNS,
        ),
        conform(
            pd.concat(replicas, ignore_index=True) if replicas else empty(REPLICA_COLUMNS),
            REPLICA_COLUMNS,
        ),
        tuple(unusable),
    )


@dataclass(frozen=True, slots=True)
class WithEvidence(Generic[F]):
    """A source's frames, and the part of the producers that read that source alone."""

    frames: F
    part: Collected


def metric_evidence(
    answers: Sequence[RangeAnswer],
    signals: dict[str, SignalMeta],
    edges: set[tuple[str, str]],
    windows: Windows,
) -> WithEvidence[MetricFrames]:
    """`metric_frames`, and the producers that read the metrics alone run over them: one call
    in the analysis pool, so the frames are not handed back and over again in between."""
    frames = metric_frames(answers)
    telemetry = Telemetry(
        metrics=frames.metrics, replicas=frames.replicas, signals=signals, edges=edges
    )
    return WithEvidence(frames, collect_some(telemetry, windows, READING_ONLY["metrics"]))


@dataclass(frozen=True, slots=True)
class TraceAnswer:
    """One trace search's answer (`what`: which window of which app's traces)."""

    what: str
    found: SearchBody


@dataclass(frozen=True, slots=True)
class SpanFrames:
    spans: pd.DataFrame
    # (what, why its answer was unusable)
    unusable: tuple[tuple[str, str], ...] = ()


def span_frames(answers: Sequence[TraceAnswer], names: dict[str, str]) -> SpanFrames:
    """The answers' spans as one frame, each span once (the windows' traces overlap), under the
    analysis' service names (`names`: Jaeger's name → ours); an unusable answer is named, the
    others are kept."""
    seen: set[tuple[str, str]] = set()
    rows: list[tuple[object, ...]] = []  # in SPAN_COLUMNS' order: a dict each cost as much
    unusable: list[tuple[str, str]] = []
    for answer in answers:
        try:
            spans = search_spans(answer.found)
        except MalformedSpans as exc:
            unusable.append((answer.what, f"Jaeger answered {exc}"))
            continue
        for s in spans:
            if (s.trace_id, s.span_id) in seen:
                continue
            seen.add((s.trace_id, s.span_id))
            rows.append(
                (
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id or "",
                    names.get(s.service, s.service),
                    s.operation,
                    s.start,
                    s.duration_ms,
                    s.error,
                    s.kind,
                )
            )
    return SpanFrames(span_frame(rows), tuple(unusable))


def trace_evidence(
    answers: Sequence[TraceAnswer],
    names: dict[str, str],
    edges: set[tuple[str, str]],
    windows: Windows,
) -> WithEvidence[SpanFrames]:
    """`span_frames`, and the producers that read the traces alone run over them, in one call
    (as `metric_evidence`)."""
    frames = span_frames(answers, names)
    telemetry = Telemetry(spans=frames.spans, edges=edges)
    return WithEvidence(frames, collect_some(telemetry, windows, READING_ONLY["traces"]))
