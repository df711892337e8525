"""Scoping a storm's group is linear in its alerts: no quadratic pass on the event loop.

Counted, not timed: the label values are strings that count how often they are compared, so a
list's `in` (every name against every name before it) shows as n²/2 comparisons."""

from __future__ import annotations

from dataclasses import dataclass

from correlator.analysis.scope import neighbours, neighbours_of
from correlator.pipeline import Pipeline
from correlator.pipeline.targets import alert_scope
from correlator.settings import load_settings

ALERTS = 20_000


class Counted(str):
    compared = 0

    def __eq__(self, other: object) -> bool:
        Counted.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


@dataclass
class Alert:
    labels: dict[str, str]


async def test_twenty_thousand_alerts_are_scoped_with_a_linear_number_of_comparisons() -> None:
    alerts = [
        Alert({"alertname": "Storm", "namespace": "shop", "app": Counted(f"app-{n}")})
        for n in range(ALERTS)
    ]
    pipeline = Pipeline(load_settings())
    try:
        Counted.compared = 0
        services, namespaces = alert_scope(alerts, pipeline.scope_rules, pipeline.settings.tenancy)
    finally:
        await pipeline.close()
    assert services == [f"app-{n}" for n in range(ALERTS)] and namespaces == ["shop"]
    assert Counted.compared < 10 * ALERTS, Counted.compared  # a list's `in`: 2e8


def test_the_neighbours_of_many_services_are_those_of_each() -> None:
    edges = [("frontend", "checkout"), ("checkout", "payments"), ("mobile", "frontend")]
    services = ["checkout", "frontend", "unknown"]
    expected = [n for s in services for n in neighbours(s, edges, depth=2)]
    assert neighbours_of(services, edges, depth=2) == expected


def test_the_targets_of_twenty_thousand_services_are_found_by_name_not_by_scan() -> None:
    from correlator.catalogue import Catalogue
    from correlator.pipeline.core import DEFAULT_LABELS
    from correlator.pipeline.targets import targets
    from tests.provisioning.conftest import webapp

    catalogue = Catalogue([webapp(f"app-{n}", "shop") for n in range(0, ALERTS, 40)])
    services = [Counted(f"app-{n}") for n in range(ALERTS)]
    Counted.compared = 0
    found = targets(services, ["shop"], catalogue, DEFAULT_LABELS)
    assert len(found) == ALERTS and found["app-40"].app is not None
    assert found["app-41"].app is None
    assert Counted.compared < 10 * ALERTS, Counted.compared  # a scan per service: 1e7
