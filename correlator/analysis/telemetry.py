"""What the analysis reads: the telemetry of the services in scope, as three tidy frames (pure).

Whatever the source (Prometheus/Loki/Jaeger answers online, an incident bundle offline, the
Nezha adapter in the benchmark), the analysis sees the same columns, so the online and offline
paths run exactly the same code:

- metrics: one row per sample — `time` (UTC), `service`, `signal`, `value`;
- logs: one row per line — `time`, `service`, `line`, `trace_id` (empty when none);
- spans: one row per span — `trace_id`, `span_id`, `parent_id` (empty for a root), `service`,
  `operation`, `start` (UTC), `duration_ms`, `error`, and `kind` (OTLP span kind: "server",
  "client"…; "" where the source does not say);
- replicas (optional): the pod-level signals per replica — `time`, `service`, `instance` (the
  pod), `signal`, `value` — for services that run more than one.

Any frame may be empty or absent (a team without tracing, a recording without its fault-free
minute): `Telemetry` conforms every frame to these columns and types, so an empty frame
concatenated with a full one, or a column a source left out, never reaches the analysis as an
object-typed column.

Each signal has a `SignalMeta`: its unit, the direction that is worse, and the query that
fetched it (shown as evidence).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

METRIC_COLUMNS = ("time", "service", "signal", "value")
REPLICA_COLUMNS = ("time", "service", "instance", "signal", "value")
LOG_COLUMNS = ("time", "service", "line", "trace_id")
SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "operation",
    "start",
    "duration_ms",
    "error",
    "kind",
)
# The type of each column: times are UTC instants, numbers floats, the rest strings.
_TIME_COLUMNS = frozenset({"time", "start"})
_FLOAT_COLUMNS = frozenset({"value", "duration_ms"})
_BOOL_COLUMNS = frozenset({"error"})
# A 32- or 16-digit trace id as a word of its own; written so that a position failing the
# 16 digits is not tried a second time for 32 (twice as fast, the same matches).
_HEX_TRACE = re.compile(r"\b([0-9a-f]{16}(?:[0-9a-f]{16})?)\b")


@dataclass(frozen=True, slots=True)
class SignalMeta:
    unit: str = ""
    worse_when: str = "higher"  # "higher", "lower" or "either"
    query: str = ""
    # A rise to a level this small is not evidence of anything (e.g. 0.001 cores).
    floor: float = 0.0


@dataclass(slots=True)
class Telemetry:
    metrics: pd.DataFrame = field(default_factory=lambda: empty(METRIC_COLUMNS))
    logs: pd.DataFrame = field(default_factory=lambda: empty(LOG_COLUMNS))
    spans: pd.DataFrame = field(default_factory=lambda: empty(SPAN_COLUMNS))
    replicas: pd.DataFrame = field(default_factory=lambda: empty(REPLICA_COLUMNS))
    signals: dict[str, SignalMeta] = field(default_factory=dict)
    # caller → callee, from a dependency graph (Jaeger, Istio); spans add their own.
    edges: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.metrics = conform(self.metrics, METRIC_COLUMNS)
        self.logs = conform(self.logs, LOG_COLUMNS)
        self.spans = conform(self.spans, SPAN_COLUMNS)
        self.replicas = conform(self.replicas, REPLICA_COLUMNS)

    def services(self) -> set[str]:
        found: set[str] = set()
        for frame in (self.metrics, self.logs, self.spans):
            if len(frame):
                found |= {str(name) for name in frame["service"].unique()}
        for caller, callee in self.edges:
            found |= {caller, callee}
        found.discard("")
        return found


def _typed(name: str, values: pd.Series | None = None) -> pd.Series:
    if name in _TIME_COLUMNS:
        if values is None:
            return pd.Series(dtype="datetime64[ns, UTC]")
        return pd.to_datetime(values, utc=True, errors="coerce").astype("datetime64[ns, UTC]")
    if name in _FLOAT_COLUMNS:
        if values is None:
            return pd.Series(dtype=float)
        return pd.to_numeric(values, errors="coerce").astype(float)
    if name in _BOOL_COLUMNS:
        if values is None:
            return pd.Series(dtype=bool)
        return values.fillna(False).astype(bool)
    if values is None:
        return pd.Series(dtype=object)
    # Python strings in an object column: pandas 3's own string type (python storage without
    # pyarrow) made every per-row step of the producers two to three times slower.
    if pd.api.types.is_string_dtype(values):  # strings already (or missing): no per-row step
        return values.fillna("").astype(object)
    return values.astype(object).fillna("").map(str).astype(object)


def _conforms(column: pd.Series) -> bool:
    """The column has its name's type already."""
    name = str(column.name)
    if name in _TIME_COLUMNS | _FLOAT_COLUMNS | _BOOL_COLUMNS:
        return bool(column.dtype == _empty((name,))[name].dtype)
    return bool(column.dtype == object)


