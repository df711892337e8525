"""Grafana-managed rules reach correlator: its webhook contact point, and each rule's
notification settings (Grafana 10.4+) or one child route of the user's policy tree (older),
reconciled like dashboards, through the Grafana test server."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from correlator.provisioning.command import reconcile_grafana
from correlator.provisioning.grafana import GrafanaTarget
from correlator.provisioning.notifications import (
    CONTACT_POINT_NAME,
    CONTACT_POINT_UID,
    managed_route,
    routing_for,
    with_route,
    without_route,
)
from correlator.provisioning.reconcile import Action
from correlator.settings import load_settings
from tests.fakes.grafana import FakeGrafana
from tests.provisioning.conftest import webapp

SECRET = "wh-s3cret-token-for-grafana"
USER_ROUTES = [
    {"receiver": "grafana-default-email", "object_matchers": [["team", "=", "db"]]},
    {
        "receiver": "grafana-default-email",
        "object_matchers": [["severity", "=~", "page|critical"]],
        "group_wait": "10s",
        "routes": [{"receiver": "grafana-default-email", "continue": True}],
    },
]


def settings(**provisioning: Any) -> Any:
    return load_settings(
        database={"url": "sqlite:///unused.db"},
        auth={"bearer_token": SECRET},
        provisioning={
            "grafana_managed_teams": ["payments"],
            "prometheus_datasource_uid": "prom",
            "public_url": "http://correlator.example:8080",
            **provisioning,
        },
    )


def managed_apps() -> list[Any]:
    return [webapp("checkout", "shop", team="payments", slo={"availability": 99.9})]


def unmanaged_apps() -> list[Any]:
    return [webapp("checkout", "shop", team="storefront", slo={"availability": 99.9})]


def steps(report: Any, kind: str) -> list[Action]:
    return [step.action for step in report.steps if step.kind == kind]


@pytest.mark.grafana_since("10.4")
async def test_simplified_routing_names_correlators_contact_point_in_every_rule(
    grafana: tuple[FakeGrafana, GrafanaTarget], caplog: pytest.LogCaptureFixture
) -> None:
    fake, target = grafana
    caplog.set_level(logging.DEBUG)
    report = await reconcile_grafana(target, managed_apps(), settings())
    assert report.errors == []
    point = fake.contact_points[CONTACT_POINT_UID]
    assert point["type"] == "webhook" and point["name"] == CONTACT_POINT_NAME
    assert point["settings"] == {
        "url": "http://correlator.example:8080/api/v1/alerts",
        "httpMethod": "POST",
        "authorization_scheme": "Bearer",
        "authorization_credentials": SECRET,
    }
    assert fake.rules and all(
        rule["notification_settings"] == {"receiver": CONTACT_POINT_NAME}
        for rule in fake.rules.values()
    )
    assert "routes" not in fake.policy_tree  # the tree is not touched at all
    assert SECRET not in caplog.text and SECRET not in repr(report)

    again = await reconcile_grafana(target, managed_apps(), settings())
    assert steps(again, "contact-point") == [Action.UNCHANGED] and again.writes == 0


async def test_on_an_older_grafana_one_route_joins_the_users_tree_and_leaves_it_intact(
    grafana: tuple[FakeGrafana, GrafanaTarget],
) -> None:
    fake, target = grafana
    fake.version = "10.2.3"
    fake.policy_tree["routes"] = copy.deepcopy(USER_ROUTES)
    before = json.dumps(USER_ROUTES, sort_keys=True)
    report = await reconcile_grafana(target, managed_apps(), settings())
    assert report.errors == [] and steps(report, "route") == [Action.UPDATE]
    assert fake.policy_tree["routes"][0] == managed_route()
    assert json.dumps(fake.policy_tree["routes"][1:], sort_keys=True) == before
    assert fake.policy_tree["receiver"] == "grafana-default-email"
    assert all(rule.get("notification_settings") is None for rule in fake.rules.values())

    kept = await reconcile_grafana(target, managed_apps(), settings())
    assert steps(kept, "route") == [Action.UNCHANGED] and kept.writes == 0

    # Someone drops correlator's route in the UI and adds one of theirs: ours comes back, first;
    # theirs stays where they put it.
    mine = {"receiver": "grafana-default-email", "object_matchers": [["app", "=", "x"]]}
    fake.policy_tree["routes"] = [*USER_ROUTES, mine]
    put_back = await reconcile_grafana(target, managed_apps(), settings())
    assert steps(put_back, "route") == [Action.UPDATE]
    assert fake.policy_tree["routes"] == [managed_route(), *USER_ROUTES, mine]

    # No managed rule left: the rules go, then the route, then the contact point.
    gone = await reconcile_grafana(target, unmanaged_apps(), settings())
    assert gone.errors == []
    assert fake.rules == {} and CONTACT_POINT_UID not in fake.contact_points
    assert fake.policy_tree["routes"] == [*USER_ROUTES, mine]


async def test_a_tree_edited_while_correlator_writes_is_read_again_not_overwritten(
    grafana: tuple[FakeGrafana, GrafanaTarget],
) -> None:
    fake, target = grafana
    late = {"receiver": "grafana-default-email", "object_matchers": [["late", "=", "edit"]]}

    def someone_edits() -> None:
        fake.policy_tree["routes"] = [*fake.policy_tree.get("routes", []), late]

    # The first read is correlator's; before its check-read the user saves their edit.
    fake.before_next_tree_read.append(lambda: fake.before_next_tree_read.append(someone_edits))
    report = await reconcile_grafana(target, managed_apps(), settings(grafana_routing="policy"))
    assert report.errors == []
    assert fake.policy_tree["routes"] == [managed_route(), late]


async def test_the_contact_point_is_put_back_when_edited_and_kept_while_rules_use_it(
    grafana: tuple[FakeGrafana, GrafanaTarget],
) -> None:
    fake, target = grafana
    await reconcile_grafana(target, managed_apps(), settings())
    fake.contact_points[CONTACT_POINT_UID]["settings"]["url"] = "http://elsewhere.example/"
    report = await reconcile_grafana(target, managed_apps(), settings())
    assert steps(report, "contact-point") == [Action.UPDATE]
    point = fake.contact_points[CONTACT_POINT_UID]
    assert point["settings"]["url"] == "http://correlator.example:8080/api/v1/alerts"
    assert point["settings"]["authorization_credentials"] == SECRET

    # Grafana refuses to delete a contact point rules still name; correlator removes the rules
    # first, then the contact point.
    gone = await reconcile_grafana(target, unmanaged_apps(), settings())
    assert gone.errors == [] and steps(gone, "contact-point") == [Action.DELETE]
    assert CONTACT_POINT_UID not in fake.contact_points and fake.rules == {}


async def test_basic_credentials_and_a_separate_webhook_url_are_what_grafana_gets(
    grafana: tuple[FakeGrafana, GrafanaTarget],
) -> None:
    fake, target = grafana
    configured = load_settings(
        database={"url": "sqlite:///unused.db"},
        auth={"basic_username": "grafana", "basic_password": SECRET},
        provisioning={
            "grafana_managed_teams": ["payments"],
            "webhook_url": "http://correlator.monitoring.svc:8080/api/v1/alerts",
            "grafana_routing": "policy",
        },
    )
    report = await reconcile_grafana(target, managed_apps(), configured)
    assert report.errors == []
    settings_sent = fake.contact_points[CONTACT_POINT_UID]["settings"]
    assert settings_sent["url"] == "http://correlator.monitoring.svc:8080/api/v1/alerts"
    assert settings_sent["username"] == "grafana" and settings_sent["password"] == SECRET
    assert fake.policy_tree["routes"] == [managed_route()]  # forced, though Grafana is 11


def test_the_routing_method_follows_grafanas_version() -> None:
    assert routing_for("11.0.0", "auto") == "rule"
    assert routing_for("12.3.1-security", "auto") == "rule"
    assert routing_for("10.4.2", "auto") == "rule"  # notification_settings exists from 10.4
    assert routing_for("10.3.9", "auto") == "policy"
    assert routing_for("9.5.0", "auto") == "policy"
    assert routing_for("", "auto") == "policy"
    assert routing_for("10.0.0", "rule") == "rule"


def test_route_edits_touch_only_correlators_route() -> None:
    tree = {"receiver": "r", "routes": copy.deepcopy(USER_ROUTES)}
    added = with_route(tree)
    assert added is not None and added["routes"] == [managed_route(), *USER_ROUTES]
    assert tree["routes"] == USER_ROUTES  # the tree read is not modified in place
    assert with_route(added) is None
    removed = without_route(added)
    assert removed == tree
    assert without_route(tree) is None
    assert without_route({"receiver": "r", "routes": [managed_route()]}) == {
        "receiver": "r",
        "routes": [],
    }


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
_ROUTE = st.dictionaries(
    st.sampled_from(["receiver", "object_matchers", "continue", "routes", "group_by"]), _JSON
) | st.just(managed_route())


@settings_(max_examples=200, deadline=None)
@given(
    routes=st.one_of(_JSON, st.lists(st.one_of(_ROUTE, _JSON), max_size=5)),
    rest=st.dictionaries(st.text(max_size=8), _JSON, max_size=3),
)
def test_any_tree_grafana_answers_is_edited_only_at_correlators_route(
    routes: Any, rest: dict[str, Any]
) -> None:
    tree = {**rest, "receiver": "r", "routes": routes}
    original = copy.deepcopy(tree)
    added = with_route(tree) or tree
    assert tree == original  # never modified in place
    theirs = [r for r in routes if r != managed_route()] if isinstance(routes, list) else []
    assert added["routes"][0] == managed_route() and added["routes"][1:] == theirs
    assert {k: v for k, v in added.items() if k != "routes"} == {
        k: v for k, v in tree.items() if k != "routes"
    }
    removed = without_route(added)
    assert removed is not None and removed["routes"] == theirs
