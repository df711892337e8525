"""Webhook payloads for tests: the recorded Alertmanager ones and a builder for more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).resolve().parents[3] / "shared" / "contracts"
ALERTMANAGER_CONTRACTS = CONTRACTS / "alertmanager"


def recorded(name: str) -> dict[str, Any]:
    """A payload recorded from Alertmanager 0.25 (../shared/contracts/alertmanager)."""
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
