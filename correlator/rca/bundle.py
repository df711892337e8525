"""Incident bundles: one incident's telemetry in a directory, analysed offline (I/O: files).

    BUNDLE/
      alert.json     the Alertmanager webhook payload (version 4) that fired
      metrics.om     signal series in OpenMetrics text: one family per signal, e.g.
                     `error_ratio{service="checkout"} 0.12 1767225600`; every sample has a
                     timestamp (seconds); the service is the `service` label (or `app`,
                     `destination_workload`, or a `pod` reduced to its Deployment)
      logs.jsonl     one JSON object per line: {"time": RFC 3339 or Unix ns, "labels": {...},
                     "line": "..."}; the service is the `app` or `service` label
      traces.json    OTLP JSON ({"resourceSpans": [...]}, as Jaeger api_v3 answers) or Jaeger
                     JSON ({"data": [...]}, as the v1 API answers)
      replicas.om    optional: per-replica series, as metrics.om with an `instance` label
      bundle.json    optional: {"now": RFC 3339 (when the analysis runs; default: the last
                     sample), "signals": {"name": {"unit": "...", "worse_when": "higher",
                     "query": "...", "floor": 0.0}}, "windows": {"baseline_start", …, "onset"}
                     (the windows a live analysis used; default: derived from the alert and
                     now), "edges": [["caller", "callee"], …]}
      truth.json     optional: {"service": "...", "fault": "..."} for scoring

Every file but alert.json is optional; a malformed one is a BundleError naming file and line.
The same files in a tar.gz (as `GET /api/v1/incidents/{id}/bundle` serves them) load as well:
correlator/rca/bundle_write.py writes both.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from pydantic import ValidationError

from correlator.analysis.scope import candidate_names
from correlator.analysis.telemetry import (
    REPLICA_COLUMNS,
    SignalMeta,
    Telemetry,
    empty,
    log_frame,
    metric_frame,
    span_frame,
)
from correlator.analysis.windows import WindowPolicy, Windows, incident_windows
from correlator.backends.jaeger_spans import MalformedSpans, parse_otlp, parse_v1
from correlator.models.alerts import AlertStatus, WebhookPayload
from correlator.rca.bundle_write import ArchiveError, unpack
from correlator.signals import DEFAULT_SIGNALS

MAX_FILE_BYTES = 512 * 1024 * 1024


class BundleError(ValueError):
    """A bundle that cannot be read; the message names the file and what is wrong."""


@dataclass(slots=True)
class Bundle:
    path: Path | None  # None: read from the store's form (rca/frames.py)
    alert: WebhookPayload
    telemetry: Telemetry
    windows: Windows
    truth: dict[str, Any] | None


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise BundleError(f"{path.name}: larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path.name}: not UTF-8 text ({exc.reason})") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path.name}: line {exc.lineno}: {exc.msg}") from None


def _time(value: Any, where: str) -> datetime:
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            number = int(value)
            seconds = number / 1e9 if number > 10**14 else float(number)
            return datetime.fromtimestamp(seconds, UTC)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise BundleError(f"{where}: {str(value)[:60]!r} is not a time") from None
    if parsed.tzinfo is None:
        raise BundleError(f"{where}: {value!r} has no time zone")
    return parsed.astimezone(UTC)


def _service(labels: dict[str, str]) -> str:
    if labels.get("service"):
        return labels["service"]
    names = candidate_names(labels)
    return names[0] if names else ""


def _samples(path: Path) -> list[tuple[datetime, dict[str, str], str, float]]:
    rows = []
    try:
        for family in text_string_to_metric_families(_read(path)):  # type: ignore[no-untyped-call]
            for sample in family.samples:
                if sample.timestamp is None:
                    raise BundleError(f"{path.name}: sample {sample.name} has no timestamp")
                if math.isnan(sample.value):  # an infinity is a value a query can answer
                    continue
                moment = datetime.fromtimestamp(float(sample.timestamp), UTC)
                rows.append((moment, dict(sample.labels), family.name, sample.value))
    except BundleError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise BundleError(f"{path.name}: not OpenMetrics text: {exc}") from None
    return rows


def _metrics(path: Path) -> pd.DataFrame:
    return metric_frame(
        (moment, _service(labels), name, value) for moment, labels, name, value in _samples(path)
    )


def _replicas(path: Path) -> pd.DataFrame:
    rows = [
        (moment, _service(labels), labels.get("instance", ""), name, value)
        for moment, labels, name, value in _samples(path)
    ]
    frame = pd.DataFrame(rows, columns=list(REPLICA_COLUMNS))
    if frame.empty:
        return empty(REPLICA_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[ns, UTC]")
    return frame


def _logs(path: Path) -> pd.DataFrame:
    rows = []
    for number, text in enumerate(_read(path).splitlines(), 1):
        if not text.strip():
            continue
        where = f"{path.name}: line {number}"
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{where}: {exc.msg}") from None
        if not isinstance(item, dict) or not isinstance(item.get("line"), str):
            raise BundleError(f"{where}: expected an object with a string 'line'")
        labels = item.get("labels") or {}
        if not isinstance(labels, dict):
            raise BundleError(f"{where}: 'labels' must be an object")
        labels = {str(k): str(v) for k, v in labels.items()}
        trace_id = str(item.get("trace_id") or labels.get("trace_id") or "")
        rows.append((_time(item.get("time"), where), _service(labels), item["line"], trace_id))
    return log_frame(rows)


def _spans(path: Path) -> pd.DataFrame:
    document = _json(path)
    try:
        if isinstance(document, dict) and "resourceSpans" in document:
            spans = parse_otlp(document)
        elif isinstance(document, dict) and isinstance(document.get("result"), dict):
            spans = parse_otlp(document["result"])
        elif isinstance(document, dict) and isinstance(document.get("data"), list):
            spans = parse_v1(document["data"])
        else:
            raise BundleError(f"{path.name}: neither OTLP JSON nor Jaeger JSON")
    except MalformedSpans as exc:
        raise BundleError(f"{path.name}: {exc}") from None
    return span_frame(
        {
            "trace_id": s.trace_id,
            "span_id": s.span_id,
            "parent_id": s.parent_span_id or "",
            "service": s.service,
            "operation": s.operation,
            "start": s.start,
            "duration_ms": s.duration_ms,
            "error": s.error,
            "kind": s.kind,
        }
        for s in spans
    )


def load(path: Path, policy: WindowPolicy = WindowPolicy()) -> Bundle:  # noqa: B008
    """The bundle in directory `path`, or in the tar.gz file `path`."""
    if path.is_file():
        return _load_archive(path, policy)
    if not path.is_dir():
        raise BundleError(f"{path}: not a directory")
    if not (path / "alert.json").exists():
        raise BundleError(f"{path}: no alert.json")
    try:
        alert = WebhookPayload.model_validate(_json(path / "alert.json"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"alert.json: {where}: {first['msg']}") from None
    meta = _json(path / "bundle.json") if (path / "bundle.json").exists() else {}
    if not isinstance(meta, dict):
        raise BundleError("bundle.json: expected an object")
    telemetry = telemetry_from_meta(meta)
    if (path / "metrics.om").exists():
        telemetry.metrics = _metrics(path / "metrics.om")
    if (path / "replicas.om").exists():
        telemetry.replicas = _replicas(path / "replicas.om")
    if (path / "logs.jsonl").exists():
        telemetry.logs = _logs(path / "logs.jsonl")
    if (path / "traces.json").exists():
        telemetry.spans = _spans(path / "traces.json")
    telemetry = replace(telemetry)  # built again: the frames read are typed as live ones are
    firing = [a for a in alert.alerts if a.status == AlertStatus.FIRING] or alert.alerts
    onset = min(a.starts_at for a in firing)
    if "now" in meta:
        now = _time(meta["now"], "bundle.json: now")
    else:
        ends = [f[c].max() for f, c in ((telemetry.metrics, "time"), (telemetry.logs, "time"))]
        ends += [telemetry.spans["start"].max()]
        known = [e.to_pydatetime() for e in ends if pd.notna(e)]
        now = max(known) if known else onset
    truth = _json(path / "truth.json") if (path / "truth.json").exists() else None
    if isinstance(meta.get("windows"), dict):
        windows = _windows(meta["windows"])
    else:
        windows = incident_windows(onset, now, policy)
    return Bundle(path, alert, telemetry, windows, truth)


def telemetry_from_meta(meta: dict[str, Any]) -> Telemetry:
    """A Telemetry with no frames yet: the signals (the defaults, then bundle.json's; only
    bundle.json's in one correlator wrote, which lists all the analysis had) and the call
    graph's edges."""
    signals: dict[str, SignalMeta] = {}
    if "format" not in meta:
        signals = {s.name: SignalMeta(s.unit, s.worse_when) for s in DEFAULT_SIGNALS}
    for name, spec in (meta.get("signals") or {}).items():
        if not isinstance(spec, dict) or spec.get("worse_when", "higher") not in {
            "higher",
            "lower",
            "either",
        }:
            raise BundleError(f"bundle.json: signals.{name}: worse_when is higher|lower|either")
        try:
            floor = float(spec.get("floor", 0.0))
        except (TypeError, ValueError):
            raise BundleError(f"bundle.json: signals.{name}: floor is a number") from None
        signals[str(name)] = SignalMeta(
            str(spec.get("unit", "")),
            spec.get("worse_when", "higher"),
            str(spec.get("query", "")),
            floor,
        )
    return Telemetry(signals=signals, edges=_edges(meta.get("edges") or []))


def windows_from_meta(meta: dict[str, Any]) -> Windows:
    """The windows bundle.json keeps (a bundle correlator wrote always has them)."""
    if not isinstance(meta.get("windows"), dict):
        raise BundleError("bundle.json: no windows")
    return _windows(meta["windows"])


def _windows(stored: dict[str, Any]) -> Windows:
    """The windows a live analysis used, as bundle.json keeps them."""
    names = ("baseline_start", "baseline_end", "incident_start", "incident_end", "onset")
    moments = {n: _time(stored.get(n), f"bundle.json: windows.{n}") for n in names}
    return Windows(**moments)


def _edges(stored: Any) -> set[tuple[str, str]]:
    if not isinstance(stored, list) or not all(
        isinstance(e, list) and len(e) == 2 and all(isinstance(s, str) for s in e) for e in stored
    ):
        raise BundleError('bundle.json: edges is a list of ["caller", "callee"]')
    return {(caller, callee) for caller, callee in stored}


def _load_archive(path: Path, policy: WindowPolicy) -> Bundle:
    """A bundle packed as a tar.gz (what the API serves): unpacked to a temporary directory."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise BundleError(f"{path.name}: larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        files = unpack(path.read_bytes(), max_file_bytes=MAX_FILE_BYTES)
    except ArchiveError as exc:
        raise BundleError(f"{path.name}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="correlator-bundle-") as directory:
        for name, content in files.items():
            (Path(directory) / name).write_bytes(content)
        bundle = load(Path(directory), policy)
    bundle.path = path
    return bundle
