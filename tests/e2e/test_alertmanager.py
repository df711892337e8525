"""Alertmanager 0.25 (Debian's) delivering real notifications to `correlator serve`."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.e2e.conftest import Deployment
from tests.support.databases import write_lock


def test_firing_alert_is_stored_as_an_incident(deployment: Deployment, alertname: str) -> None:
    deployment.alertmanager.fire(
        {"alertname": alertname, "namespace": "shop", "severity": "page"},
        annotations={"summary": "checkout is failing"},
    )
    incident = deployment.wait_for_incident(alertname)
    assert incident["status"] == "firing"
    assert incident["receiver"] == "bearer"
    assert incident["group_key"] == f'{{}}:{{alertname="{alertname}"}}'
    assert incident["namespace"] == "shop"
    assert [a["annotations"] for a in incident["alerts"]] == [{"summary": "checkout is failing"}]
    assert len(incident["alerts"][0]["fingerprint"]) == 16


def test_renotifications_never_duplicate(deployment: Deployment, alertname: str) -> None:
    deployment.alertmanager.fire({"alertname": alertname})
    incident = deployment.wait_for_incident(alertname, lambda i: i["notification_count"] >= 3)
    assert len(deployment.incidents(alertname=alertname)) == 1
    assert incident["alerts_total"] == 1
    assert [entry["changed"] for entry in incident["timeline"][:3]] == [True, False, False]


def test_group_by_makes_one_incident_with_several_alerts(
    deployment: Deployment, alertname: str
) -> None:
    for instance in ("web-1", "web-2", "web-3"):
        deployment.alertmanager.fire({"alertname": alertname, "instance": instance})
    incident = deployment.wait_for_incident(alertname, lambda i: i["alerts_total"] == 3)
    assert sorted(a["labels"]["instance"] for a in incident["alerts"]) == [
        "web-1",
        "web-2",
        "web-3",
    ]
    assert incident["group_labels"] == {"alertname": alertname}


def test_resolved_alert_resolves_the_incident(deployment: Deployment, alertname: str) -> None:
    labels = {"alertname": alertname, "instance": "db-1"}
    deployment.alertmanager.fire(labels)
    deployment.wait_for_incident(alertname)
    deployment.alertmanager.fire(labels, ends_at=datetime.now(UTC).isoformat())
    incident = deployment.wait_for_incident(alertname, lambda i: i["status"] == "resolved")
    assert incident["resolved_at"] is not None
    assert [a["status"] for a in incident["alerts"]] == ["resolved"]
    assert incident["timeline"][-1]["status"] == "resolved"


def test_max_alerts_truncation_is_recorded(deployment: Deployment, alertname: str) -> None:
    for instance in ("a", "b", "c"):
        deployment.alertmanager.fire(
            {"alertname": alertname, "route": "truncate", "instance": instance}
        )
    incident = deployment.wait_for_incident(alertname, lambda i: i["truncated_alerts"] == 1)
    assert incident["receiver"] == "truncate"
    assert incident["alerts_total"] == 2
    assert incident["timeline"][-1]["truncated_alerts"] == 1


def test_basic_auth_from_alertmanager_is_accepted(deployment: Deployment, alertname: str) -> None:
    deployment.alertmanager.fire({"alertname": alertname, "route": "basic"})
    incident = deployment.wait_for_incident(alertname)
    assert incident["receiver"] == "basic"


def test_wrong_credential_is_refused_and_nothing_is_stored(
    deployment: Deployment, alertname: str
) -> None:
    refused = 'correlator_http_requests_total{method="POST",route="/api/v1/alerts",status="401"}'
    before = deployment.metric(refused)
    deployment.alertmanager.fire({"alertname": alertname, "route": "wrong"})
    deadline = time.monotonic() + 20
    while deployment.metric(refused) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deployment.metric(refused) > before, "Alertmanager never tried to deliver"
    assert deployment.incidents(alertname=alertname) == []


async def test_retries_deliver_what_a_503_turned_away(
    deployment: Deployment, alertname: str
) -> None:
    unavailable = 'correlator_webhook_notifications_total{outcome="unavailable"'
    before = deployment.metric(unavailable)
    async with write_lock(deployment.database_url):
        deployment.alertmanager.fire({"alertname": alertname, "instance": "retry-me"})
        deadline = time.monotonic() + 20
        while deployment.metric(unavailable) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # let Alertmanager retry against the 503s for a while
        assert deployment.metric(unavailable) > before
        assert deployment.incidents(alertname=alertname) == []
    incident = deployment.wait_for_incident(alertname, timeout_s=40)
    assert incident["alerts_total"] == 1
    assert incident["alerts"][0]["labels"]["instance"] == "retry-me"
