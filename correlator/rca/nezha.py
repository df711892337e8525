"""The Nezha dataset layout → incidents the analysis can run on (I/O: reads CSV and JSON).

Layout (see the dataset's README): `rca_data/<day>/<day>-fault_list.json`, per-pod metric CSVs
for the whole day, per-minute log and trace CSVs around each injection, and one fault-free
minute per day under `construct_data/<day>/`.

Each fault becomes an incident as a live deployment would see it. The fault list is used for
one thing only: which minute files to read (the dataset is cut around the injections). Nothing
else of it — time, pod, type — reaches the analysis:
- the alert fires when a front-end rule would, evaluated at every minute of the recording as a
  live rule is: success rate below, or p90 latency above, the range of the hour before that
  minute. The first breach is the alert's onset, and the windows come from it;
- where no rule fires, a live system would never have alerted: the case is analysed as if
  someone asked at the end of the recording, and the benchmark scores it apart;
- metrics: the pods' per-minute series, named as the platform's signals, with the hour before
  the incident window as their baseline;
- logs and traces: the recorded minutes; their baseline is what was recorded before the
  incident window, plus the day's fault-free minute placed just before the recording.

Real files are dirty (rows run together, wrong field counts, bad bytes, empty files): a row
that cannot be read is skipped and counted per file in `Problems`, never the whole run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from correlator.analysis.findings import robust_scale
from correlator.analysis.telemetry import (
    LOG_COLUMNS,
    METRIC_COLUMNS,
    REPLICA_COLUMNS,
    SPAN_COLUMNS,
    SignalMeta,
    Telemetry,
    conform,
    empty,
)
from correlator.analysis.windows import WindowPolicy, Windows, incident_windows
from correlator.rca.tables import Problems, read_table

# Pod metric columns → the signals of the platform's catalogue (`correlator.signals`), scaled
# to the signal's unit: the benchmark measures what the live service sees, no more.
POD_SIGNALS: dict[str, tuple[str, float, SignalMeta]] = {
    "CpuUsage(m)": ("cpu_cores", 1e-3, SignalMeta("cores", "higher", floor=0.01)),
    "CpuUsageRate(%)": ("cpu_saturation", 1e-2, SignalMeta("ratio", "higher", floor=0.05)),
    "MemoryUsage(Mi)": ("memory_bytes", 2**20, SignalMeta("bytes", "higher")),
    "MemoryUsageRate(%)": ("memory_saturation", 1e-2, SignalMeta("ratio", "higher", floor=0.05)),
    "PodServerLatencyP99(s)": ("latency_p99_ms", 1e3, SignalMeta("ms", "higher", floor=1.0)),
    "PodWorkload(Ops)": ("throughput_rps", 1.0, SignalMeta("req/s", "lower")),
}
# A per-minute row summarises the minute before its timestamp: it is placed at that minute's
# middle, where its change happened on average.
SAMPLE_SHIFT = timedelta(seconds=30)
# Windows of one-minute data: the incident starts a little before the alert (a rule on
# one-minute points fires up to a minute or two after the change).
POLICY = WindowPolicy(
    lead=timedelta(minutes=2),
    tail_min=timedelta(minutes=4),
    max_incident=timedelta(minutes=4),
    baseline=timedelta(hours=1),
    gap=timedelta(minutes=0),
)
# The front-end rules: (column, direction that is worse, alert name).
FRONT_RULES = (
    ("LatencyP90(s)", "higher", "FrontendLatencyHigh"),
    ("SuccessRate(%)", "lower", "FrontendErrorsHigh"),
)
RULE_HISTORY = timedelta(hours=1)
MIN_HISTORY_POINTS = 5

LOG_FIELDS = ("TimeUnixNano", "PodName", "Log")
SPAN_FIELDS = ("TraceID", "SpanID", "ParentID", "PodName", "StartTimeUnixNano", "Duration")
METRIC_FIELDS = ("TimeStamp", "PodName")
FRONT_FIELDS = ("TimeStamp",)


@dataclass(slots=True)
class Case:
    name: str
    truth: str
    fault: str
    alerted: bool  # a front-end rule fired; otherwise analysed at the end of the recording
    telemetry: Telemetry
    windows: Windows


def service_of_pod(pod: str) -> str:
    """`ts-order-service-5b67c48447-mv5hb` → `ts-order-service` (drop the last two parts)."""
    parts = str(pod).split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else str(pod)


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _days(root: Path) -> list[Path]:
    return sorted(
        p for p in (root / "rca_data").iterdir() if p.is_dir() and any(p.glob("*fault_list.json"))
    )


def _read_metrics(day: Path, problems: Problems) -> pd.DataFrame:
    rows = []
    for path in sorted((day / "metric").glob("*_metric.csv")):
        frame = read_table(path, METRIC_FIELDS, problems, numeric=("TimeStamp",))
        if frame.empty:
            continue
        time = pd.to_datetime(pd.to_numeric(frame["TimeStamp"]), unit="s", utc=True) - SAMPLE_SHIFT
        service = frame["PodName"].map(service_of_pod)
        for column, (signal, factor, _) in POD_SIGNALS.items():
            if column in frame.columns:
                rows.append(
                    pd.DataFrame(
                        {
                            "time": time,
                            "service": service,
                            "instance": frame["PodName"],
                            "signal": signal,
                            "value": pd.to_numeric(frame[column], errors="coerce") * factor,
                        }
                    )
                )
    if not rows:
        return empty(REPLICA_COLUMNS)
    return pd.concat(rows, ignore_index=True).dropna(subset=["value"])


def _services_and_replicas(pods: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-pod rows → the services' series (the largest pod's value at each time, as the
    platform's queries take it) and the rows of services with several replicas."""
    if pods.empty:
        return empty(METRIC_COLUMNS), empty(REPLICA_COLUMNS)
    services = pods.groupby(["time", "service", "signal"], as_index=False).agg(
        value=("value", "max")
    )
    count = pods.groupby("service")["instance"].nunique()
    several = count[count > 1].index
    return services[list(METRIC_COLUMNS)], pods[pods["service"].isin(several)]


