"""The catalogue of per-service metric signals, and the PromQL that fetches them (pure).

A signal is one query for every service in scope at once: the services' names become an
alternation of escaped literals under `=~`, and the query keeps one series per service with
`by (…)`. One query per signal, not one per service and signal, is what keeps a correlation
fast. Defaults cover Istio/Envoy (errors, latency, throughput), cAdvisor (CPU, memory,
throttling) and kube-state-metrics (restarts); the label names are those of the platform.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from correlator.backends.promql import label_name, metric_label, regex_escape, string_literal


@dataclass(frozen=True, slots=True)
class Signal:
    """One kind of evidence: `template` has $ns, $names, $by, $window placeholders."""

    name: str
    unit: str
    template: str
    worse_when: str = "higher"  # or "lower"


@dataclass(frozen=True, slots=True)
class ServiceLabels:
    """Which labels identify a service in each family of metrics."""

    istio_namespace: str = "destination_workload_namespace"
    istio_workload: str = "destination_workload"
    pod_namespace: str = "namespace"
    pod: str = "pod"


ISTIO = 'reporter="destination",$istio_ns=~$ns,$istio_workload=~$names'
PODS = '$pod_ns=~$ns,$pod=~$pods,container!="",container!="POD"'
DEFAULT_SIGNALS: tuple[Signal, ...] = (
    # A service with traffic and no 5xx has no 5xx series; `or … * 0` makes its ratio an
    # explicit 0, which a baseline needs (no errors before is the evidence).
    Signal(
        "error_ratio",
        "ratio",
        f'(sum by ($by) (rate(istio_requests_total{{{ISTIO},response_code=~"5.."}}[$window]))'
        f" or sum by ($by) (rate(istio_requests_total{{{ISTIO}}}[$window])) * 0)"
        f" / sum by ($by) (rate(istio_requests_total{{{ISTIO}}}[$window]))",
    ),
    Signal(
        "latency_p99_ms",
        "ms",
        f"histogram_quantile(0.99, sum by ($by, le) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{ISTIO}}}[$window])))",
    ),
    Signal(
        "throughput_rps",
        "req/s",
        f"sum by ($by) (rate(istio_requests_total{{{ISTIO}}}[$window]))",
        worse_when="lower",
    ),
    Signal(
        "cpu_cores",
        "cores",
        f"sum by ($pod_by) (rate(container_cpu_usage_seconds_total{{{PODS}}}[$window]))",
    ),
    Signal(
        "memory_bytes", "bytes", f"sum by ($pod_by) (container_memory_working_set_bytes{{{PODS}}})"
    ),
    Signal(
        "cpu_throttled_ratio",
        "ratio",
        f"sum by ($pod_by) (rate(container_cpu_cfs_throttled_periods_total{{{PODS}}}[$window]))"
        f" / sum by ($pod_by) (rate(container_cpu_cfs_periods_total{{{PODS}}}[$window]))",
    ),
    Signal(
        "restarts",
        "count",
        f"sum by ($pod_by) (increase(kube_pod_container_status_restarts_total{{{PODS}}}[$window]))",
    ),
)


def alternation(values: Sequence[str]) -> str:
    """A `=~` literal matching exactly these values (each escaped, none a pattern)."""
    if not values:
        raise ValueError("a signal needs at least one service")
    return string_literal("|".join(regex_escape(v) for v in sorted(set(values))))


def signal_query(
    signal: Signal,
    *,
    namespaces: Sequence[str],
    services: Sequence[str],
    window: str = "1m",
    labels: ServiceLabels = ServiceLabels(),
) -> str:
    """The PromQL of `signal` for these services (pods are matched as NAME-<hash>-<suffix>)."""
    if not re.fullmatch(r"\d+(ms|s|m|h)", window):
        raise ValueError(f"{window!r} is not a PromQL duration")
    pods = [f"{regex_escape(s)}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}" for s in sorted(set(services))]
    values = {
        "$istio_ns": metric_label(labels.istio_namespace),
        "$istio_workload": metric_label(labels.istio_workload),
        "$pod_ns": metric_label(labels.pod_namespace),
        "$pod_by": f"{metric_label(labels.pod_namespace)}, {metric_label(labels.pod)}",
        "$pod": metric_label(labels.pod),
        "$by": f"{metric_label(labels.istio_namespace)}, {metric_label(labels.istio_workload)}",
        # No namespace known (an alert without one): any namespace.
        "$ns": alternation(namespaces) if namespaces else string_literal(".+"),
        "$names": alternation(services),
        "$pods": string_literal("|".join(pods)),
        "$window": window,
    }
    query = signal.template
    for placeholder in sorted(values, key=len, reverse=True):  # $pod_by before $pod
        query = query.replace(placeholder, values[placeholder])
    return query


# Incident bundles record signals, not raw series: one gauge family per signal, labelled by
# `namespace` and `service`. Loaded into Prometheus, this catalogue reads them back, so the
# online pipeline and the offline analysis of a bundle see the same data.
RECORDED_LABELS = ServiceLabels(istio_namespace="namespace", istio_workload="service")


def recorded_signals(names: Sequence[str]) -> tuple[Signal, ...]:
    known = {s.name: s for s in DEFAULT_SIGNALS}
    catalogue = []
    for name in names:
        label_name(name)  # a family name is a label-name-shaped identifier
        meta = known.get(name)
        catalogue.append(
            Signal(
                name,
                meta.unit if meta else "",
                f"max by ($by) ({name}{{$istio_ns=~$ns,$istio_workload=~$names}})",
                meta.worse_when if meta else "higher",
            )
        )
    return tuple(catalogue)
