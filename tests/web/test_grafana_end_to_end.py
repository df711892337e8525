"""End to end inside one service: correlator provisions a Grafana-managed rule and its contact
point (through `serve`'s provisioning loop, against the Grafana test server); the notification
Grafana would send for that rule, with the contact point's own URL and credentials, becomes an
incident whose correlation is scoped to the rule's WebApplication."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from correlator.provisioning.notifications import CONTACT_POINT_NAME, CONTACT_POINT_UID
from tests.fakes.grafana import FakeGrafana
from tests.support.servers import served

TOKEN = "intake-t0ken-with-enough-entropy"


def _manifest(directory: Path) -> None:
    app = {
        "apiVersion": "platform.correlator.dev/v1alpha1",
        "kind": "WebApplication",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "image": "registry.example/checkout:1.0.0",
            "team": "payments",
            "slo": {"availability": 99.9},
            "alerting": {"grafanaManaged": True},
        },
    }
    (directory / "checkout.yaml").write_text(yaml.safe_dump(app))


def _grafana_notification(rule: dict[str, Any]) -> dict[str, Any]:
    """What Grafana's webhook sends when this rule fires: its labels, with `alertname` set to
    the rule's title and `grafana_folder` added, as Grafana does."""
    labels = {**rule["labels"], "alertname": rule["title"], "grafana_folder": "payments"}
    return {
        "receiver": "correlator",
        "status": "firing",
        "orgId": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": rule["annotations"],
                "startsAt": "2026-11-30T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://grafana.example/alerting/grafana/{rule['uid']}/view",
                "fingerprint": "0123456789abcdef",
                "silenceURL": "http://grafana.example/alerting/silence/new",
                "dashboardURL": "",
                "panelURL": "",
                "values": {"A": 0.08, "C": 1},
            }
        ],
        "groupLabels": {"alertname": rule["title"], "grafana_folder": "payments"},
        "commonLabels": labels,
        "commonAnnotations": rule["annotations"],
        "externalURL": "http://grafana.example/",
        "version": "1",
        "groupKey": f'{{}}:{{alertname="{rule["title"]}"}}',
        "truncatedAlerts": 0,
        "title": f"[FIRING:1] {rule['title']}",
        "state": "alerting",
        "message": "",
    }


async def test_a_provisioned_rules_notification_is_correlated_within_its_webapp(
    app_client: Any, tmp_path: Path
) -> None:
    fake = FakeGrafana()
    apps = tmp_path / "apps"
    apps.mkdir()
    _manifest(apps)
    async with served(fake.app) as grafana_url:
        client = await app_client(
            auth={"bearer_token": TOKEN},
            provisioning={
                "source_dir": str(apps),
                "target": "grafana",
                "grafana_url": grafana_url,
                "grafana_token": fake.token,
                "public_url": "http://correlator.example:8080",
            },
            leader={"election": "none"},
        )

        def paging_rules() -> list[dict[str, Any]]:
            return [r for r in fake.rules.values() if "Page" in r["title"]]

        # The rules are written one by one: wait for the one this test posts as, not any.
        for _ in range(400):
            if CONTACT_POINT_UID in fake.contact_points and paging_rules():
                break
            await asyncio.sleep(0.05)
        point = fake.contact_points[CONTACT_POINT_UID]["settings"]
        assert point["url"] == "http://correlator.example:8080/api/v1/alerts"
        rules = paging_rules()
        assert rules, f"no paging rule provisioned: {[r['title'] for r in fake.rules.values()]}"
        rule = rules[0]
        assert rule["notification_settings"] == {"receiver": CONTACT_POINT_NAME}

        headers = {
            "Authorization": f"{point['authorization_scheme']} {point['authorization_credentials']}"
        }
        answer = await client.post(
            "/api/v1/alerts", json=_grafana_notification(rule), headers=headers
        )
        assert answer.status == 200, await answer.text()
        url = (await answer.json())["incident_url"]
        report = None
        for _ in range(400):
            detail = await (await client.get(url, headers=headers)).json()
            if (report := detail["report"]) is not None:
                break
            await asyncio.sleep(0.05)
        assert report is not None, "no report"
        assert report["scope"]["alerting"] == ["checkout"]
        assert detail["alerts"][0]["details"]["values"] == {"A": 0.08, "C": 1.0}
