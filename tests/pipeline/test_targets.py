"""How each service in scope is found in each backend: its WebApplication's spec, else the
label heuristics (pure)."""

from __future__ import annotations

from correlator.catalogue import Catalogue
from correlator.pipeline.sources import metric_queries
from correlator.pipeline.targets import by_labels, targets, tracing_names
from correlator.signals import DEFAULT_SIGNALS, ServiceLabels
from tests.provisioning.conftest import webapp

RELABELLED = {"namespace": "ns", "workload": "app", "podNamespace": "pod_ns", "pod": "pod_name"}


def catalogue() -> Catalogue:
    return Catalogue(
        [
            webapp(
                "checkout",
                "shop",
                observability={
                    "logSelector": '{container="checkout"}',
                    "traceService": "checkout-api",
                    "metricLabels": RELABELLED,
                },
            ),
            webapp("cart", "shop"),
            webapp("cart", "other"),
        ]
    )


def test_an_app_with_a_webapplication_is_queried_as_its_spec_says() -> None:
    found = targets(["checkout", "cart", "legacy"], ["shop"], catalogue(), ServiceLabels())
    checkout, cart, legacy = found["checkout"], found["cart"], found["legacy"]
    assert checkout.labels == ServiceLabels("ns", "app", "pod_ns", "pod_name")
    # Its own stream, confined to its namespace.
    assert (checkout.log_selector, checkout.trace_service) == (
        '{namespace="shop",container="checkout"}',
        "checkout-api",
    )
    # A spec without them: the platform's defaults, and Istio's name.namespace in Jaeger.
    assert (cart.labels, cart.log_selector, cart.trace_service) == (
        ServiceLabels(),
        None,
        "cart.shop",
    )
    # No WebApplication: the heuristics (the name itself in Jaeger, the configured labels).
    assert (legacy.app, legacy.trace_service) == (None, "legacy")
    assert by_labels(found.values()) == {
        ServiceLabels("ns", "app", "pod_ns", "pod_name"): ["checkout"],
        ServiceLabels(): ["cart", "legacy"],
    }
    assert tracing_names(found.values(), catalogue())["checkout-api"] == "checkout"


def test_a_name_in_two_namespaces_without_one_in_the_alert_is_not_guessed() -> None:
    found = targets(["cart"], [], catalogue(), ServiceLabels())
    assert found["cart"].app is None
    assert targets(["checkout"], [], catalogue(), ServiceLabels())["checkout"].app is not None


def test_each_group_of_labels_gets_its_own_promql() -> None:
    found = targets(["checkout", "cart"], ["shop"], catalogue(), ServiceLabels())
    queries = metric_queries(DEFAULT_SIGNALS, found, ["shop"])
    assert 'app=~"checkout"' in queries["checkout"]["error_ratio"]
    assert "destination_workload=~" in queries["cart"]["error_ratio"]
    assert "checkout" not in queries["cart"]["error_ratio"]
    assert "pod_name=~" in queries["checkout"]["cpu_cores"]