def empty(columns: Iterable[str]) -> pd.DataFrame:
    """A frame of no rows with the typed columns (an object-typed empty time column, concatenated
    with real times, would make every time an object)."""
    return _empty(tuple(columns)).copy(deep=False)  # built once: a frame costs a millisecond


@functools.cache
def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({name: _typed(name) for name in columns})


def conform(frame: pd.DataFrame | None, columns: Iterable[str]) -> pd.DataFrame:
    """`frame` with exactly `columns` (a missing one added empty) of their types; rows whose
    time could not be read are dropped. Cheap when the frame already conforms."""
    columns = tuple(columns)
    if frame is None or frame.empty:
        return empty(columns)
    if tuple(frame.columns) == columns and all(_conforms(frame[name]) for name in columns):
        return frame  # as a Telemetry built from another one's frames finds them
    out = {}
    for name in columns:
        if name not in frame.columns:
            out[name] = _typed(name, pd.Series("", index=frame.index))
            continue
        column = frame[name]
        out[name] = column if _conforms(column) else _typed(name, column)
    result = pd.DataFrame(out, index=frame.index)
    times = [name for name in columns if name in _TIME_COLUMNS]
    if times and result[times[0]].isna().any():
        result = result[result[times[0]].notna()]
    return result


def metric_frame(rows: Iterable[tuple[object, str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(METRIC_COLUMNS))
    if frame.empty:
        return empty(METRIC_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[ns, UTC]")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.dropna(subset=["value"])


def wide_to_metrics(
    wide: pd.DataFrame, signal: str, service_of: Mapping[object, str]
) -> pd.DataFrame:
    """A range frame (rows: time, columns: series) → metric rows of `signal`, one service per
    column through `service_of` (columns it does not name are dropped; several series of one
    service keep the largest value at each time). Rows are ordered by time, then service.

    One numpy pass over the whole matrix (not a frame per column, nor a group-by for a
    service's several series): in a storm this runs for every signal of every correlation."""
    named = sorted(
        (service_of[column], position)
        for position, column in enumerate(wide.columns)
        if column in service_of
    )
    if not named:
        return empty(METRIC_COLUMNS)
    names = [service for service, _ in named]
    values = wide.iloc[:, [position for _, position in named]].to_numpy(dtype=float)
    starts = [i for i, name in enumerate(names) if i == 0 or name != names[i - 1]]
    if len(starts) < len(names):  # several series of one service: the largest at each time
        values = np.fmax.reduceat(values, starts, axis=1)  # NaN only where all are missing
        names = [names[i] for i in starts]
    services = np.array(names, dtype=object)
    times, columns = np.nonzero(~np.isnan(values))  # time-major, then service order
    return pd.DataFrame(
        {
            "time": wide.index[times],
            "service": services[columns],
            "signal": signal,
            "value": values[times, columns],
        }
    )


def wide_to_replicas(
    wide: pd.DataFrame,
    signal: str,
    service_of: Mapping[object, str],
    instance_of: Mapping[object, str],
) -> pd.DataFrame:
    """A range frame → replica rows of `signal`, for the services with two or more series (one
    per instance): the siblings a saturated replica stands out from."""
    per_service: dict[str, list[int]] = {}
    for position, column in enumerate(wide.columns):
        service, instance = service_of.get(column), instance_of.get(column)
        if service is not None and instance:
            per_service.setdefault(service, []).append(position)
    chosen = [
        (service, position)
        for service, positions in per_service.items()
        if len(positions) >= 2
        for position in positions
    ]
    if not chosen:
        return empty(REPLICA_COLUMNS)
    values = wide.iloc[:, [position for _, position in chosen]].to_numpy(dtype=float)
    columns, times = np.nonzero(~np.isnan(values.T))  # series by series, each in time order
    services = np.array([service for service, _ in chosen], dtype=object)
    instances = np.array([instance_of[wide.columns[p]] for _, p in chosen], dtype=object)
    return pd.DataFrame(
        {
            "time": wide.index[times],
            "service": services[columns],
            "instance": instances[columns],
            "signal": signal,
            "value": values[times, columns],
        }
    )


def log_frame(rows: Iterable[tuple[object, str, str, str]]) -> pd.DataFrame:
    """Log rows (time, service, line, trace id) as a conformed frame (`log_columns`)."""
    rows = list(rows)
    if not rows:
        return empty(LOG_COLUMNS)
    times, services, lines, traces = zip(*rows, strict=True)
    return log_columns(times, services, lines, traces)


def log_columns(
    times: Sequence[object],
    services: Sequence[object],
    lines: Sequence[object],
    traces: Sequence[object],
) -> pd.DataFrame:
    """Log lines given column by column as a conformed frame. A line without a trace id field
    may still print one ("TraceID: 4bf9…"): that one is used.

    Built in Python, column by column (a frame inferred from tuples, then typed again, cost
    more): a correlation's lines are read this way on the event loop."""
    if not times:
        return empty(LOG_COLUMNS)
    text = [line if type(line) is str else str(line) for line in lines]
    found = []
    for trace, line in zip(traces, text, strict=True):
        if type(trace) is str and trace:  # the common case first: no call per line
            found.append(trace)
        elif type(trace) is str or _missing(trace):
            match = _HEX_TRACE.search(line)
            found.append(match.group(1) if match else "")
        else:
            found.append(str(trace))
    if all(type(t) is int for t in times):  # nanoseconds, as the Loki reader gives them
        stamps = pd.to_datetime(np.fromiter(times, np.int64, len(times)), utc=True)
    else:
        stamps = pd.to_datetime(cast(Any, list(times)), utc=True)  # datetimes, strings
    return pd.DataFrame(
        {
            "time": stamps.astype("datetime64[ns, UTC]"),
            "service": _objects(
                [s if type(s) is str else "" if _missing(s) else str(s) for s in services]
            ),
            "line": _objects(text),
            "trace_id": _objects(found),
        }
    )


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _objects(values: list[str]) -> pd.Series:
    """Python strings in an object column (see `_typed`)."""
    return pd.Series(values, dtype=object)


def span_frame(rows: Iterable[Mapping[str, object] | tuple[object, ...]]) -> pd.DataFrame:
    """Spans as rows: mappings by column name, or tuples in `SPAN_COLUMNS`' order."""
    frame = pd.DataFrame(list(rows), columns=list(SPAN_COLUMNS))
    if frame.empty:
        return empty(SPAN_COLUMNS)
    frame["start"] = pd.to_datetime(frame["start"], utc=True).astype("datetime64[ns, UTC]")
    frame["duration_ms"] = pd.to_numeric(frame["duration_ms"], errors="coerce").fillna(0.0)
    frame["parent_id"] = frame["parent_id"].fillna("").astype(str)
    frame["error"] = frame["error"].fillna(False).astype(bool)
    frame["kind"] = frame["kind"].astype(object).fillna("").astype(str).replace("unspecified", "")
    return frame
