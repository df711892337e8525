"""correlator never locks or takes over what is the user's in Grafana: its writes leave the
policy tree and its contact point editable in the UI, a tree another tool provisioned is left
alone and reported, and a contact point of its name that it did not make is never joined."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from correlator.metrics import Metrics
from correlator.provisioning.command import reconcile_grafana
from correlator.provisioning.grafana import GrafanaTarget
from correlator.provisioning.notifications import CONTACT_POINT_NAME, CONTACT_POINT_UID
from correlator.provisioning.service import Provisioner
from tests.fakes.grafana import FakeGrafana
from tests.provisioning.test_grafana_routing import USER_ROUTES, managed_apps, settings

USERS_POINT = {
    "type": "email",
    "settings": {"addresses": "oncall@example.com"},
    "disableResolveMessage": False,
    "provenance": "",
}


async def test_correlators_writes_leave_the_tree_and_its_contact_point_editable(
    grafana: tuple[FakeGrafana, GrafanaTarget],
) -> None:
    fake, target = grafana
    fake.policy_tree["routes"] = [dict(route) for route in USER_ROUTES]
    report = await reconcile_grafana(target, managed_apps(), settings(grafana_routing="policy"))
    assert report.errors == [] and report.left_alone == []
    assert fake.policy_tree["routes"][0]["receiver"] == CONTACT_POINT_NAME
    # Without X-Disable-Provenance Grafana would mark both `api`: the UI refuses to edit them.
    assert fake.policy_provenance == ""
    assert fake.contact_points[CONTACT_POINT_UID]["provenance"] == ""


@pytest.mark.parametrize("provenance", ["file", "api"])
async def test_a_tree_provisioned_by_another_tool_is_left_untouched_and_reported(
    grafana: tuple[FakeGrafana, GrafanaTarget], provenance: str
) -> None:
    fake, target = grafana
    fake.provision_policy_tree([dict(route) for route in USER_ROUTES], provenance)
    before = fake.policy_tree
    report = await reconcile_grafana(target, managed_apps(), settings(grafana_routing="policy"))
    assert fake.policy_tree is before and fake.policy_provenance == provenance
    assert ("PUT", "/api/v1/provisioning/policies") not in fake.requests
    assert report.left_alone == [("policy_tree", f"provenance_{provenance}")]
    [(what, why)] = report.errors
    assert what == "Grafana" and f"provenance {provenance!r}" in why


async def test_a_tree_left_alone_is_counted_on_metrics_and_logged(
    grafana: tuple[FakeGrafana, GrafanaTarget], caplog: pytest.LogCaptureFixture
) -> None:
    fake, target = grafana
    fake.provision_policy_tree([dict(route) for route in USER_ROUTES], "file")
    metrics = Metrics()
    provisioner = Provisioner(
        settings(grafana_routing="policy", grafana_url=target.base_url, grafana_token=fake.token),
        metrics,
    )
    caplog.set_level(logging.WARNING)
    await provisioner.run_once(managed_apps(), [])
    labels = {"object": "policy_tree", "reason": "provenance_file"}
    assert metrics.registry.get_sample_value("correlator_provisioning_left_alone", labels) == 1
    assert any("provenance 'file'" in str(vars(r).get("problem")) for r in caplog.records)
    # Once the tree is the user's to edit again, the next pass writes the route and the
    # gauge no longer says the tree was left alone.
    fake.policy_provenance = ""
    await provisioner.run_once(managed_apps(), [])
    assert metrics.registry.get_sample_value("correlator_provisioning_left_alone", labels) is None
    assert fake.policy_tree["routes"][0]["receiver"] == CONTACT_POINT_NAME


@pytest.mark.parametrize("routing", ["rule", "policy"])
async def test_a_contact_point_of_its_name_that_is_not_its_own_is_never_joined(
    grafana: tuple[FakeGrafana, GrafanaTarget], routing: str
) -> None:
    fake, target = grafana
    fake.contact_points["users"] = {**USERS_POINT, "uid": "users", "name": CONTACT_POINT_NAME}
    seen = len(fake.requests)
    report = await reconcile_grafana(target, managed_apps(), settings(grafana_routing=routing))
    # Grafana would have added correlator's webhook to the user's contact point; and rules or
    # a route naming it would send correlator's alerts to the user's integration.
    assert CONTACT_POINT_UID not in fake.contact_points and fake.rules == {}
    assert "routes" not in fake.policy_tree
    assert report.left_alone == [("contact_point", "name_taken")]
    assert any("'users'" in why for _, why in report.errors)
    written = [path for method, path in fake.requests[seen:] if method != "GET"]
    assert not any("/provisioning/" in path for path in written)


async def test_a_users_contact_point_called_correlator_gains_no_integration(
    grafana: tuple[FakeGrafana, GrafanaTarget],
) -> None:
    fake, target = grafana
    fake.contact_points["users"] = {**USERS_POINT, "uid": "users", "name": "correlator"}
    report = await reconcile_grafana(target, managed_apps(), settings())
    assert report.errors == []
    named_correlator: list[Any] = [
        point for point in fake.contact_points.values() if point["name"] == "correlator"
    ]
    assert [point["uid"] for point in named_correlator] == ["users"]
    assert fake.contact_points[CONTACT_POINT_UID]["name"] == CONTACT_POINT_NAME
