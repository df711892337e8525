"""Incident bundles for tests: written from a scenario, and loaded into the real Prometheus
(promtool backfill) and the Loki and Jaeger test servers, so that the online pipeline and
`correlator analyze` read the same incident."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.jaeger import FakeJaeger, FakeSpan
from tests.fakes.loki import FakeLoki
from tests.support.scenarios import HISTORY, STEP_S, Scenario

SIGNALS = ("error_ratio", "latency_p99_ms", "throughput_rps", "cpu_throttled_ratio")


def write_bundle(scenario: Scenario, now: datetime, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    onset = scenario.fault_at + timedelta(minutes=1)
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "SloBurn",
            "destination_workload": scenario.alerting,
            "destination_workload_namespace": scenario.namespace,
        },
        "annotations": {},
        "startsAt": onset.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "0123456789abcdef",
    }
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "correlator",
        "groupKey": '{}:{alertname="SloBurn"}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "SloBurn"},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": [alert],
    }
    (directory / "alert.json").write_text(json.dumps(payload, indent=1))
    (directory / "metrics.om").write_text(_signals(scenario, now))
    with (directory / "logs.jsonl").open("w") as out:
        for labels, lines in scenario.log_streams(now):
            for moment, line in lines:
                out.write(json.dumps({"time": int(moment * 1e9), "labels": labels, "line": line}))
                out.write("\n")
    fake = FakeJaeger()
    (directory / "traces.json").write_text(json.dumps(fake._otlp(scenario.spans(now))))
    (directory / "bundle.json").write_text(json.dumps({"now": now.isoformat()}))
    (directory / "truth.json").write_text(json.dumps({"service": scenario.culprit}))
    return directory


def _signals(scenario: Scenario, now: datetime) -> str:
    values: dict[str, dict[str, list[str]]] = {name: {} for name in SIGNALS}
    moment = now - HISTORY
    while moment <= now:
        for service in scenario.services:
            b = scenario.behaviour(service, moment)
            labels = f'namespace="{scenario.namespace}",service="{service}"'
            for name, value in (
                ("error_ratio", b.error_ratio),
                ("latency_p99_ms", b.latency_ms),
                ("throughput_rps", b.rps),
                ("cpu_throttled_ratio", b.throttled),
            ):
                line = f"{name}{{{labels}}} {value} {moment.timestamp():.3f}"
                values[name].setdefault(service, []).append(line)
        moment += timedelta(seconds=STEP_S)
    out = []
    for name, series in values.items():
        out.append(f"# TYPE {name} gauge")
        for lines in series.values():
            out += lines
    return "\n".join(out) + "\n# EOF\n"


def load_into(bundle: Path, loki: FakeLoki, jaeger: FakeJaeger) -> str:
    """Fill the test servers from a bundle; returns its OpenMetrics text for promtool."""
    streams: dict[tuple[tuple[str, str], ...], list[tuple[float, str]]] = {}
    for text in (bundle / "logs.jsonl").read_text().splitlines():
        item = json.loads(text)
        key = tuple(sorted(item["labels"].items()))
        streams.setdefault(key, []).append((int(item["time"]) / 1e9, item["line"]))
    for key, lines in streams.items():
        loki.add(dict(key), lines)
    document: dict[str, Any] = json.loads((bundle / "traces.json").read_text())
    for resource in document["resourceSpans"]:
        service = resource["resource"]["attributes"][0]["value"]["stringValue"]
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                start = int(span["startTimeUnixNano"])
                jaeger.add(
                    FakeSpan(
                        span["traceId"],
                        span["spanId"],
                        service,
                        span["name"],
                        start,
                        int(span["endTimeUnixNano"]) - start,
                        parent_span_id=span.get("parentSpanId"),
                        error=span.get("status", {}).get("code") == 2,
                    )
                )
    return (bundle / "metrics.om").read_text()
