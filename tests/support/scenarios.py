"""Hand-made incidents, as the platform's telemetry would show them (not Nezha cases).

A scenario is a small call graph, a fault injected into one service at `fault_at`, and what
each part of the stack records: Istio and cAdvisor series for Prometheus (OpenMetrics, for
promtool backfill), log lines for the Loki test server, spans for the Jaeger test server. The
fault propagates to the callers a little later, as it does in a real system.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tests.fakes.jaeger import FakeSpan

STEP_S = 15
HISTORY = timedelta(minutes=100)
BUCKETS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
PROPAGATION = timedelta(seconds=30)


@dataclass
class Behaviour:
    """What a service does at one moment."""

    rps: float = 20.0
    error_ratio: float = 0.002
    latency_ms: float = 20.0  # its own time, without its callees
    cpu_cores: float = 0.2
    throttled: float = 0.01
    log_errors: int = 0  # error lines per 15 s


@dataclass
class Scenario:
    name: str
    namespace: str
    calls: list[tuple[str, str]]  # caller → callee
    culprit: str
    alerting: str
    fault: Callable[[str, Behaviour], Behaviour]  # how the culprit changes
    fault_at: datetime
    mesh: set[str] = field(default_factory=set)  # services with Istio sidecars (default all)
    error_line: str = "ERROR request failed: {n}"
    history: timedelta = HISTORY

    @property
    def services(self) -> list[str]:
        names: list[str] = []
        for caller, callee in self.calls:
            for name in (caller, callee):
                if name not in names:
                    names.append(name)
        return names

    def callees(self, service: str) -> list[str]:
        return [callee for caller, callee in self.calls if caller == service]

    def behaviour(self, service: str, moment: datetime) -> Behaviour:
        """The service's own behaviour, then what its callees' faults do to it."""
        own = Behaviour()
        if service == self.culprit and moment >= self.fault_at:
            own = self.fault(service, own)
        for callee in self.callees(service):
            # A callee's failure reaches its caller one propagation step later.
            felt = self.behaviour(callee, moment - PROPAGATION)
            own.error_ratio = max(own.error_ratio, felt.error_ratio * 0.8)
            own.latency_ms += felt.latency_ms
        return own

    def pod(self, service: str) -> str:
        return f"{service}-5d8f9c7b6d-x2x4q"

    # --- Prometheus -------------------------------------------------------------------------

    def openmetrics(self, now: datetime) -> dict[str, list[str]]:
        """Sample lines per metric family, from now - HISTORY to now."""
        families: defaultdict[str, list[str]] = defaultdict(list)
        times = []
        moment = now - self.history
        while moment <= now:
            times.append(moment)
            moment += timedelta(seconds=STEP_S)
        for service in self.services:
            self._service_series(service, times, families)
        return families

    def _service_series(
        self, service: str, times: list[datetime], families: defaultdict[str, list[str]]
    ) -> None:
        ns = self.namespace
        pod = f'namespace="{ns}",pod="{self.pod(service)}",container="app"'
        counters: defaultdict[str, float] = defaultdict(float)
        istio = service in (self.mesh or set(self.services))
        callers = [c for c, callee in self.calls if callee == service] or ["istio-ingressgateway"]
        rows: defaultdict[str, list[tuple[str, float, float]]] = defaultdict(list)
        for moment in times:
            b = self.behaviour(service, moment)
            t = moment.timestamp()
            counters["cpu"] += b.cpu_cores * STEP_S
            counters["periods"] += 10 * STEP_S
            counters["throttled"] += 10 * STEP_S * b.throttled
            rows["container_cpu_usage_seconds_total"].append((pod, counters["cpu"], t))
            rows["container_cpu_cfs_periods_total"].append((pod, counters["periods"], t))
            rows["container_cpu_cfs_throttled_periods_total"].append(
                (pod, counters["throttled"], t)
            )
            rows["container_memory_working_set_bytes"].append((pod, 2.5e8, t))
            rows["kube_pod_container_status_restarts_total"].append((pod, 0.0, t))
            if not istio:
                continue
            for caller in callers:
                share = b.rps / len(callers) * STEP_S
                base = (
                    f'reporter="destination",source_workload="{caller}",'
                    f'destination_workload="{service}",destination_workload_namespace="{ns}"'
                )
                for code, part in (("200", 1 - b.error_ratio), ("503", b.error_ratio)):
                    counters[f"{caller}{code}"] += share * part
                    rows["istio_requests_total"].append(
                        (f'{base},response_code="{code}"', counters[f"{caller}{code}"], t)
                    )
                counters[f"{caller}count"] += share
                counters[f"{caller}sum"] += share * b.latency_ms
                for le in (*BUCKETS, "+Inf"):
                    if le == "+Inf" or b.latency_ms <= float(le):
                        counters[f"{caller}{le}"] += share
                    rows["istio_request_duration_milliseconds_bucket"].append(
                        (f'{base},le="{le}"', counters[f"{caller}{le}"], t)
                    )
                rows["istio_request_duration_milliseconds_count"].append(
                    (base, counters[f"{caller}count"], t)
                )
                rows["istio_request_duration_milliseconds_sum"].append(
                    (base, counters[f"{caller}sum"], t)
                )
        # One series' samples must be contiguous: group rows by (name, labels).
        for name, samples in rows.items():
            by_series: defaultdict[str, list[str]] = defaultdict(list)
            for labels, value, t in samples:
                by_series[labels].append(f"{name}{{{labels}}} {value:.6f} {t:.3f}")
            family = _family(name)
            for lines in by_series.values():
                families[family] += lines

    # --- Loki and Jaeger -------------------------------------------------------------------

    def log_streams(self, now: datetime) -> list[tuple[dict[str, str], list[tuple[float, str]]]]:
        streams = []
        for service in self.services:
            lines: list[tuple[float, str]] = []
            moment = now - self.history
            n = 0
            while moment <= now:
                b = self.behaviour(service, moment)
                lines.append((moment.timestamp(), f"INFO handled {int(b.rps * STEP_S)} requests"))
                if service == self.culprit:
                    for i in range(b.log_errors):
                        n += 1
                        line = self.error_line.format(n=n)
                        lines.append((moment.timestamp() + 0.01 * (i + 1), line))
                moment += timedelta(seconds=STEP_S)
            streams.append(({"app": service, "namespace": self.namespace}, lines))
        return streams

    def spans(self, now: datetime, *, every: timedelta = timedelta(seconds=20)) -> list[FakeSpan]:
        spans: list[FakeSpan] = []
        moment = now - self.history
        number = 0
        root = self.services[0]
        while moment <= now:
            number += 1
            # Not hash(): it is salted per process, and the data must be the same in every one.
            trace_id = hashlib.sha256(f"{self.name}:{number}".encode()).hexdigest()[:32]
            self._span(trace_id, root, moment, None, spans, [0])
            moment += every
        return spans

    def _span(
        self,
        trace_id: str,
        service: str,
        start: datetime,
        parent: str | None,
        out: list[FakeSpan],
        counter: list[int],
    ) -> tuple[float, bool]:
        counter[0] += 1
        span_id = f"{counter[0]:016x}"
        mine = Behaviour()
        if service == self.culprit and start >= self.fault_at:
            mine = self.fault(service, Behaviour())
        duration = mine.latency_ms
        # The fault fails that share of the requests (spread evenly over traces).
        failed = int(trace_id[-4:], 16) % 100 < mine.error_ratio * 100 and mine.error_ratio > 0.1
        cursor = start + timedelta(milliseconds=1)
        for callee in self.callees(service):
            took, callee_failed = self._span(trace_id, callee, cursor, span_id, out, counter)
            cursor += timedelta(milliseconds=took)
            duration += took
            failed = failed or callee_failed
        out.append(
            FakeSpan(
                trace_id,
                span_id,
                service,
                f"GET /{service}",
                int(start.timestamp() * 1e9),
                int(duration * 1e6),
                parent_span_id=parent,
                error=failed,
            )
        )
        return duration, failed


def _family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.startswith("istio_request_duration_milliseconds") and name.endswith(suffix):
            return "istio_request_duration_milliseconds"
    return name


TYPES = {
    "istio_requests_total": ("istio_requests", "counter"),
    "istio_request_duration_milliseconds": ("istio_request_duration_milliseconds", "histogram"),
    "container_cpu_usage_seconds_total": ("container_cpu_usage_seconds", "counter"),
    "container_cpu_cfs_periods_total": ("container_cpu_cfs_periods", "counter"),
    "container_cpu_cfs_throttled_periods_total": ("container_cpu_cfs_throttled_periods", "counter"),
    "container_memory_working_set_bytes": ("container_memory_working_set_bytes", "gauge"),
    "kube_pod_container_status_restarts_total": ("kube_pod_container_status_restarts", "counter"),
}


def openmetrics(scenarios: list[Scenario], now: datetime) -> str:
    """One OpenMetrics document for several scenarios (each family once, series contiguous)."""
    merged: defaultdict[str, list[str]] = defaultdict(list)
    for scenario in scenarios:
        for family, lines in scenario.openmetrics(now).items():
            merged[family] += lines
    out = []
    for family, lines in merged.items():
        name, kind = TYPES[family]
        out.append(f"# TYPE {name} {kind}")
        out += lines
    return "\n".join(out) + "\n# EOF\n"


def _errors(_: str, b: Behaviour) -> Behaviour:
    b.error_ratio, b.log_errors = 0.4, 3
    return b


def _starved(_: str, b: Behaviour) -> Behaviour:
    b.throttled, b.cpu_cores, b.latency_ms = 0.7, 0.5, 400.0
    return b


def _slow_query(_: str, b: Behaviour) -> Behaviour:
    b.latency_ms = 350.0
    return b


def scenarios(now: datetime) -> list[Scenario]:
    fault_at = now - timedelta(minutes=6)
    return [
        Scenario(
            "downstream error spike",
            "shop-errors",
            [("web", "api"), ("api", "payments"), ("api", "catalog")],
            culprit="payments",
            alerting="web",
            fault=_errors,
            fault_at=fault_at,
            error_line="ERROR card processor refused charge {n}: upstream 503",
        ),
        Scenario(
            "CPU-starved pod",
            "shop-cpu",
            [("storefront", "search"), ("search", "index"), ("storefront", "profile")],
            culprit="search",
            alerting="storefront",
            fault=_starved,
            fault_at=fault_at,
        ),
        Scenario(
            "slow database call behind a healthy API",
            "shop-db",
            [("gateway", "orders"), ("orders", "orders-db")],
            culprit="orders-db",
            alerting="orders",
            fault=_slow_query,
            fault_at=fault_at,
            mesh={"gateway", "orders"},  # the database has no sidecar: only traces see it
        ),
    ]
