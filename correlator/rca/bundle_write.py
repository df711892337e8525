"""Writing incident bundles: the frames an analysis used, in the format `bundle.load` reads
(I/O: bytes and files).

A bundle written here holds what `load` needs to rank exactly as the live analysis did: the
windows it used (stored, not derived again), the signal catalogue with each signal's query and
floor, the call graph's edges, and the per-replica series beside the services' series. It is
packed as a tar.gz (`pack`) for the store and the API; `unpack` is its careful reverse (only the
bundle's own file names, regular files, each within a size limit).

    metrics.om / replicas.om   OpenMetrics text, one `unknown` family per signal, values as
                               Python writes floats (they read back bit for bit)
    logs.jsonl                 {"time": Unix ns, "labels": {"service": …}, "line", "trace_id"}
    traces.json                OTLP JSON; spans keep their order (one resource per run of a
                               service)
    bundle.json                format 2: now, windows, signals, edges, kinds, and what the
                               analysis was for (incident, app, team, version)
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from correlator import __version__
from correlator.analysis.telemetry import Telemetry
from correlator.analysis.windows import WindowPolicy, Windows
from correlator.backends.jaeger_spans import ERROR_STATUS, SPAN_KINDS
from correlator.models.incidents import IncidentAlerts

FORMAT = 2
KINDS = ("metrics", "logs", "traces")
FILES = (
    "alert.json",
    "bundle.json",
    "metrics.om",
    "replicas.om",
    "logs.jsonl",
    "traces.json",
    "truth.json",
)
_KIND_NUMBERS = {name: number for number, name in SPAN_KINDS.items()}


class ArchiveError(ValueError):
    """A tar.gz that is not a bundle this module wrote (or one within the limits)."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def windows_document(windows: Windows) -> dict[str, str]:
    return {
        "baseline_start": _iso(windows.baseline_start),
        "baseline_end": _iso(windows.baseline_end),
        "incident_start": _iso(windows.incident_start),
        "incident_end": _iso(windows.incident_end),
        "onset": _iso(windows.onset),
    }


def policy_document(policy: WindowPolicy) -> dict[str, float]:
    """The window policy in seconds (what placed the windows, given the onset and now)."""
    return {
        "lead_s": policy.lead.total_seconds(),
        "tail_min_s": policy.tail_min.total_seconds(),
        "max_incident_s": policy.max_incident.total_seconds(),
        "baseline_s": policy.baseline.total_seconds(),
        "gap_s": policy.gap.total_seconds(),
    }


def alert_payload(incident: IncidentAlerts) -> dict[str, Any]:
    """The incident's alerts as the Alertmanager webhook payload (version 4) `load` reads."""
    alerts = incident.alerts or []
    return {
        "version": "4",
        "receiver": incident.receiver or "correlator",
        "status": incident.status.value,
        "groupKey": incident.group_key or f"incident-{incident.id}",
        "groupLabels": incident.group_labels,
        "commonLabels": incident.common_labels,
        "commonAnnotations": incident.common_annotations,
        "externalURL": incident.external_url,
        "truncatedAlerts": incident.truncated_alerts,
        "alerts": [
            {
                "status": a.status.value,
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": _iso(a.starts_at),
                "endsAt": _iso(a.ends_at) if a.ends_at else "0001-01-01T00:00:00Z",
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ]
        or [
            {
                "status": incident.status.value,
                "labels": incident.common_labels,
                "annotations": {},
                "startsAt": _iso(incident.started_at),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "0000000000000000",
            }
        ],
    }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _seconds(times: pd.Series) -> pd.Series:
    """Unix seconds with nanoseconds, as text (exact: no float in between)."""
    ns = times.astype("int64")
    return (ns // 10**9).astype(str) + "." + (ns % 10**9).astype(str).str.zfill(9)


def _openmetrics(frame: pd.DataFrame, labels: list[str]) -> str:
    """One `unknown` family per signal, in the order signals first appear; within it one
    series after another, each in time order (as OpenMetrics wants a series' samples)."""
    if frame.empty:
        return "# EOF\n"
    names = list(dict.fromkeys(frame["signal"]))
    order = {name: position for position, name in enumerate(names)}
    keys = frame[labels].astype(str)
    keys = keys.assign(_signal=frame["signal"].map(order), _time=frame["time"].astype("int64"))
    keys = keys.reset_index(drop=True)  # positions: a frame's index may repeat
    frame = frame.iloc[keys.sort_values(["_signal", *labels, "_time"], kind="stable").index]
    text = pd.Series("{", index=frame.index)
    for position, label in enumerate(labels):
        escaped = frame[label].astype(str).map(_label)
        text = text + ("," if position else "") + label + '="' + escaped + '"'
    values = frame["value"].map(lambda v: repr(float(v)).replace("inf", "Inf"))
    values = values.str.replace("nan", "NaN", regex=False)
    lines = frame["signal"] + text + "} " + values + " " + _seconds(frame["time"])
    out: list[str] = []
    for name in names:
        out.append(f"# TYPE {name} unknown")
        out.extend(lines[frame["signal"] == name])
    return "\n".join(out) + "\n# EOF\n"


def _logs(frame: pd.DataFrame) -> str:
    ns = frame["time"].astype("int64")
    dumps = json.dumps
    return "".join(
        dumps(
            {"time": int(t), "labels": {"service": s}, "line": line, "trace_id": trace},
            ensure_ascii=False,
        )
        + "\n"
        for t, s, line, trace in zip(
            ns, frame["service"], frame["line"], frame["trace_id"], strict=True
        )
    )


def _traces(frame: pd.DataFrame) -> str:
    resources: list[dict[str, Any]] = []
    current: str | None = None
    spans: list[dict[str, Any]] = []
    columns = (
        frame["service"],
        frame["trace_id"],
        frame["span_id"],
        frame["parent_id"],
        frame["operation"],
        frame["kind"],
        frame["start"].astype("int64"),
        frame["duration_ms"],
        frame["error"],
    )
    for service, trace, span_id, parent, operation, kind, start_ns, duration, error in zip(
        *columns, strict=True
    ):
        if service != current or not resources:
            current = str(service)
            spans = []
            resources.append(
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": current}}]
                    },
                    "scopeSpans": [{"spans": spans}],
                }
            )
        span: dict[str, Any] = {
            "traceId": trace,
            "spanId": span_id,
            "name": operation,
            "kind": _KIND_NUMBERS.get(str(kind), 0),
            "startTimeUnixNano": str(int(start_ns)),
            "endTimeUnixNano": str(int(start_ns) + round(float(duration) * 1e6)),
        }
        if parent:
            span["parentSpanId"] = parent
        if error:
            span["status"] = {"code": ERROR_STATUS}
        spans.append(span)
    return json.dumps({"resourceSpans": resources}, separators=(",", ":"))


