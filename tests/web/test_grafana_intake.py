"""Grafana Alerting's webhook, received through the same route as Alertmanager's.

Contract (what these tests hold the intake to), from Grafana's webhook notifier documentation
(grafana.com/docs/grafana/latest/alerting/configure-notifications/manage-contact-points/
integrations/webhook-notifier/) and its example body, which examples/grafana/ follows:

- the body is Alertmanager's webhook (receiver, status, alerts[], groupLabels, commonLabels,
  commonAnnotations, externalURL, groupKey, truncatedAlerts) with `"version": "1"` and
  `orgId`, plus `title`, `state` ("alerting"/"ok") and `message`, Grafana's rendered templates;
- each alert adds `values` (refId -> number), `valueString`, `silenceURL`, `dashboardURL`,
  `panelURL` (and `imageURL` when a screenshot is taken); `generatorURL` is the rule's page;
- the contact point sends POST, or PUT when its HTTP Method says so; it authenticates with
  HTTP Basic or an `Authorization: <scheme> <credentials>` header, not both;
- *Max Alerts* cuts a group and counts the rest in `truncatedAlerts`;
- Grafana does not retry a 4xx, so a refusal must be precise and deserved.

The rule that tells the two apart is the version alone: "4" is Alertmanager's payload (an
`orgId` in it is ignored, as every unknown field Alertmanager adds is), "1" is Grafana's and
must carry `orgId`; any other version is refused with a 422 that names `version`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.models.alerts import GrafanaWebhookPayload, WebhookPayload, parse_webhook
from tests.support.payloads import recorded
from tests.support.totals import store_totals

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "grafana"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


async def send(client: Any, body: Any, method: str = "POST") -> Any:
    return await client.request(method, "/api/v1/alerts", json=body)


async def incident_of(client: Any, response: Any) -> dict[str, Any]:
    assert response.status == 200, await response.text()
    stored = await response.json()
    detail: dict[str, Any] = await (await client.get(stored["incident_url"])).json()
    return detail


def test_every_sample_is_a_grafana_payload_and_only_that() -> None:
    for name in ("firing", "resolved", "several", "truncated"):
        parsed = parse_webhook((EXAMPLES / f"{name}.json").read_text())
        assert isinstance(parsed, GrafanaWebhookPayload), name
        assert parsed.org_id == 1 and parsed.alerts[0].details


async def test_a_firing_notification_keeps_grafanas_links_and_values(app_client: Any) -> None:
    client = await app_client()
    incident = await incident_of(client, await send(client, sample("firing")))
    assert incident["status"] == "firing" and incident["receiver"] == "correlator"
    [alert] = incident["alerts"]
    details = alert["details"]
    assert details["values"] == {"A": 0.0731, "C": 1.0}
    assert details["rule_url"].endswith("/view?orgId=1")
    assert details["silence_url"].startswith("http://grafana.example:3000/alerting/silence/new")
    assert details["panel_url"].endswith("viewPanel=4") and details["dashboard_url"]
    page = await (await client.get(f"/incidents/{incident['id']}")).text()
    assert 'href="http://grafana.example:3000/alerting/silence/new' in page
    assert ">Alert rule</a>" in page and "A=0.0731" in page


async def test_firing_then_resolved_resolves_one_incident_as_alertmanager_would(
    app_client: Any,
) -> None:
    client = await app_client()
    first = await (await send(client, sample("firing"))).json()
    again = await (await send(client, sample("firing"))).json()  # Grafana's repeat
    assert again["incident_id"] == first["incident_id"] and again["changed"] is False
    incident = await incident_of(client, await send(client, sample("resolved")))
    assert incident["id"] == first["incident_id"] and incident["status"] == "resolved"
    assert [t["status"] for t in incident["timeline"]] == ["firing", "firing", "resolved"]
    [alert] = incident["alerts"]  # fingerprint + startsAt: the same alert, now resolved
    assert alert["status"] == "resolved" and alert["details"]["values"]["C"] == 0


async def test_a_repeat_with_new_values_updates_them_without_being_a_change(
    app_client: Any,
) -> None:
    """Grafana's values move at every evaluation: a repeat carries the new ones, which the
    incident shows, but it is no change that calls for a new correlation."""
    client = await app_client()
    first = await (await send(client, sample("firing"))).json()
    repeat = sample("firing")
    repeat["alerts"][0]["values"] = {"A": 0.5, "C": 1.0}
    repeat["alerts"][0]["panelURL"] += "&from=now-1h"
    answer = await send(client, repeat)
    assert (await answer.json())["changed"] is False
    incident = await incident_of(client, answer)
    assert incident["id"] == first["incident_id"]
    [alert] = incident["alerts"]
    assert alert["details"]["values"] == {"A": 0.5, "C": 1.0}
    assert alert["details"]["panel_url"].endswith("&from=now-1h")


async def test_several_alerts_and_a_truncated_group_are_stored_like_alertmanagers(
    app_client: Any,
) -> None:
    client = await app_client()
    several = await incident_of(client, await send(client, sample("several")))
    assert [a["status"] for a in several["alerts"]].count("firing") == 2
    assert several["alerts_total"] == 3 and several["status"] == "firing"

    truncated = sample("truncated")
    truncated["groupKey"] += "/another-group"  # the samples share one group; keep apart
    incident = await incident_of(client, await send(client, truncated))
    assert incident["truncated_alerts"] == 5 and len(incident["alerts"]) == 2
    # The next notification carries only one of them: a truncated group says nothing about
    # the absent one, which stays firing.
    fewer = copy.deepcopy(truncated)
    fewer["alerts"] = fewer["alerts"][:1]
    incident = await incident_of(client, await send(client, fewer))
    assert [a["status"] for a in incident["alerts"]] == ["firing", "firing"]


async def test_put_is_received_as_post_is(app_client: Any) -> None:
    client = await app_client()
    incident = await incident_of(client, await send(client, sample("firing"), "PUT"))
    assert incident["alerts"][0]["details"]["panel_url"]


async def test_the_version_alone_decides_the_kind(app_client: Any) -> None:
    client = await app_client()
    # Alertmanager's version with an orgId added: Alertmanager's payload, orgId ignored.
    v4 = recorded("webhook-v4-firing-am0.25.json")
    v4["orgId"] = 1
    assert isinstance(parse_webhook(json.dumps(v4)), WebhookPayload)
    incident = await incident_of(client, await send(client, v4))
    assert all(alert["details"] is None for alert in incident["alerts"])

    no_org = sample("firing")
    del no_org["orgId"]
    refused = await send(client, no_org)
    assert refused.status == 422
    detail = (await refused.json())["detail"]
    assert detail.startswith("not a valid Grafana Alerting webhook payload: orgId:")

    for version in ("3", 1, None, "v1"):
        body = sample("firing")
        body["version"] = version
        refused = await send(client, body)
        assert refused.status == 422, version
        problem = await refused.json()
        assert problem["errors"][0]["field"] == "version", problem


async def test_grafana_fields_that_are_not_what_grafana_sends_are_a_precise_422(
    app_client: Any,
) -> None:
    client = await app_client()
    cases: list[tuple[str, Any, str]] = [
        ("values", {"A": "high"}, "alerts[0].values.A"),
        ("values", ["A", 1], "alerts[0].values"),
        ("silenceURL", "http://x/\x00", "alerts[0].silenceURL"),
        ("panelURL", "http://x/" + "a" * 9000, "alerts[0].panelURL"),
        ("valueString", 5, "alerts[0].valueString"),
    ]
    for name, value, field in cases:
        body = sample("firing")
        body["alerts"][0][name] = value
        response = await send(client, body)
        assert response.status == 422, (name, value)
        assert (await response.json())["errors"][0]["field"] == field
    for org in (-1, 2**64, "one", 1.5):
        body = sample("firing")
        body["orgId"] = org
        response = await send(client, body)
        assert response.status == 422, org
        assert (await response.json())["errors"][0]["field"] == "orgId"
    listing = await (await client.get("/api/v1/incidents")).json()
    assert listing["items"] == []


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
_FIELDS = st.sampled_from(
    ["orgId", "version", "title", "state", "message", "truncatedAlerts", "groupKey"]
)
_ALERT_FIELDS = st.sampled_from(
    ["values", "valueString", "silenceURL", "dashboardURL", "panelURL", "imageURL", "fingerprint"]
)


@pytest.fixture
async def fuzzed(app_client: Any) -> Any:
    """One application for every example (examples share fixtures)."""
    return await app_client(queue={"workers": 0})


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    top=st.dictionaries(_FIELDS, _JSON, max_size=2),
    per_alert=st.dictionaries(_ALERT_FIELDS, _JSON, max_size=2),
)
async def test_any_value_in_grafanas_fields_is_stored_or_refused_never_a_500(
    fuzzed: Any, top: dict[str, Any], per_alert: dict[str, Any]
) -> None:
    """Stored means stored as sent (what the model makes of the body is what the API gives
    back); refused means nothing of it was stored."""
    body = sample("firing")
    body.update(top)
    body["alerts"][0].update(per_alert)
    before = await store_totals(fuzzed)
    response = await send(fuzzed, body)
    assert response.status in (200, 400, 422), (response.status, body)
    if response.status != 200:
        assert await store_totals(fuzzed) == before, body
        if response.status == 422:
            assert (await response.json())["errors"][0]["field"]
        return
    sent = parse_webhook(json.dumps(body))
    incident = await incident_of(fuzzed, response)
    assert incident["group_key"] == sent.group_key
    assert incident["truncated_alerts"] == sent.truncated_alerts
    assert incident["timeline"][-1]["truncated_alerts"] == sent.truncated_alerts
    [alert] = sent.alerts
    [stored] = [a for a in incident["alerts"] if a["fingerprint"] == alert.fingerprint]
    assert stored["details"] == json.loads(json.dumps(alert.details)), body


async def test_grafanas_authorization_options_are_checked_on_put_as_on_post(
    app_client: Any,
) -> None:
    client = await app_client(auth={"bearer_token": "t0ken-with-enough-entropy"})
    for method in ("POST", "PUT"):
        refused = await client.request(method, "/api/v1/alerts", json=sample("firing"))
        assert refused.status == 401, method
    accepted = await client.request(
        "PUT",
        "/api/v1/alerts",
        json=sample("firing"),
        headers={"Authorization": "Bearer t0ken-with-enough-entropy"},
    )
    assert accepted.status == 200
    metrics = await (
        await client.get("/metrics", headers={"Authorization": "Bearer t0ken-with-enough-entropy"})
    ).text()
    assert (
        'correlator_webhook_notifications_total{outcome="rejected",reason="unauthorized"} 2.0'
        in metrics
    )
