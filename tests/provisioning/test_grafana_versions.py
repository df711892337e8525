"""correlator provisions every supported Grafana version as it behaves (the `grafana` fixture runs
each test against each of tests.fakes.grafana.VERSIONS): the routing it chooses, rule
provenance it changes deliberately, folders it makes sure are its own, contact points and rules
made meanwhile by another replica, and annotations only on dashboards that exist."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from correlator.metrics import Metrics
from correlator.provisioning.command import reconcile_grafana
from correlator.provisioning.dashboards import team_folder
from correlator.provisioning.grafana import GrafanaTarget
from correlator.provisioning.grafana_rules import rule_uid
from correlator.provisioning.naming import dashboard_uid
from correlator.provisioning.notifications import (
    CONTACT_POINT_NAME,
    CONTACT_POINT_UID,
    DEFAULT_ROUTING_NOTE,
    managed_route,
)
from correlator.provisioning.reconcile import Action
from correlator.provisioning.service import Provisioner
from correlator.sinks.annotations import GrafanaAnnotationSink
from tests.fakes.grafana import FakeGrafana
from tests.provisioning.test_grafana_routing import managed_apps, settings

Grafana = tuple[FakeGrafana, GrafanaTarget]
RULES = "/api/v1/provisioning/alert-rules"
POINTS = "/api/v1/provisioning/contact-points"


def a_rule_uid() -> str:
    return rule_uid(managed_apps()[0], "WebAppAvailabilityBudgetBurnPage")


def routed_by_rule(fake: FakeGrafana) -> bool:
    return bool(fake.rules) and all(
        rule["notification_settings"] == {"receiver": CONTACT_POINT_NAME}
        for rule in fake.rules.values()
    )


def routed_by_policy(fake: FakeGrafana) -> bool:
    return fake.policy_tree.get("routes", [None])[0] == managed_route() and all(
        rule.get("notification_settings") is None for rule in fake.rules.values()
    )


async def test_routing_is_chosen_by_what_the_version_keeps(grafana: Grafana) -> None:
    fake, target = grafana
    report = await reconcile_grafana(target, managed_apps(), settings())
    assert report.errors == []
    # notification_settings from 10.4 (dropped unread before), the policy route before it.
    if fake.at_least(10, 4):
        assert routed_by_rule(fake) and "routes" not in fake.policy_tree
    else:
        assert routed_by_policy(fake)


async def test_a_hidden_version_is_read_from_the_frontend_settings(grafana: Grafana) -> None:
    fake, target = grafana
    fake.hide_version = True
    assert await target.version() == fake.version
    await reconcile_grafana(target, managed_apps(), settings())
    assert routed_by_rule(fake) if fake.at_least(10, 4) else routed_by_policy(fake)


async def test_a_grafana_that_never_tells_its_version_gets_the_route_every_version_follows(
    grafana: Grafana, caplog: pytest.LogCaptureFixture
) -> None:
    fake, target = grafana
    fake.hide_version = True
    fake.before("GET", "/api/frontend/settings", lambda: fake.fail(403))
    caplog.set_level(logging.WARNING)
    report = await reconcile_grafana(target, managed_apps(), settings())
    assert report.errors == [] and routed_by_policy(fake)
    assert DEFAULT_ROUTING_NOTE in caplog.text


async def test_rules_locked_by_an_earlier_setting_are_recreated_editable(grafana: Grafana) -> None:
    fake, target = grafana
    await reconcile_grafana(target, managed_apps(), settings(disable_provenance=False))
    assert {rule["provenance"] for rule in fake.rules.values()} == {"api"}
    before = {uid: rule["title"] for uid, rule in fake.rules.items()}
    # Grafana refuses api -> none in place (a bare 500 on every update and delete that sends
    # X-Disable-Provenance): correlator deletes each rule as `api` and creates it again.
    report = await reconcile_grafana(target, managed_apps(), settings())
    assert report.errors == []
    assert {uid: rule["title"] for uid, rule in fake.rules.items()} == before
    assert {rule["provenance"] for rule in fake.rules.values()} == {""}
    migrated = [step for step in report.steps if step.kind == "alert-rule"]
    assert migrated and all("provenance api -> none" in step.reason for step in migrated)
    again = await reconcile_grafana(target, managed_apps(), settings())
    assert again.writes == 0


async def test_rules_are_locked_in_place_when_provenance_is_asked_for(grafana: Grafana) -> None:
    fake, target = grafana
    await reconcile_grafana(target, managed_apps(), settings())
    report = await reconcile_grafana(target, managed_apps(), settings(disable_provenance=False))
    assert report.errors == []
    assert {rule["provenance"] for rule in fake.rules.values()} == {"api"}
    assert ("DELETE", f"{RULES}/{a_rule_uid()}") not in fake.requests


async def test_a_rule_from_provisioning_files_is_left_alone_and_reported(
    grafana: Grafana, tmp_path: Path
) -> None:
    fake, target = grafana
    await reconcile_grafana(target, managed_apps(), settings())
    uid = a_rule_uid()
    fake.rules[uid]["provenance"] = "file"
    fake.rules[uid]["for"] = "1h"  # drifted, but Grafana would refuse the change
    metrics = Metrics()
    provisioner = Provisioner(
        settings(grafana_url=target.base_url, grafana_token=fake.token), metrics
    )
    problems = await provisioner.run_once(managed_apps(), [])
    assert fake.rules[uid]["for"] == "1h"
    assert ("PUT", f"{RULES}/{uid}") not in fake.requests
    [problem] = problems[managed_apps()[0].key]
    assert "provenance 'file'" in problem and uid in problem
    labels = {"object": "alert_rule", "reason": "provenance_file"}
    assert metrics.registry.get_sample_value("correlator_provisioning_left_alone", labels) == 1
    # Nor is it deleted when its app is gone.
    await provisioner.run_once([], [])
    assert uid in fake.rules


async def test_a_rule_at_correlators_uid_without_its_label_is_put_back_not_posted_again(
    grafana: Grafana,
) -> None:
    fake, target = grafana
    await reconcile_grafana(target, managed_apps(), settings())
    uid = a_rule_uid()
    del fake.rules[uid]["labels"]["managed_by"]  # a hand edit took the label off
    report = await reconcile_grafana(target, managed_apps(), settings())
    assert report.errors == []  # Grafana would answer a POST of that uid 400
    assert [s.action for s in report.steps if s.uid == uid] == [Action.UPDATE]
    assert fake.rules[uid]["labels"]["managed_by"] == "correlator"


async def test_a_rule_or_contact_point_another_replica_made_meanwhile_is_no_error(
    grafana: Grafana,
) -> None:
    fake, target = grafana

    def other_replica_makes_the_contact_point() -> None:
        fake.contact_points[CONTACT_POINT_UID] = {
            "uid": CONTACT_POINT_UID,
            "name": CONTACT_POINT_NAME,
            "type": "webhook",
            "settings": {"url": "http://correlator.example:8080/api/v1/alerts"},
            "disableResolveMessage": False,
            "provenance": "",
        }

    fake.before("POST", POINTS, other_replica_makes_the_contact_point)
    uid = a_rule_uid()
    fake.before(
        "POST",
        RULES,
        lambda: fake.add_foreign_rule(uid, "made meanwhile", {"managed_by": "correlator"}),
    )
    report = await reconcile_grafana(target, managed_apps(), settings())
    # Grafana answers the second contact point of a uid 500 and the second rule 400.
    assert report.errors == [], report.errors
    assert uid in fake.rules
    again = await reconcile_grafana(target, managed_apps(), settings())
    assert again.errors == [] and fake.rules[uid]["title"].startswith("WebApp")


async def test_rules_wait_for_a_contact_point_that_could_not_be_made(grafana: Grafana) -> None:
    fake, target = grafana
    fake.before("POST", POINTS, lambda: fake.fail(400))
    report = await reconcile_grafana(target, managed_apps(), settings(grafana_routing="rule"))
    # Each rule naming it would be a bare 500; one error says what is wrong instead.
    [(what, why)] = report.errors
    assert what == "Grafana" and why.startswith("contact point:")
    assert fake.rules == {}


@pytest.mark.grafana_since("10.4")
async def test_a_contact_point_removed_under_the_rules_is_named_as_the_reason(
    grafana: Grafana,
) -> None:
    fake, target = grafana
    fake.before("POST", RULES, lambda: fake.contact_points.pop(CONTACT_POINT_UID))
    report = await reconcile_grafana(target, managed_apps(), settings(grafana_routing="rule"))
    assert report.errors
    assert any(f"contact point {CONTACT_POINT_NAME!r}" in why for _, why in report.errors)
    assert not any("unavailable" in why for _, why in report.errors)


async def test_a_rule_already_gone_is_deleted_without_error(grafana: Grafana) -> None:
    fake, target = grafana
    await reconcile_grafana(target, managed_apps(), settings())
    uid = a_rule_uid()
    fake.before("DELETE", f"{RULES}/{uid}", lambda: fake.rules.pop(uid))
    report = await reconcile_grafana(target, [], settings())
    assert report.errors == [] and fake.rules == {}


async def test_a_same_titled_folder_is_never_taken_for_correlators_own(grafana: Grafana) -> None:
    fake, target = grafana
    folder = team_folder("payments")
    fake.folders["theirs"] = {
        "id": 99,
        "uid": "theirs",
        "title": folder.title,
        "url": "/dashboards/f/theirs/",
        "version": 1,
    }
    report = await reconcile_grafana(target, managed_apps(), settings())
    uid = dashboard_uid("shop", "checkout")
    if fake.at_least(11, 3):  # folders may share a title: correlator's is made beside theirs
        assert report.errors == [] and folder.uid in fake.folders and uid in fake.dashboards
    else:
        # The 409 is for their folder, not correlator's: said so, and nothing is saved into
        # a folder that does not exist.
        assert folder.uid not in fake.folders and uid not in fake.dashboards
        assert any("another folder holds that title" in why for _, why in report.errors)
        assert not any("folder not found" in why for _, why in report.errors)


async def test_a_folder_another_replica_made_meanwhile_is_correlators(grafana: Grafana) -> None:
    fake, target = grafana
    folder = team_folder("payments")

    def other_replica() -> None:
        fake.folders[folder.uid] = {
            "id": 98,
            "uid": folder.uid,
            "title": folder.title,
            "url": f"/dashboards/f/{folder.uid}/",
            "version": 1,
        }

    fake.before("POST", "/api/folders", other_replica)
    assert await target.ensure_folder(folder)  # 409 up to 11.2, 412 from 11.3: both fine


@pytest.mark.parametrize("provisioned", [True, False])
async def test_an_annotation_goes_on_the_dashboard_only_if_it_exists(
    grafana: Grafana, provisioned: bool
) -> None:
    fake, target = grafana
    uid = dashboard_uid("shop", "checkout")
    if provisioned:
        fake.add_foreign_dashboard(uid, "shop/checkout", [])
    sink = GrafanaAnnotationSink("grafana", url=target.base_url, token=fake.token)
    message: dict[str, Any] = {
        "started_at": "2026-12-06T10:00:00Z",
        "resolved_at": None,
        "status": "firing",
        "title": "checkout is failing",
        "suspects": [],
        "incident_id": 7,
        "incident_url": "http://correlator.example/incidents/7",
        "app": {"namespace": "shop", "name": "checkout"},
    }

    async def remember(remote: dict[str, Any]) -> None:
        return None

    try:
        remote = await sink.send(message, {}, remember)
    finally:
        await sink.close()
    [sent] = fake.annotation_requests
    stored = fake.annotations[remote["id"]]
    if provisioned:
        assert sent["dashboardUID"] == uid and stored["dashboardId"] == fake.dashboards[uid].id
    else:
        # Grafana would take the unknown dashboardUID and quietly make an organisation
        # annotation; correlator says it is one, tagged to be found.
        assert "dashboardUID" not in sent and stored["dashboardId"] == 0
        assert "app-shop-checkout" in stored["tags"]


async def test_a_dashboard_clashing_only_by_slug_is_someone_elses_up_to_10_0(
    grafana: Grafana,
) -> None:
    fake, target = grafana
    folder = team_folder("payments")
    await target.ensure_folder(folder)
    fake.add_foreign_dashboard("theirs", "Shop / Checkout", ["hand-made"])
    fake.dashboards["theirs"].folder_uid = folder.uid
    report = await reconcile_grafana(target, managed_apps(), settings())
    uid = dashboard_uid("shop", "checkout")
    assert fake.dashboards["theirs"].dashboard["title"] == "Shop / Checkout"  # never taken
    if fake.at_least(10, 1):  # "shop / checkout" is another title
        assert report.conflicts == [] and uid in fake.dashboards
    else:  # the same slug: Grafana refuses it (name-exists), correlator reports a conflict
        [conflict] = report.conflicts
        assert conflict.uid == uid and uid not in fake.dashboards
