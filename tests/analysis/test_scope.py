"""From alert labels to WebApplications, and to their neighbours in the call graph."""

from __future__ import annotations

import pytest

from correlator.analysis.scope import ScopeRules, apps_for_alert, candidate_names, neighbours
from tests.provisioning.conftest import webapp

APPS = [
    webapp("checkout", "shop"),
    webapp("catalog", "shop"),
    webapp("checkout", "staging"),
    webapp("ledger", "finance"),
]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"namespace": "shop", "app": "checkout"}, ["shop/checkout"]),
        (
            {"destination_workload_namespace": "shop", "destination_workload": "catalog"},
            ["shop/catalog"],
        ),
        ({"namespace": "shop", "pod": "checkout-5d8f9c7b6d-x2x4q"}, ["shop/checkout"]),
        ({"namespace": "finance", "deployment": "ledger"}, ["finance/ledger"]),
        ({"app": "ledger"}, ["finance/ledger"]),  # no namespace, but a unique name
        ({"app": "checkout"}, []),  # no namespace and two apps of that name: blame neither
        ({"namespace": "shop", "app": "unknown", "service": "catalog"}, ["shop/catalog"]),
        ({"namespace": "nowhere", "app": "checkout"}, []),
        ({"alertname": "Watchdog"}, []),
    ],
)
def test_alert_labels_name_their_apps(labels: dict[str, str], expected: list[str]) -> None:
    assert [app.key for app in apps_for_alert(labels, APPS)] == expected


def test_label_names_are_configurable() -> None:
    rules = ScopeRules(namespace_labels=("k8s_ns",), app_labels=("component",))
    assert [
        a.key for a in apps_for_alert({"k8s_ns": "shop", "component": "catalog"}, APPS, rules)
    ] == ["shop/catalog"]
    assert candidate_names({"pod": "web-1"}) == ["web-1"]  # not a Deployment pod name: kept


def test_neighbours_walk_both_ways_to_a_bounded_depth() -> None:
    edges = [
        ("frontend", "checkout"),
        ("checkout", "payments"),
        ("payments", "bank"),
        ("checkout", "postgres"),
        ("mobile", "frontend"),
        ("checkout", "checkout"),
    ]
    found = [(n.service, n.relation, n.distance) for n in neighbours("checkout", edges, depth=2)]
    # Nearest first; at the same distance dependencies (where causes come from) before callers.
    assert found == [
        ("payments", "callee", 1),
        ("postgres", "callee", 1),
        ("frontend", "caller", 1),
        ("bank", "callee", 2),
        ("mobile", "caller", 2),
    ]
    depth_one = [n.service for n in neighbours("checkout", edges, depth=1)]
    assert depth_one == ["payments", "postgres", "frontend"]
    assert neighbours("isolated", edges) == []
