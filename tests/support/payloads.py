"""Webhook payloads for tests: the recorded Alertmanager ones and a builder for more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
ALERTMANAGER_CONTRACTS = CONTRACTS / "alertmanager"


def recorded(name: str) -> dict[str, Any]:
    """A payload recorded from Alertmanager 0.25 or 0.35 (tests/contracts/alertmanager)."""
    data: dict[str, Any] = json.loads((ALERTMANAGER_CONTRACTS / name).read_text())
    return data


def captures() -> list[dict[str, Any]]:
    """Every request Alertmanager 0.25 sent in the recorded session, in order."""
    lines = (ALERTMANAGER_CONTRACTS / "am0.25-webhook-captures.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def alert(
    fingerprint: str,
    *,
    status: str = "firing",
    starts_at: str = "2026-11-26T03:59:53Z",
    ends_at: str = "0001-01-01T00:00:00Z",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels
        if labels is not None
        else {"alertname": "HighCPU", "instance": fingerprint},
        "annotations": annotations if annotations is not None else {"summary": "CPU high"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def payload(
    alerts: list[dict[str, Any]],
    *,
    receiver: str = "team-web",
    group_key: str = '{}:{alertname="HighCPU"}',
    status: str | None = None,
    truncated: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    body = {
        "receiver": receiver,
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "HighCPU"},
        "commonLabels": {"alertname": "HighCPU"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
    }
    body.update(extra)
    return body


RUNBOOKS = "https://runbooks.prometheus-operator.dev/runbooks"
PROMETHEUS_K8S = "http://prometheus-k8s.monitoring:9090"


def big_group(count: int, *, app: str = "checkout") -> dict[str, Any]:
    """One group of `count` alerts with the labels and annotations a Kubernetes alert rule
    typically gives (a big outage: every pod of every service alerting at once)."""
    alerts = []
    for n in range(count):
        labels = {
            "alertname": "KubePodNotReady",
            "severity": "warning",
            "namespace": "shop",
            "app": app,
            "pod": f"{app}-7d9c6b5f4-{n:05d}",
            "container": app,
            "instance": f"10.42.{n // 250}.{n % 250}:8080",
            "job": "kube-state-metrics",
            "node": f"node-{n % 40:02d}.eu-west-1.compute.internal",
            "prometheus": "monitoring/k8s",
        }
        annotations = {
            "summary": f"Pod shop/{labels['pod']} has been in a non-ready state for 15 minutes.",
            "description": f"Pod shop/{labels['pod']} on {labels['node']} is not ready: "
            "readiness probe failed with HTTP 503 for more than 15 minutes.",
            "runbook_url": f"{RUNBOOKS}/kubernetes/kubepodnotready",
        }
        alerts.append(
            alert(f"{n:016x}", labels=labels, annotations=annotations)
            | {"generatorURL": f"{PROMETHEUS_K8S}/graph?g0.expr=kube_pod_status_ready"}
        )
    return payload(alerts, group_key='{}:{alertname="KubePodNotReady"}')
