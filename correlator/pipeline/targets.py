"""How each service in scope is found in each backend: the WebApplication is the map.

An app with a WebApplication is queried as its spec says — `observability.metricLabels` for
its PromQL, `observability.logSelector` for its LogQL stream, `observability.traceService` (by
default Istio's `name.namespace`) for Jaeger — the same spec that gives its dashboards and
alert rules. A service without one falls back to the label heuristics in settings (the
configured metric labels, the Loki service label, the service name in Jaeger).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from correlator.analysis.scope import ScopeRules, candidate_names
from correlator.catalogue import Catalogue, trace_service
from correlator.models.incidents import IncidentAlerts
from correlator.models.webapp import WebApplication
from correlator.settings import Settings, TenancySettings
from correlator.signals import ServiceLabels
from correlator.tenancy import alert_namespace, app_log_selector, app_of_alerts


@dataclass(frozen=True, slots=True)
class Target:
    service: str  # the name the analysis and the report use (the app's name)
    labels: ServiceLabels  # the label names of its series
    log_selector: str | None  # its own LogQL stream selector; None: the heuristic one
    trace_service: str  # its name in Jaeger; empty: not to be read there
    app: WebApplication | None = None


def metric_labels(app: WebApplication) -> ServiceLabels:
    labels = app.spec.observability.metric_labels
    return ServiceLabels(
        istio_namespace=labels.namespace,
        istio_workload=labels.workload,
        pod_namespace=labels.pod_namespace,
        pod=labels.pod,
    )


def targets(
    services: Sequence[str],
    namespaces: Sequence[str],
    catalogue: Catalogue,
    default_labels: ServiceLabels,
    *,
    namespace_label: str = "namespace",
) -> dict[str, Target]:
    """The target of each service, from its WebApplication where the catalogue has one: in the
    alerts' namespaces (a group mixing namespaces reaches no app outside them); with no
    namespace, a name unique among the apps. Its log stream is confined to its namespace."""
    # A name without an app is its own tracing name, unless it is an app's of a namespace
    # the alerts do not come from (`app="checkout.payments"` in shop's rule): not read.
    claimed = {trace_service(app): app.namespace for app in catalogue.apps()}
    out = {}
    for service in services:
        app = catalogue.find_in(service, namespaces)
        if app is None:
            foreign = claimed.get(service) not in (None, *namespaces)
            out[service] = Target(service, default_labels, None, "" if foreign else service)
        else:
            selector = app_log_selector(app, namespace_label)
            out[service] = Target(service, metric_labels(app), selector, trace_service(app), app)
    return out


def by_labels(found: Iterable[Target]) -> dict[ServiceLabels, list[str]]:
    """Services grouped by the label names of their series: one query per group and signal."""
    groups: defaultdict[ServiceLabels, list[str]] = defaultdict(list)
    for target in found:
        groups[target.labels].append(target.service)
    return dict(groups)


def tracing_names(found: Iterable[Target], catalogue: Catalogue) -> dict[str, str]:
    """Jaeger's service names → the names the analysis uses, for every known app (a callee's
    spans arrive with the traces of its caller)."""
    names = {trace_service(app): app.name for app in catalogue.apps()}
    names.update({t.trace_service: t.service for t in found if t.trace_service})
    return names


def alert_scope(
    alerts: Sequence[Any], rules: ScopeRules, tenancy: TenancySettings
) -> tuple[list[str], list[str]]:
    """The services the alerts name (each alert's first candidate) and their namespaces, in
    order of first mention."""
    # An ordered set: a storm's group holds 20,000 alerts, and a list's `in` made this
    # quadratic on the event loop (4 s).
    services: dict[str, None] = {}
    namespaces: list[str] = []
    for alert in alerts:
        labels = alert.labels
        for name in candidate_names(labels, rules)[:1]:
            services.setdefault(name)
        namespace = alert_namespace(labels, rules, tenancy)
        if namespace is not None and namespace not in namespaces:
            namespaces.append(namespace)
    return list(services), namespaces


def incident_app(
    incident: IncidentAlerts,
    scope: tuple[list[str], list[str]],
    catalogue: Catalogue,
    rules: ScopeRules,
    settings: Settings,
) -> tuple[str | None, str | None]:
    """The app the incident is about (its WebApplication, else the first alerting service of
    `scope` in its first namespace) and the app's team: what accuracy is told per."""
    alerts = [{**a.labels, **incident.common_labels} for a in incident.alerts]
    app = app_of_alerts(
        alerts or [incident.common_labels], catalogue.apps(), rules, settings.tenancy
    )
    if app is not None:
        return app.key, app.spec.team
    services, namespaces = scope
    if not services:
        return None, None
    where = f"{namespaces[0]}/" if namespaces else ""
    return f"{where}{services[0]}", None
