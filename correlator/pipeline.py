"""Alert group → scope → fan-out to the backends → analysis → report stored with the incident.

One correlation runs under one overall deadline. The call graph is read first (Jaeger's
dependencies, Istio's source/destination metrics) to widen the scope to neighbours; then every
metric signal, both log windows and both trace windows are fetched concurrently. Whatever does
not answer in time, or answers with an error or garbage, is named in the report's `missing`
list and the analysis runs on the rest: a report always comes out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import pandas as pd
from opentelemetry import trace

from correlator.analysis.findings import Finding
from correlator.analysis.rank import Suspect
from correlator.analysis.report import Analysis, analyse, suspect_json, windows_json
from correlator.analysis.scope import ScopeRules, candidate_names, neighbours
from correlator.analysis.telemetry import (
    METRIC_COLUMNS,
    SignalMeta,
    Telemetry,
    empty,
    log_frame,
    span_frame,
    wide_to_metrics,
)
from correlator.analysis.windows import WindowPolicy, Windows, incident_windows
from correlator.backends.http import BackendGarbage, BackendRefused, BackendUnavailable
from correlator.backends.jaeger import JaegerBackend, Span
from correlator.backends.loki import LogLine, LokiBackend, PartialLogs
from correlator.backends.prometheus import PrometheusBackend
from correlator.backends.promql import label_name, regex_escape, string_literal
from correlator.catalogue import Catalogue, deployed
from correlator.models.alerts import AlertStatus
from correlator.models.incidents import IncidentDetail
from correlator.settings import Settings
from correlator.signals import DEFAULT_SIGNALS, ServiceLabels, Signal, signal_query
from correlator.sinks.deliver import Notifier
from correlator.store import Store, WorkItem

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
T = TypeVar("T")
BACKENDS = ("prometheus", "loki", "jaeger")
DEFAULT_LABELS = ServiceLabels()
DEFAULT_SCOPE = ScopeRules()
GRAPH_SHARE = 1 / 3
_POD_SUFFIX = r"-[a-z0-9]{5,10}-[a-z0-9]{5}$"


@dataclass(slots=True)
class Fetch:
    """What one correlation gathered, and what it could not."""

    missing: list[dict[str, str]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Deploys of services in scope: service, revision, deployed_at, source.
    changes: list[dict[str, Any]] = field(default_factory=list)

    def miss(self, backend: str, what: str, reason: str) -> None:
        self.missing.append({"backend": backend, "what": what, "reason": reason})


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        signals: Sequence[Signal] = DEFAULT_SIGNALS,
        labels: ServiceLabels = DEFAULT_LABELS,
        scope_rules: ScopeRules = DEFAULT_SCOPE,
        notifier: Notifier | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.catalogue = catalogue or Catalogue()
        c = settings.correlation
        configured = tuple(Signal(x.name, x.unit, x.query, x.worse_when) for x in c.signals)
        self.signals = configured or tuple(signals)
        self.labels = labels
        if scope_rules is DEFAULT_SCOPE:
            scope_rules = ScopeRules(c.namespace_labels, c.app_labels)
        self.scope_rules = scope_rules
        prometheus = settings.prometheus.config("prometheus")
        loki = settings.loki.config("loki")
        jaeger = settings.jaeger.config("jaeger")
        self.prometheus = PrometheusBackend(prometheus) if prometheus else None
        # Pages as large as Loki's default entry limit: fewer round trips in a row (the
        # client learns a smaller server limit from the first refusal).
        page = min(settings.loki.max_lines, 5000)
        self.loki = LokiBackend(loki, page_size=page) if loki else None
        self.jaeger = JaegerBackend(jaeger) if jaeger else None
        c = settings.correlation
        self.policy = WindowPolicy(
            lead=timedelta(minutes=c.lead_min),
            max_incident=timedelta(minutes=c.max_incident_min),
            baseline=timedelta(minutes=c.baseline_min),
        )

    async def close(self) -> None:
        for backend in (self.prometheus, self.loki, self.jaeger):
            if backend is not None:
                await backend.close()

    async def handle(self, item: WorkItem) -> None:
        """The work-queue handler: correlate the incident and store its report."""
        assert self.store is not None
        incident = await self.store.get_incident(item.incident_id)
        if incident is None:
            return
        now = self.store.clock()
        try:
            body = await self.correlate(incident, now=now)
        except Exception as exc:  # a bug must still leave a report that says what happened
            log.exception("correlation of incident %s failed", incident.id)
            body = failed_report(incident.id, now, exc)
        stored = await self.store.save_report(
            incident.id, item.notification_id, "partial" if body["missing"] else "complete", body
        )
        if not stored:
            log.info("a newer report of incident %s is already stored", incident.id)
            return
        if self.notifier is not None:
            # Read back: the incident may have changed (resolved) while it was analysed.
            latest = await self.store.get_incident(incident.id)
            if latest is not None:
                await self.notifier.enqueue(latest, latest.report)

    async def correlate(self, incident: IncidentDetail, *, now: datetime) -> dict[str, Any]:
        started = time.perf_counter()
        firing = [a for a in incident.alerts if a.status == AlertStatus.FIRING] or incident.alerts
        onset = min((a.starts_at for a in firing), default=incident.started_at)
        windows = incident_windows(onset, now, self.policy)
        alert_services, namespaces = self._scope(firing)
        with tracer.start_as_current_span("correlate") as span:
            span.set_attribute("correlator.incident_id", incident.id)
            telemetry, fetch, services = await self.gather(alert_services, namespaces, windows)
        analysis_started = time.perf_counter()
        analysis = await asyncio.to_thread(analyse, telemetry, windows)
        fetch.timings_ms["analysis"] = (time.perf_counter() - analysis_started) * 1e3
        fetch.timings_ms["total"] = (time.perf_counter() - started) * 1e3
        body = self.report(incident.id, analysis, fetch, alert_services, services, now)
        body["series"] = evidence_series(analysis, telemetry.metrics)
        return body

    def _scope(self, alerts: Sequence[Any]) -> tuple[list[str], list[str]]:
        services: list[str] = []
        namespaces: list[str] = []
        for alert in alerts:
            labels = alert.labels
            for name in candidate_names(labels, self.scope_rules)[:1]:
                if name not in services:
                    services.append(name)
            for label in self.scope_rules.namespace_labels:
                if labels.get(label) and labels[label] not in namespaces:
                    namespaces.append(labels[label])
                    break
        return services, namespaces

    async def gather(
        self, alert_services: list[str], namespaces: list[str], windows: Windows
    ) -> tuple[Telemetry, Fetch, list[str]]:
        """Everything about the services in scope, within the overall deadline."""
        fetch = Fetch()
        deadline = time.monotonic() + self.settings.correlation.deadline_s
        for name in BACKENDS:
            if getattr(self, name) is None:
                fetch.miss(name, "everything", "not configured")
        if not alert_services:
            fetch.miss("scope", "services", "no alert label names an app")
            return Telemetry(), fetch, []
        # The call graph gets a third of the deadline: a slow graph source must leave time for
        # the signals themselves (the scope is then the alerting apps and what answered).
        graph_deadline = time.monotonic() + self.settings.correlation.deadline_s * GRAPH_SHARE
        started = time.perf_counter()
        edges = await self._graph(alert_services, namespaces, windows, fetch, graph_deadline)
        fetch.timings_ms["graph"] = (time.perf_counter() - started) * 1e3
        depth = self.settings.correlation.neighbour_depth
        services = list(alert_services)
        for service in alert_services:
            for neighbour in neighbours(service, edges, depth=depth):
                if neighbour.service not in services:
                    services.append(neighbour.service)
        queries = {
            s.name: signal_query(s, namespaces=namespaces, services=services, labels=self.labels)
            for s in self.signals
        }
        metrics, logs, spans, _ = await asyncio.gather(
            self._bounded(
                deadline, fetch, "metrics", self._metrics(queries, services, windows, fetch)
            ),
            self._bounded(
                deadline, fetch, "logs", self._logs(services, namespaces, windows, fetch)
            ),
            self._bounded(deadline, fetch, "traces", self._traces(alert_services, windows, fetch)),
            self._bounded(
                deadline, fetch, "changes", self._changes(services, namespaces, windows, fetch)
            ),
        )
        signals = {s.name: SignalMeta(s.unit, s.worse_when, queries[s.name]) for s in self.signals}
        telemetry = Telemetry(
            metrics=metrics if metrics is not None else empty(METRIC_COLUMNS),
            logs=logs if logs is not None else log_frame([]),
            spans=spans if spans is not None else span_frame([]),
            signals=signals,
            edges=edges,
        )
        return telemetry, fetch, services

    async def _bounded(
        self, deadline: float, fetch: Fetch, part: str, work: Awaitable[T]
    ) -> T | None:
        """Run one part until the overall deadline; on timeout, name what it was waiting for."""
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(work, max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            fetch.miss(_backend_of(part), part, "the correlation deadline passed first")
            return None
        finally:
            fetch.timings_ms[part] = (time.perf_counter() - started) * 1e3

    async def _call(
        self, fetch: Fetch, backend: str, what: str, call: Callable[[], Awaitable[T]]
    ) -> T | None:
        started = time.perf_counter()
        try:
            return await call()
        except BackendUnavailable as exc:
            fetch.miss(backend, what, f"unavailable: {exc}")
        except BackendRefused as exc:
            fetch.miss(backend, what, f"refused: {exc}")
        except BackendGarbage as exc:
            fetch.miss(backend, what, f"unusable answer: {exc}")
        finally:
            elapsed = (time.perf_counter() - started) * 1e3
            key = f"slowest_query_{backend}"
            fetch.timings_ms[key] = max(fetch.timings_ms.get(key, 0.0), elapsed)
        return None

    async def _graph(
        self,
        services: list[str],
        namespaces: list[str],
        windows: Windows,
        fetch: Fetch,
        deadline: float,
    ) -> set[tuple[str, str]]:
        edges: set[tuple[str, str]] = set()
        calls: dict[str, Awaitable[Any]] = {}
        if self.jaeger is not None:
            jaeger = self.jaeger
            lookback = windows.incident_end - windows.baseline_start
            calls["jaeger"] = self._call(
                fetch,
                "jaeger",
                "dependencies",
                lambda: jaeger.dependencies(windows.incident_end, lookback),
            )
        if self.prometheus is not None:
            prometheus = self.prometheus
            matchers = 'reporter="destination"'
            if namespaces:  # workload names repeat across namespaces
                pattern = "|".join(regex_escape(n) for n in namespaces)
                matchers += f",destination_workload_namespace=~{string_literal(pattern)}"
            query = (
                "sum by (source_workload, destination_workload) "
                f"(rate(istio_requests_total{{{matchers}}}[{_range(windows)}]))"
            )
            calls["prometheus"] = self._call(
                fetch,
                "prometheus",
                "istio call graph",
                lambda: prometheus.query(query, windows.incident_end),
            )
        tasks = {asyncio.ensure_future(call): name for name, call in calls.items()}
        if not tasks:
            return edges
        done, pending = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.001))
        for task in pending:
            task.cancel()
            fetch.miss(tasks[task], "call graph", "its share of the correlation deadline passed")
        for task in done:
            for item in task.result() or []:
                if hasattr(item, "parent"):
                    edges.add((item.parent, item.child))
                else:
                    caller = item.labels.get("source_workload")
                    callee = item.labels.get("destination_workload")
                    if caller and callee and caller != "unknown":
                        edges.add((caller, callee))
        return edges

    async def _changes(
        self, services: list[str], namespaces: list[str], windows: Windows, fetch: Fetch
    ) -> None:
        """Deploys of the services in scope: the revision and time the WebApplication records
        (annotations set by the delivery pipeline), else the creation of its newest ReplicaSet
        (kube-state-metrics) as the deploy time."""
        found: dict[str, dict[str, Any]] = {}
        for service in services:
            app = self.catalogue.named(service, namespaces[0] if len(namespaces) == 1 else None)
            if app is None:
                continue
            state = deployed(app)
            found[service] = {
                "service": service,
                "revision": state.revision,
                "deployed_at": state.deployed_at,
                "source": state.source,
                "repo": app.spec.repo,
            }
        if self.prometheus is not None:
            prometheus = self.prometheus
            pattern = "|".join(f"{regex_escape(s)}-[a-z0-9]{{5,10}}" for s in sorted(services))
            matchers = f"replicaset=~{string_literal(pattern)}"
            if namespaces:
                spaces = "|".join(regex_escape(n) for n in namespaces)
                matchers += f",namespace=~{string_literal(spaces)}"
            query = f"max by (replicaset) (kube_replicaset_created{{{matchers}}})"
            samples = await self._call(
                fetch,
                "prometheus",
                "deploys",
                lambda: prometheus.query(query, windows.incident_end),
            )
            for sample in samples or []:
                name = re.sub(r"-[a-z0-9]{5,10}$", "", sample.labels.get("replicaset", ""))
                created = datetime.fromtimestamp(sample.value, UTC)
                if name not in services or created > windows.incident_end:
                    continue
                entry = found.setdefault(
                    name, {"service": name, "revision": None, "deployed_at": None,
                           "source": "ReplicaSet", "repo": None}
                )  # fmt: skip
                if entry["deployed_at"] is None or (
                    entry["source"] == "ReplicaSet" and created > entry["deployed_at"]
                ):
                    entry["deployed_at"] = created
        fetch.changes = list(found.values())

    async def _metrics(
        self, queries: dict[str, str], services: list[str], windows: Windows, fetch: Fetch
    ) -> pd.DataFrame | None:
        """One range query per signal (`queries`, by signal name) for every service at once."""
        if self.prometheus is None:
            return None
        prometheus = self.prometheus
        step = max(
            self.settings.correlation.step_s,
            (windows.incident_end - windows.start).total_seconds() / 10_000,
        )

        async def one(signal: Signal) -> pd.DataFrame:
            query = queries[signal.name]
            wide = await self._call(
                fetch,
                "prometheus",
                signal.name,
                lambda: prometheus.query_range(query, windows.start, windows.incident_end, step),
            )
            if wide is None or wide.empty:
                return empty(METRIC_COLUMNS)
            return wide_to_metrics(wide, signal.name, self._series_services(wide.columns, services))

        frames = await asyncio.gather(*(one(s) for s in self.signals))
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else empty(METRIC_COLUMNS)

    def _series_services(self, columns: Any, services: list[str]) -> dict[object, str]:
        mapping: dict[object, str] = {}
        for column in columns:
            labels = dict(column) if isinstance(column, tuple) else {}
            name = labels.get(self.labels.istio_workload)
            if name is None and (pod := labels.get(self.labels.pod)):
                name = re.sub(_POD_SUFFIX, "", pod)
            if name in services:
                mapping[column] = name
        return mapping

    async def _logs(
        self, services: list[str], namespaces: list[str], windows: Windows, fetch: Fetch
    ) -> pd.DataFrame | None:
        if self.loki is None:
            return None
        loki = self.loki
        settings = self.settings.loki
        matchers = {settings.service_label: "|".join(sorted(services))}
        if namespaces:
            matchers[settings.namespace_label] = "|".join(namespaces)
        selector = _regex_selector(matchers)

        async def window(start: datetime, end: datetime, what: str) -> list[LogLine]:
            async def read() -> list[LogLine]:
                try:
                    return await loki.logs(selector, start, end, max_lines=settings.max_lines)
                except PartialLogs as partial:
                    # Keep every line that arrived (it may be the one that names the cause)
                    # and say the window is partial.
                    fetch.miss("loki", what, f"partial: {partial}")
                    return partial.lines

            lines = await self._call(fetch, "loki", what, read)
            return lines or []

        baseline, incident = await asyncio.gather(
            window(windows.baseline_start, windows.baseline_end, "baseline logs"),
            window(windows.incident_start, windows.incident_end, "incident logs"),
        )
        return log_frame(
            (
                line.timestamp,
                line.labels.get(settings.service_label, ""),
                line.line,
                line.trace_id or "",
            )
            for line in [*baseline, *incident]
        )

    async def _traces(
        self, services: list[str], windows: Windows, fetch: Fetch
    ) -> pd.DataFrame | None:
        if self.jaeger is None:
            return None
        jaeger = self.jaeger
        limit = self.settings.jaeger.max_traces

        async def window(service: str, start: datetime, end: datetime, what: str) -> list[Span]:
            spans = await self._call(
                fetch, "jaeger", what, lambda: jaeger.find_traces(service, start, end, limit=limit)
            )
            return spans or []

        # The traces through the alerting apps carry their callees' spans too.
        answers = await asyncio.gather(
            *(
                window(s, start, end, f"{what} traces of {s}")
                for s in services
                for start, end, what in (
                    (windows.baseline_start, windows.baseline_end, "baseline"),
                    (windows.incident_start, windows.incident_end, "incident"),
                )
            )
        )
        seen: set[tuple[str, str]] = set()
        rows = []
        for spans in answers:
            for s in spans:
                if (s.trace_id, s.span_id) in seen:
                    continue
                seen.add((s.trace_id, s.span_id))
                rows.append(
                    {
                        "trace_id": s.trace_id,
                        "span_id": s.span_id,
                        "parent_id": s.parent_span_id or "",
                        "service": s.service,
                        "operation": s.operation,
                        "start": s.start,
                        "duration_ms": s.duration_ms,
                        "error": s.error,
                    }
                )
        return span_frame(rows)

    def report(
        self,
        incident_id: int,
        analysis: Analysis,
        fetch: Fetch,
        alert_services: list[str],
        services: list[str],
        now: datetime,
    ) -> dict[str, Any]:
        links = Links(self.settings, analysis.windows)
        changes = change_evidence(fetch.changes, analysis)
        label = self.settings.loki.service_label
        for suspect in analysis.suspects:
            for finding in suspect.evidence:
                if finding.kind == "log" and not finding.query:  # the stream it came from
                    finding.query = _regex_selector({label: suspect.service})
        return {
            "incident_id": incident_id,
            "generated_at": now.isoformat().replace("+00:00", "Z"),
            "status": "partial" if fetch.missing else "complete",
            "windows": windows_json(analysis.windows),
            "scope": {"alerting": alert_services, "services": services},
            "suspects": [
                suspect_json(s, i, links.for_finding)
                for i, s in enumerate(analysis.suspects[:10], 1)
            ],
            "missing": fetch.missing,
            "changes": changes,
            "notes": analysis.notes,
            "timings_ms": {k: round(v, 1) for k, v in fetch.timings_ms.items()},
        }


RECENT_DEPLOY = timedelta(hours=2)


def change_evidence(changes: list[dict[str, Any]], analysis: Analysis) -> list[dict[str, Any]]:
    """Deploys as evidence: each suspect deployed shortly before the alert says so in its
    reason and evidence ("deployed 7 min before the alert: abc1234"). Returns the changes as
    JSON, nearest to the alert first."""
    onset = analysis.windows.onset
    out = []
    for change in changes:
        when = change["deployed_at"]
        before = (onset - when).total_seconds() / 60 if when else None
        item = {
            **change,
            "deployed_at": when.isoformat().replace("+00:00", "Z") if when else None,
            "minutes_before_alert": round(before, 1) if before is not None else None,
        }
        out.append(item)
        recent = when is not None and timedelta(0) <= onset - when <= RECENT_DEPLOY
        if not recent:
            continue
        suspect = next((s for s in analysis.suspects if s.service == change["service"]), None)
        if suspect is None:
            # A deploy just before the alert is a suspect of its own, after those with evidence.
            suspect = Suspect(change["service"], 0.0, 0.0, when, "no telemetry left its baseline")
            analysis.suspects.append(suspect)
        revision = f": {change['revision'][:12]}" if change["revision"] else ""
        text = f"deployed {before:.0f} min before the alert{revision}"
        suspect.reason = f"{text}; {suspect.reason}"
        suspect.evidence.insert(
            0,
            Finding(
                service=suspect.service,
                kind="change",
                signal="deploy",
                score=0.0,
                before=None,
                after=None,
                unit="",
                change_time=when,
                detail=text,
                query=change["source"],
            ),
        )
    out.sort(key=lambda c: (c["minutes_before_alert"] is None, c["minutes_before_alert"] or 0))
    return out


MAX_GRAPHS = 3
MAX_POINTS = 240


def evidence_series(analysis: Analysis, metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """The series behind the top suspects' strongest metric evidence, for the graphs of the
    report (at most MAX_POINTS points each, over both windows)."""
    series: list[dict[str, Any]] = []
    if metrics.empty:
        return series
    for suspect in analysis.suspects:
        finding = next((f for f in suspect.evidence if f.kind == "metric"), None)
        if finding is None:
            continue
        rows = metrics[
            (metrics["service"] == suspect.service) & (metrics["signal"] == finding.signal)
        ]
        rows = rows.sort_values("time")
        if rows.empty:
            continue
        step = max(1, len(rows) // MAX_POINTS)
        points = [
            [t.isoformat().replace("+00:00", "Z"), float(v)]
            for t, v in zip(rows["time"][::step], rows["value"][::step], strict=True)
        ]
        series.append(
            {
                "title": f"{suspect.service}: {finding.signal}",
                "service": suspect.service,
                "signal": finding.signal,
                "unit": finding.unit,
                "change_time": finding.change_time.isoformat().replace("+00:00", "Z")
                if finding.change_time
                else None,
                "points": points,
            }
        )
        if len(series) == MAX_GRAPHS:
            break
    return series


def failed_report(incident_id: int, now: datetime, exc: BaseException) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "generated_at": now.isoformat().replace("+00:00", "Z"),
        "status": "partial",
        "windows": None,
        "scope": {"alerting": [], "services": []},
        "suspects": [],
        "missing": [
            {"backend": "analysis", "what": "everything", "reason": f"{type(exc).__name__}: {exc}"}
        ],
        "changes": [],
        "notes": ["the correlation failed; see the service log for the stack trace"],
        "series": [],
        "timings_ms": {},
    }


def _backend_of(part: str) -> str:
    return {
        "metrics": "prometheus",
        "logs": "loki",
        "traces": "jaeger",
        "changes": "prometheus",
    }[part]


def _range(windows: Windows) -> str:
    return f"{max(int((windows.incident_end - windows.baseline_start).total_seconds()), 60)}s"


def _regex_selector(matchers: Mapping[str, str]) -> str:
    """`{label=~"a|b"}` where each `|`-separated value is matched literally."""
    parts = []
    for name, alternatives in sorted(matchers.items()):
        pattern = "|".join(regex_escape(v) for v in alternatives.split("|"))
        parts.append(f"{label_name(name)}=~{string_literal(pattern)}")
    return "{" + ",".join(parts) + "}"


class Links:
    """Grafana Explore and Jaeger UI links of each piece of evidence (templates in settings)."""

    def __init__(self, settings: Settings, windows: Windows) -> None:
        self.c = settings.correlation
        self.service_label = settings.loki.service_label
        self.jaeger = (self.c.jaeger_ui_url or settings.jaeger.url or "").rstrip("/")
        self.start_ms = int(windows.baseline_start.timestamp() * 1000)
        self.end_ms = int(windows.incident_end.timestamp() * 1000)

    def _pane(self, uid: str, query: str) -> str:
        pane = {
            "a": {
                "datasource": uid,
                "queries": [{"refId": "A", "expr": query, "datasource": {"uid": uid}}],
                "range": {"from": str(self.start_ms), "to": str(self.end_ms)},
            }
        }
        return quote(json.dumps(pane, separators=(",", ":")), safe="")

    def for_finding(self, service: str, finding: Finding) -> dict[str, str]:
        links: dict[str, str] = {}
        grafana = (self.c.grafana_url or "").rstrip("/")
        values = {
            "grafana": grafana,
            "query": quote(finding.query, safe=""),
            "from": str(self.start_ms),
            "to": str(self.end_ms),
            "jaeger": self.jaeger,
        }
        if grafana and finding.kind == "metric" and finding.query:
            links["explore"] = self.c.metric_link.format(
                prometheus_pane=self._pane(self.c.grafana_prometheus_uid, finding.query), **values
            )
        if grafana and finding.kind == "log":
            query = _regex_selector({self.service_label: service})
            links["explore"] = self.c.log_link.format(
                loki_pane=self._pane(self.c.grafana_loki_uid, query), **values
            )
        if self.jaeger:
            for i, trace_id in enumerate(finding.trace_ids):
                links[f"trace_{i + 1}"] = self.c.trace_link.format(
                    trace_id=quote(trace_id, safe=""), **values
                )
        return links
