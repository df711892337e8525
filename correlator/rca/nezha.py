"""The Nezha dataset layout → incidents the analysis can run on (I/O: reads CSV and JSON).

Layout (see the dataset's README): `rca_data/<day>/<day>-fault_list.json`, per-pod metric CSVs
for the whole day, per-minute log and trace CSVs around each injection, and one fault-free
minute per day under `construct_data/<day>/`.

Each fault becomes an incident as a real deployment would see it:
- the alert fires when a front-end rule would: the first minute around the injection where the
  front end's success rate falls or its latency rises beyond its own previous hour (if it never
  does, at the injection time itself);
- metrics: the pods' per-minute series, named as the platform's signals;
- logs and traces: the minutes after the injection, and the day's fault-free minute placed just
  before the incident window as the logs' and traces' baseline.
Nothing about a case — its name, day, pod or fault type — reaches the analysis except through
the telemetry; the truth is kept aside for scoring.
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
from correlator.analysis.telemetry import LOG_COLUMNS, SPAN_COLUMNS, SignalMeta, Telemetry, empty
from correlator.analysis.windows import WindowPolicy, Windows, incident_windows

# Pod metric columns → the platform's signal names (scale to the signal's unit).
POD_SIGNALS: dict[str, tuple[str, float, SignalMeta]] = {
    "CpuUsage(m)": ("cpu_cores", 1e-3, SignalMeta("cores", "higher", floor=0.01)),
    "MemoryUsage(Mi)": ("memory_bytes", 2**20, SignalMeta("bytes", "higher")),
    "PodServerLatencyP90(s)": ("latency_p90_ms", 1e3, SignalMeta("ms", "higher", floor=1.0)),
    "PodServerLatencyP99(s)": ("latency_p99_ms", 1e3, SignalMeta("ms", "higher", floor=1.0)),
    "PodWorkload(Ops)": ("throughput_rps", 1.0, SignalMeta("req/s", "lower")),
    "NetworkReceiveBytes": ("network_receive_bytes", 1.0, SignalMeta("B/s", "either")),
    "NetworkTransmitBytes": ("network_transmit_bytes", 1.0, SignalMeta("B/s", "either")),
}
# Windows of one-minute data: the incident starts a little before the alert and the logs and
# traces cover about three minutes from the injection.
POLICY = WindowPolicy(
    lead=timedelta(minutes=2),
    tail_min=timedelta(minutes=4),
    max_incident=timedelta(minutes=4),
    baseline=timedelta(hours=1),
    gap=timedelta(minutes=1),
)
ALERT_SEARCH = (timedelta(minutes=-1), timedelta(minutes=3))


@dataclass(slots=True)
class Case:
    name: str
    truth: str
    fault: str
    inject_time: datetime
    onset: datetime
    alert: str
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


def _read_metrics(day: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((day / "metric").glob("*_metric.csv")):
        frame = pd.read_csv(path)
        if "PodName" not in frame.columns or "TimeStamp" not in frame.columns:
            continue
        time = pd.to_datetime(frame["TimeStamp"], unit="s", utc=True)
        service = frame["PodName"].map(service_of_pod)
        for column, (signal, factor, _) in POD_SIGNALS.items():
            if column in frame.columns:
                rows.append(
                    pd.DataFrame(
                        {
                            "time": time,
                            "service": service,
                            "signal": signal,
                            "value": pd.to_numeric(frame[column], errors="coerce") * factor,
                        }
                    )
                )
    if not rows:
        return empty(("time", "service", "signal", "value"))
    return pd.concat(rows, ignore_index=True).dropna(subset=["value"])


def _minute_files(folder: Path, kind: str, start: datetime, minutes: int) -> list[Path]:
    names = [f"{(start + timedelta(minutes=i)):%H_%M}_{kind}.csv" for i in range(minutes)]
    return [folder / n for n in names if (folder / n).exists()]


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


def read_logs(paths: list[Path], shift: timedelta = timedelta(0)) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype=str) for p in paths]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty(LOG_COLUMNS)
    raw = pd.concat(frames, ignore_index=True)
    return pd.DataFrame(
        {
            "time": pd.to_datetime(pd.to_numeric(raw["TimeUnixNano"]), unit="ns", utc=True) + shift,
            "service": raw["PodName"].map(service_of_pod),
            "line": raw["Log"].map(_unwrap),
            "trace_id": raw["TraceID"].fillna(""),
        }
    )


def read_spans(paths: list[Path], shift: timedelta = timedelta(0)) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype={"TraceID": str, "SpanID": str, "ParentID": str}) for p in paths]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty(SPAN_COLUMNS)
    raw = pd.concat(frames, ignore_index=True)
    parent = raw["ParentID"].fillna("")
    return pd.DataFrame(
        {
            "trace_id": raw["TraceID"],
            "span_id": raw["SpanID"],
            "parent_id": parent.where(parent != "root", ""),
            "service": raw["PodName"].map(service_of_pod),
            "operation": raw["OperationName"].fillna(""),
            "start": pd.to_datetime(raw["StartTimeUnixNano"], unit="ns", utc=True) + shift,
            "duration_ms": pd.to_numeric(raw["Duration"], errors="coerce").fillna(0) / 1e3,
            "error": False,
        }
    )


def alert_onset(front: pd.DataFrame, injected: datetime) -> tuple[datetime, str]:
    """When a front-end rule fires: success rate below, or latency above, its previous hour's
    normal range (median ± max(3 robust sigma, 20%)), first in the minutes around the injection."""
    if front.empty:
        return injected, "injection time (no front-end metrics)"
    time = pd.to_datetime(front["TimeStamp"], unit="s", utc=True)
    before = front[
        (time >= injected - timedelta(hours=1)) & (time < injected - timedelta(minutes=1))
    ]
    around = front[(time >= injected + ALERT_SEARCH[0]) & (time <= injected + ALERT_SEARCH[1])]
    rules = [
        ("LatencyP90(s)", "higher", "FrontendLatencyHigh"),
        ("SuccessRate(%)", "lower", "FrontendErrorsHigh"),
    ]
    fired: list[tuple[datetime, str]] = []
    for column, worse, name in rules:
        if column not in front.columns or len(before) < 5:
            continue
        history = pd.to_numeric(before[column], errors="coerce").dropna().to_numpy(float)
        if len(history) < 5:
            continue
        median = float(np.median(history))
        margin = max(3 * robust_scale(history), 0.2 * abs(median))
        values = pd.to_numeric(around[column], errors="coerce")
        breach = values > median + margin if worse == "higher" else values < median - margin
        hits = time[around.index][breach.to_numpy()]
        if len(hits):
            fired.append((hits.min().to_pydatetime(), name))
    if not fired:
        return injected, "injection time (no front-end rule breached)"
    return min(fired)


def cases(root: Path) -> Iterator[Case]:
    """Every fault of every day under `root`, in order."""
    for day in _days(root):
        fault_list = json.loads(next(day.glob("*fault_list.json")).read_text())
        metrics = _read_metrics(day)
        front_path = day / "metric" / "front_service.csv"
        front = pd.read_csv(front_path) if front_path.exists() else pd.DataFrame()
        normal = root / "construct_data" / day.name
        normal_logs = sorted((normal / "log").glob("*.csv")) if normal.exists() else []
        normal_traces = sorted((normal / "trace").glob("*.csv")) if normal.exists() else []
        signals = {signal: meta for signal, _, meta in POD_SIGNALS.values()}
        for hour in sorted(fault_list):
            for fault in fault_list[hour]:
                injected = _utc(fault["inject_time"])
                onset, alert = alert_onset(front, injected)
                windows = incident_windows(onset, onset + POLICY.tail_min, POLICY)
                yield _case(
                    day,
                    fault,
                    injected,
                    onset,
                    alert,
                    windows,
                    metrics,
                    signals,
                    normal_logs,
                    normal_traces,
                )


def _case(
    day: Path,
    fault: dict[str, str],
    injected: datetime,
    onset: datetime,
    alert: str,
    windows: Windows,
    metrics: pd.DataFrame,
    signals: dict[str, SignalMeta],
    normal_logs: list[Path],
    normal_traces: list[Path],
) -> Case:
    minute = injected.replace(second=0)
    first = minute - timedelta(minutes=1)
    count = int((windows.incident_end - first) / timedelta(minutes=1)) + 1
    logs = read_logs(_minute_files(day / "log", "log", first, count))
    spans = read_spans(_minute_files(day / "trace", "trace", first, count))
    # The fault-free recording, moved to end where the baseline ends: "normal", just before.
    baseline_logs = read_logs(normal_logs)
    baseline_spans = read_spans(normal_traces)
    last = pd.concat([baseline_logs["time"], baseline_spans["start"]]).max()
    if pd.notna(last):
        shift = windows.baseline_end - (last + pd.Timedelta(seconds=1)).to_pydatetime(warn=False)
        baseline_logs = baseline_logs.assign(time=baseline_logs["time"] + shift)
        baseline_spans = baseline_spans.assign(start=baseline_spans["start"] + shift)
    t = metrics["time"]
    telemetry = Telemetry(
        metrics=metrics[(t >= windows.baseline_start) & (t <= windows.incident_end)],
        logs=pd.concat([baseline_logs, logs], ignore_index=True),
        spans=pd.concat([baseline_spans, spans], ignore_index=True),
        signals=signals,
    )
    return Case(
        name=f"{day.name} {fault['inject_time']}",
        truth=service_of_pod(fault["inject_pod"]),
        fault=str(fault.get("inject_type", "unknown")),
        inject_time=injected,
        onset=onset,
        alert=alert,
        telemetry=telemetry,
        windows=windows,
    )