def _unwrap(raw: object) -> str:
    text = str(raw)
    if text.startswith("{"):
        try:
            document = json.loads(text)
            if isinstance(document, dict) and "log" in document:
                return str(document["log"]).rstrip("\n")
        except ValueError:
            pass
    return text


def read_logs(
    paths: list[Path], problems: Problems, shift: timedelta = timedelta(0)
) -> pd.DataFrame:
    frames = [read_table(p, LOG_FIELDS, problems, numeric=("TimeUnixNano",)) for p in paths]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty(LOG_COLUMNS)
    raw = pd.concat(frames, ignore_index=True)
    trace = raw["TraceID"] if "TraceID" in raw.columns else pd.Series("", index=raw.index)
    return pd.DataFrame(
        {
            "time": pd.to_datetime(pd.to_numeric(raw["TimeUnixNano"]), unit="ns", utc=True) + shift,
            "service": raw["PodName"].map(service_of_pod),
            "line": raw["Log"].map(_unwrap),
            "trace_id": trace.fillna(""),
        }
    )


def read_spans(
    paths: list[Path], problems: Problems, shift: timedelta = timedelta(0)
) -> pd.DataFrame:
    frames = [
        read_table(p, SPAN_FIELDS, problems, numeric=("StartTimeUnixNano", "Duration"))
        for p in paths
    ]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty(SPAN_COLUMNS)
    raw = pd.concat(frames, ignore_index=True)
    parent = raw["ParentID"].fillna("")
    operation = raw["OperationName"] if "OperationName" in raw.columns else ""
    return pd.DataFrame(
        {
            "trace_id": raw["TraceID"],
            "span_id": raw["SpanID"],
            "parent_id": parent.where(parent != "root", ""),
            "service": raw["PodName"].map(service_of_pod),
            "operation": pd.Series(operation, index=raw.index).fillna(""),
            "start": pd.to_datetime(pd.to_numeric(raw["StartTimeUnixNano"]), unit="ns", utc=True)
            + shift,
            "duration_ms": pd.to_numeric(raw["Duration"], errors="coerce").fillna(0) / 1e3,
            "error": False,
        }
    )


