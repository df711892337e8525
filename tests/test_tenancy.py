"""Tenancy: what a WebApplication may claim, and which app an alert names (issue 23, part A).

The end-to-end reproductions (what correlator sends to Loki, Jaeger, GitHub, GitLab, Slack and
the Kubernetes API) are in tests/pipeline/test_confinement.py, tests/sinks/test_hostile_specs.py
and tests/provisioning/test_tenancy_conditions.py; these are the rules themselves.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from correlator.analysis.scope import ScopeRules
from correlator.backends.logql import SelectorRefused, confined_selector, parse_selector
from correlator.catalogue import deployed
from correlator.models.webapp import WebApplication
from correlator.pipeline.sources import regex_selector
from correlator.settings import Settings, TenancySettings
from correlator.tenancy import admit, app_of_alerts
from tests.fakes.loki import parse as loki_parse

BOUND = TenancySettings.model_validate(
    {
        "teams": {
            "shop": {
                "namespaces": ["shop"],
                "chat_channels": ["C0SHOP"],
                "repositories": ["https://github.com/acme/shop-*"],
                "receivers": ["shop-pager"],
            },
            "payments": {
                "namespaces": ["payments"],
                "chat_channels": ["C0PAYMENTS"],
                "repositories": ["https://github.com/acme/payments"],
                "receivers": ["payments-pager"],
            },
        }
    }
)


def app(name: str, namespace: str, **spec: Any) -> WebApplication:
    return WebApplication.model_validate(
        {
            "apiVersion": "platform.correlator.dev/v1alpha1",
            "kind": "WebApplication",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"image": "registry/app:1", "team": namespace, **spec},
        }
    )


def checkout() -> WebApplication:
    return app(
        "checkout",
        "payments",
        repo="https://github.com/acme/payments",
        alerting={"chatChannel": "C0PAYMENTS"},
    )


def refusals(apps: list[WebApplication], settings: TenancySettings = BOUND) -> dict[str, str]:
    _, refused = admit(apps, settings, namespace_label="namespace")
    return {str(r.path).removeprefix("webapplications/"): r.field for r in refused}


# --- what a spec may say at all --------------------------------------------------------------


@pytest.mark.parametrize(
    "selector",
    [
        '{namespace="payments"} |= "Authorization"',
        '{app="evil"} |= "hooks.slack.com"',
        '{app="evil"} | json',
        '{app="evil"} or {app="x"}',
        'sum(rate({app="evil"}[1m]))',
        "{}",
    ],
)
def test_a_log_selector_is_label_matchers_only(selector: str) -> None:
    with pytest.raises(ValidationError, match=r"logSelector|log_selector"):
        app("evil", "shop", observability={"logSelector": selector})


@pytest.mark.parametrize(
    "field",
    [
        {"observability": {"runbookUrl": 'https://x/{{ query "up" }}'}},
        {"observability": {"runbookUrl": "javascript:alert(1)"}},
        {"alerting": {"pageReceiver": "{{ $labels.x }}"}},
        {"alerting": {"severity": {"page": "crit}}"}}},
    ],
)
def test_spec_values_never_reach_prometheus_templates(field: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        app("evil", "shop", **field)


def test_a_revision_that_is_not_a_commit_id_is_not_a_revision() -> None:
    hostile = app("evil", "shop").model_copy(
        update={
            "metadata": app("evil", "shop").metadata.model_copy(
                update={
                    "annotations": {
                        "correlator.dev/revision": "../../../../repos/victim/x/issues/5/comments#"
                    }
                }
            )
        }
    )
    assert deployed(hostile).revision is None


# --- what a spec may claim -------------------------------------------------------------------


def test_another_namespaces_logs_are_refused_and_its_own_are_confined() -> None:
    evil = app("evil", "shop", observability={"logSelector": '{namespace="payments"}'})
    assert refusals([evil], TenancySettings()) == {"shop/evil": "spec.observability.logSelector"}
    own = app("evil", "shop", observability={"logSelector": '{app="evil"}'})
    assert refusals([own], TenancySettings()) == {}


@pytest.mark.parametrize(
    "trace_service", ["checkout.payments", "anything.payments", "checkout-claimed"]
)
def test_a_trace_service_of_another_namespace_is_refused(trace_service: str) -> None:
    payments = checkout()
    if trace_service == "checkout-claimed":
        payments = app("checkout", "payments", observability={"traceService": trace_service})
    evil = app("evil", "shop", observability={"traceService": trace_service})
    refused = refusals([payments, evil], TenancySettings())
    assert refused.get("shop/evil") == "spec.observability.traceService"
    if trace_service != "checkout-claimed":
        assert "payments/checkout" not in refused  # the owner keeps its name


def test_a_copy_cannot_take_an_apps_tracing_name_from_it() -> None:
    """Its own name (or Istio's name.namespace) stays with the app that carries it; the copy,
    in the same namespace or another, is refused alone. Two apps with an equal claim to a name
    (both called checkout) both lose it: neither can be told from the other in Jaeger."""
    owner = app("checkout", "shop", observability={"traceService": "checkout.shop"})
    copy = app("late", "shop", observability={"traceService": "checkout.shop"})
    assert refusals([owner, copy], TenancySettings()) == {
        "shop/late": "spec.observability.traceService"
    }
    plain = app("checkout", "payments", observability={"traceService": "checkout"})
    squat = app("evil", "shop", observability={"traceService": "checkout"})
    assert refusals([plain, squat], TenancySettings()) == {
        "shop/evil": "spec.observability.traceService"
    }
    twin = app("checkout", "shop", observability={"traceService": "checkout"})
    assert set(refusals([plain, twin], TenancySettings())) == {"payments/checkout", "shop/checkout"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"repo": "https://github.com/acme/payments"}, "spec.repo"),
        ({"alerting": {"chatChannel": "C0PAYMENTS"}}, "spec.alerting.chatChannel"),
        ({"alerting": {"chatChannel": "U0CEO"}}, "spec.alerting.chatChannel"),
        ({"team": "payments"}, "spec.team"),
        ({"alerting": {"pageReceiver": "payments-pager"}}, "spec.alerting.pageReceiver"),
        ({"alerting": {"ticketReceiver": "payments-pager"}}, "spec.alerting.ticketReceiver"),
    ],
)
def test_a_claim_outside_the_binding_is_refused_naming_the_field(
    spec: dict[str, Any], field: str
) -> None:
    evil = app("evil", "shop", **spec)
    assert refusals([checkout(), evil]) == {"shop/evil": field}
    # Without a binding, the spec is trusted as written (what a platform had before).
    assert refusals([checkout(), evil], TenancySettings()) == {}


def test_claims_inside_the_binding_are_admitted() -> None:
    own = app(
        "web",
        "shop",
        repo="https://github.com/acme/shop-web",
        alerting={"chatChannel": "C0SHOP", "pageReceiver": "shop-pager"},
    )
    assert refusals([checkout(), own]) == {}
    assert refusals([app("x", "unbound")]) == {"unbound/x": "metadata.namespace"}


def test_the_binding_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRELATOR_TENANCY_TEAMS", '{"shop": {"namespaces": ["shop"]}}')
    monkeypatch.setenv("CORRELATOR_TENANCY_NAMESPACE_LABEL", "rule_namespace")
    tenancy = Settings().tenancy
    assert tenancy.teams["shop"].namespaces == ["shop"]
    assert tenancy.namespace_label == "rule_namespace"


# --- which app an alert names ----------------------------------------------------------------

RULES = ScopeRules()


def test_an_alert_names_an_app_only_in_the_namespace_it_comes_from() -> None:
    apps = [checkout(), app("evil", "shop")]
    enforced = TenancySettings(namespace_label="rule_namespace")
    hostile = {"rule_namespace": "shop", "namespace": "payments", "app": "checkout"}
    assert app_of_alerts([hostile], apps, RULES, enforced) is None
    own = {"rule_namespace": "payments", "app": "checkout"}
    assert app_of_alerts([own], apps, RULES, enforced) == checkout()
    # With a binding, a name unique among the apps is not enough without a namespace.
    assert app_of_alerts([{"app": "checkout"}], apps, RULES, BOUND) is None


def test_a_group_mixing_namespaces_names_no_app() -> None:
    apps = [checkout(), app("evil", "shop")]
    mixed = [
        {"namespace": "payments", "app": "checkout"},
        {"namespace": "shop", "app": "evil"},
    ]
    assert app_of_alerts(mixed, apps, RULES, TenancySettings()) is None
    assert app_of_alerts(mixed[:1], apps, RULES, TenancySettings()) == checkout()


# --- label values are literals ---------------------------------------------------------------


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4, unique=True))
def test_any_label_value_is_a_literal_in_the_regex_selector(values: list[str]) -> None:
    selector = regex_selector({"app": values})
    query = loki_parse(selector)  # the test server's own LogQL parser accepts it
    (matcher,) = [m for m in query.matchers if m.name == "app"]
    for value in values:
        assert matcher.matches(value)
    assert not matcher.matches("|".join(values) + "x")
    if any("|" in v for v in values):
        parts = {p for v in values for p in v.split("|")} - set(values)
        assert not any(matcher.matches(p) for p in parts)


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_a_confined_selector_always_holds_the_namespace(value: str, namespace: str) -> None:
    selector = confined_selector(
        [("app", "=", value), ("namespace", "=", "payments")],
        namespace_label="namespace",
        namespace=namespace,
    )
    assert parse_selector(selector) == [("namespace", "=", namespace), ("app", "=", value)]


def test_a_selector_holding_a_filter_in_a_value_stays_a_value() -> None:
    text = '{app="x\\"} |= \\"Authorization"}'
    assert parse_selector(text) == [("app", "=", 'x"} |= "Authorization')]
    with pytest.raises(SelectorRefused):
        parse_selector('{app="x"} |= "}"')
    assert re.fullmatch(r"\{.*\}", text)
