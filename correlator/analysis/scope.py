"""Which WebApplications an alert is about, and their neighbours in the call graph (pure).

An alert names its app through labels, differently per source: Istio (`destination_workload`,
`destination_workload_namespace`), kube-state-metrics (`namespace`, `deployment`, `pod`), app
metrics (`app`, `service`, `job`)… The label names tried, in order, are configurable. A pod
name is reduced to its Deployment's name (`checkout-5d8f9c7b6d-x2x4q` → `checkout`).

Neighbours come from a call graph (edges caller → callee, from Jaeger's dependencies and Istio's
source/destination metrics), walked both ways up to a bounded depth: callers are who feels a
failure, callees are where it may come from.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from correlator.models.webapp import WebApplication

NAMESPACE_LABELS = (
    "namespace",
    "destination_workload_namespace",
    "kubernetes_namespace",
    "exported_namespace",
)
APP_LABELS = (
    "webapp",
    "app",
    "destination_workload",
    "workload",
    "deployment",
    "service",
    "destination_service_name",
    "container",
    "job",
    "pod",
)
_POD = re.compile(r"^(?P<name>.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$")


@dataclass(frozen=True, slots=True)
class ScopeRules:
    namespace_labels: Sequence[str] = NAMESPACE_LABELS
    app_labels: Sequence[str] = APP_LABELS


def candidate_names(labels: Mapping[str, str], rules: ScopeRules = ScopeRules()) -> list[str]:
    names = []
    for label in rules.app_labels:
        value = labels.get(label)
        if not value:
            continue
        if label == "pod" and (match := _POD.match(value)):
            value = match.group("name")
        if value not in names:
            names.append(value)
    return names


def apps_for_alert(
    labels: Mapping[str, str], apps: Iterable[WebApplication], rules: ScopeRules = ScopeRules()
) -> list[WebApplication]:
    """The apps an alert is about: by namespace and name, else by a name unique among apps."""
    namespace = next((labels[n] for n in rules.namespace_labels if labels.get(n)), None)
    names = candidate_names(labels, rules)
    known = list(apps)
    for name in names:
        matching = [a for a in known if a.name == name and namespace in (None, a.namespace)]
        # Without a namespace a name must be unique, or the alert would blame the wrong app.
        if matching and (namespace is not None or len(matching) == 1):
            return matching
    return []


@dataclass(frozen=True, slots=True)
class Neighbour:
    service: str
    relation: str  # "caller" or "callee"
    distance: int


def neighbours(
    service: str, edges: Iterable[tuple[str, str]], *, depth: int = 2
) -> list[Neighbour]:
    """Callers and callees of `service` within `depth` hops: nearest first, and at the same
    distance callees (where causes come from) before callers."""
    return _walk(service, _graphs(edges), depth)


def neighbours_of(
    services: Iterable[str], edges: Iterable[tuple[str, str]], *, depth: int = 2
) -> list[Neighbour]:
    """The neighbours of each service in turn, the graph built once (a storm's scope holds
    thousands of services: building it per service was quadratic)."""
    graphs = _graphs(edges)
    return [found for service in services for found in _walk(service, graphs, depth)]


_Graphs = tuple[dict[str, set[str]], dict[str, set[str]]]


def _graphs(edges: Iterable[tuple[str, str]]) -> _Graphs:
    callees: dict[str, set[str]] = {}
    callers: dict[str, set[str]] = {}
    for caller, callee in edges:
        if caller != callee:
            callees.setdefault(caller, set()).add(callee)
            callers.setdefault(callee, set()).add(caller)
    return callees, callers


def _walk(service: str, graphs: _Graphs, depth: int) -> list[Neighbour]:
    found: list[Neighbour] = []
    for relation, graph in zip(("callee", "caller"), graphs, strict=True):
        if service not in graph:
            continue
        seen = {service}
        queue = deque([(service, 0)])
        while queue:
            current, distance = queue.popleft()
            if distance == depth:
                continue
            for nxt in sorted(graph.get(current, ())):
                if nxt not in seen:
                    seen.add(nxt)
                    found.append(Neighbour(nxt, relation, distance + 1))
                    queue.append((nxt, distance + 1))
    return sorted(found, key=lambda n: (n.distance, n.relation, n.service))