def alert_onset(front: pd.DataFrame, start: datetime, end: datetime) -> tuple[datetime, str] | None:
    """When a front-end rule fires within [start, end]: evaluated at each minute's point, as a
    live rule is, against the hour before that point (median ± max(3 robust sigma, 20%))."""
    if front.empty or "TimeStamp" not in front.columns:
        return None
    time = pd.to_datetime(pd.to_numeric(front["TimeStamp"], errors="coerce"), unit="s", utc=True)
    order = np.argsort(time.to_numpy())
    time = time.iloc[order].reset_index(drop=True)
    fired: list[tuple[datetime, str]] = []
    for column, worse, name in FRONT_RULES:
        if column not in front.columns:
            continue
        values = pd.to_numeric(front[column], errors="coerce").iloc[order].to_numpy(float)
        for i in np.flatnonzero(((time >= start) & (time <= end)).to_numpy()):
            now = time.iloc[i]
            past = ((time >= now - RULE_HISTORY) & (time < now - timedelta(seconds=30))).to_numpy()
            history = values[past]
            history = history[~np.isnan(history)]
            if len(history) < MIN_HISTORY_POINTS or np.isnan(values[i]):
                continue
            median = float(np.median(history))
            margin = max(3 * robust_scale(history), 0.2 * abs(median))
            breach = (
                values[i] > median + margin if worse == "higher" else values[i] < median - margin
            )
            if breach:
                fired.append((now.to_pydatetime(), name))
                break
    return min(fired) if fired else None


def cases(
    root: Path, problems: Problems | None = None, *, onset_shift: timedelta = timedelta(0)
) -> Iterator[Case]:
    """Every fault of every day under `root`, in order; unreadable rows and files are skipped
    and counted in `problems`. `onset_shift` moves each alert's onset, and so every window (to
    measure how much a misplaced onset costs)."""
    problems = problems if problems is not None else Problems()
    for day in _days(root):
        fault_path = next(day.glob("*fault_list.json"))
        try:
            fault_list = json.loads(fault_path.read_text(encoding="utf-8", errors="replace"))
            if not isinstance(fault_list, dict):
                raise ValueError("not an object of hours")
        except ValueError as exc:
            problems.note(fault_path, f"unreadable fault list, day skipped: {exc}")
            continue
        metrics = _read_metrics(day, problems)
        front_path = day / "metric" / "front_service.csv"
        front = (
            read_table(front_path, FRONT_FIELDS, problems, numeric=FRONT_FIELDS)
            if front_path.exists()
            else pd.DataFrame()
        )
        normal = root / "construct_data" / day.name
        normal_logs = read_logs(sorted((normal / "log").glob("*.csv")), problems)
        normal_spans = read_spans(sorted((normal / "trace").glob("*.csv")), problems)
        signals = {signal: meta for signal, _, meta in POD_SIGNALS.values()}
        for hour in sorted(fault_list):
            entries = fault_list[hour] if isinstance(fault_list[hour], list) else []
            for number, fault in enumerate(entries):
                try:
                    injected = _utc(str(fault["inject_time"]))
                    truth = service_of_pod(str(fault["inject_pod"]))
                except (KeyError, TypeError, ValueError) as exc:
                    problems.note(fault_path, f"fault {hour}[{number}] skipped: {exc!r}")
                    continue
                yield _case(
                    day,
                    f"{day.name} {fault['inject_time']}",
                    truth,
                    str(fault.get("inject_type", "unknown")),
                    _minute_files_around(day, injected),
                    _nominal_recording(injected),
                    (metrics, front, signals),
                    (normal_logs, normal_spans),
                    problems,
                    onset_shift,
                )


RECORDED_MINUTES = 3  # the dataset records the three minutes that begin at the injection minute


def _recordings(day: Path) -> list[list[datetime]]:
    """The day's recordings: runs of consecutive minutes that have a log or trace file."""
    minutes = set()
    for kind in ("log", "trace"):
        for path in (day / kind).glob(f"*_{kind}.csv"):
            try:
                clock = datetime.strptime(path.name.split(f"_{kind}")[0], "%H_%M")
                date = datetime.strptime(day.name, "%Y-%m-%d")
            except ValueError:
                continue
            minutes.add(datetime.combine(date.date(), clock.time(), tzinfo=UTC))
    runs: list[list[datetime]] = []
    for minute in sorted(minutes):
        if runs and minute - runs[-1][-1] <= timedelta(minutes=1):
            runs[-1].append(minute)
        else:
            runs.append([minute])
    return runs


def _minute_files_around(day: Path, injected: datetime) -> dict[str, list[Path]]:
    """Which minute files hold this fault: the recording nearest its injection minute (within
    a recording's length). The only use of the fault list's time, and a coarse one: moving the
    time by a minute or two, or by seconds, chooses the same recording."""
    minute = injected.replace(second=0, microsecond=0)

    def distance(run: list[datetime]) -> timedelta:
        return max(run[0] - minute, minute - run[-1], timedelta(0))

    runs = [r for r in _recordings(day) if distance(r) <= timedelta(minutes=RECORDED_MINUTES)]
    run = min(runs, key=lambda r: (distance(r), r[0]), default=[])
    if len(run) > RECORDED_MINUTES:
        # Recordings of faults close together ran into one: this fault's part of it.
        first = min(max(minute, run[0]), run[-RECORDED_MINUTES])
        run = [m for m in run if first <= m < first + timedelta(minutes=RECORDED_MINUTES)]
    return {
        kind: [
            day / kind / f"{m:%H_%M}_{kind}.csv"
            for m in run
            if (day / kind / f"{m:%H_%M}_{kind}.csv").exists()
        ]
        for kind in ("log", "trace")
    }


def _nominal_recording(injected: datetime) -> tuple[datetime, datetime]:
    """The minutes the dataset would have recorded, when no log or trace file holds them: what
    the file names say (the minute), nothing finer."""
    first = injected.replace(second=0, microsecond=0)
    return first, first + timedelta(minutes=RECORDED_MINUTES)


def _joined(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """Frames one after another, typed even when some (or all) are empty."""
    kept = [conform(f, columns) for f in frames if not f.empty]
    if not kept:
        return empty(columns)
    return conform(pd.concat(kept, ignore_index=True), columns)


def _case(
    day: Path,
    name: str,
    truth: str,
    fault: str,
    files: dict[str, list[Path]],
    nominal: tuple[datetime, datetime],
    day_data: tuple[pd.DataFrame, pd.DataFrame, dict[str, SignalMeta]],
    normal: tuple[pd.DataFrame, pd.DataFrame],
    problems: Problems,
    shift: timedelta = timedelta(0),
) -> Case:
    metrics, front, signals = day_data
    logs = read_logs(files["log"], problems)
    spans = read_spans(files["trace"], problems)
    times = _joined(
        [logs[["time"]], spans[["start"]].rename(columns={"start": "time"})], ("time",)
    )["time"].dropna()
    if times.empty:
        problems.note(day, f"{name}: no logs or traces recorded; analysed on metrics only")
        recorded = nominal
    else:
        # The bulk of the recording: a span that started long before (a stuck request, a
        # skewed clock) does not stretch it.
        low, high = times.quantile([0.001, 0.999])
        recorded = (
            pd.Timestamp(low).to_pydatetime(warn=False),
            pd.Timestamp(high).to_pydatetime(warn=False),
        )
    fired = alert_onset(front, *recorded)
    if fired is not None:
        onset, _ = fired
        windows = incident_windows(onset, min(onset + POLICY.tail_min, recorded[1]), POLICY)
    else:
        # No rule fired: analysed as if asked at the end of the recording.
        onset = recorded[1] - (POLICY.tail_min - POLICY.lead)
        windows = incident_windows(onset, recorded[1], POLICY)
    if shift:
        w = windows
        windows = Windows(
            w.baseline_start + shift,
            w.baseline_end + shift,
            w.incident_start + shift,
            w.incident_end + shift,
            w.onset + shift,
        )
    # The fault-free minute, moved to end where the recording (or the baseline) begins.
    normal_logs, normal_spans = normal
    last = max(
        (t.max() for t in (normal_logs["time"], normal_spans["start"]) if not t.empty),
        default=pd.NaT,
    )
    if pd.notna(last):
        until = min(windows.baseline_end, recorded[0])
        shift = until - (last + pd.Timedelta(seconds=1)).to_pydatetime(warn=False)
        normal_logs = normal_logs.assign(time=normal_logs["time"] + shift)
        normal_spans = normal_spans.assign(start=normal_spans["start"] + shift)
    t = metrics["time"]
    metrics, replicas = _services_and_replicas(
        metrics[(t >= windows.baseline_start) & (t <= windows.incident_end)]
    )
    telemetry = Telemetry(
        metrics=metrics,
        replicas=replicas,
        logs=_joined([normal_logs, logs], LOG_COLUMNS),
        spans=_joined([normal_spans, spans], SPAN_COLUMNS),
        signals=signals,
    )
    return Case(
        name=name,
        truth=truth,
        fault=fault,
        alerted=fired is not None,
        telemetry=telemetry,
        windows=windows,
    )