def bundle_files(
    *,
    alert: Mapping[str, Any],
    telemetry: Telemetry,
    windows: Windows,
    kinds: Iterable[str] = KINDS,
    about: Mapping[str, Any] | None = None,
    truth: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """The bundle's files: the alert, the frames of the `kinds` kept, and bundle.json with the
    windows, signals and edges the analysis used (`about`: what it was for, kept as is)."""
    kept = [kind for kind in KINDS if kind in set(kinds)]
    t = telemetry
    files = {
        "alert.json": json.dumps(alert, indent=1).encode(),
        "bundle.json": json.dumps(bundle_meta(t, windows, kept, about), indent=1).encode(),
    }
    if "metrics" in kept:
        files["metrics.om"] = _openmetrics(t.metrics, ["service"]).encode()
        if not t.replicas.empty:
            files["replicas.om"] = _openmetrics(t.replicas, ["service", "instance"]).encode()
    if "logs" in kept:
        files["logs.jsonl"] = _logs(t.logs).encode()
    if "traces" in kept:
        files["traces.json"] = _traces(t.spans).encode()
    if truth is not None:
        files["truth.json"] = json.dumps(dict(truth), indent=1).encode()
    return files


def bundle_meta(
    t: Telemetry, windows: Windows, kept: Sequence[str], about: Mapping[str, Any] | None
) -> dict[str, Any]:
    """bundle.json: the windows, signals and edges the analysis used, the kinds kept, and
    `about` (what it was for) as given."""
    return {
        "format": FORMAT,
        "now": _iso(windows.incident_end),
        "windows": windows_document(windows),
        "signals": {
            name: {
                "unit": s.unit,
                "worse_when": s.worse_when,
                "query": s.query,
                "floor": s.floor,
            }
            for name, s in t.signals.items()
        },
        "edges": sorted([caller, callee] for caller, callee in t.edges),
        "kinds": list(kept),
        "version": __version__,
        **(about or {}),
    }


def pack(files: Mapping[str, bytes], *, level: int = 6) -> bytes:
    """The files as a tar.gz (fixed times and owners: the same files, the same bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=level) as archive:
        for name in FILES:
            if name not in files:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def unpack(data: bytes, *, max_file_bytes: int) -> dict[str, bytes]:
    """The files of a bundle's tar.gz: only its own names, regular files within the limit."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if name in ("", ".") and member.isdir():
                    continue
                if name not in FILES or not member.isfile():
                    raise ArchiveError(f"{member.name[:80]!r} is not a file of a bundle")
                if member.size > max_file_bytes:
                    raise ArchiveError(f"{name}: larger than {max_file_bytes // 2**20} MiB")
                handle = archive.extractfile(member)
                assert handle is not None
                files[name] = handle.read(max_file_bytes + 1)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a tar.gz: {exc}") from None
    return files


def write(files: Mapping[str, bytes], directory: Path) -> Path:
    """The files in `directory` (created), as `correlator analyze DIR` reads them."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory
