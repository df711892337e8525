"""The pipeline: an incident → the question it asks (its scope and onset) → the telemetry of
every service in scope, fetched concurrently under one deadline → the analysis → the report
body. Storing the report and announcing it are the runtime's (`runtime/correlations.py`): the
pipeline imports neither the store nor the sinks.

Each step lives in its own module: `targets` (how each service is found in each backend: its
WebApplication, else label heuristics), `graph` (the call graph that widens the scope),
`sources` (metric, log and trace fetches), `changes` (deploys), `report` (the stored body).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import trace

from correlator.analysis.evidence import Analysis
from correlator.analysis.scope import ScopeRules, neighbours_of
from correlator.analysis.telemetry import (
    SignalMeta,
    Telemetry,
)
from correlator.analysis.windows import WindowPolicy, Windows, incident_windows
from correlator.backends.jaeger import JaegerBackend
from correlator.backends.loki import LokiBackend
from correlator.backends.prometheus import PrometheusBackend
from correlator.catalogue import Catalogue
from correlator.errors import StoreRefused, StoreUnavailable
from correlator.metrics import Metrics
from correlator.models.alerts import AlertStatus
from correlator.models.incidents import IncidentAlerts
from correlator.models.report import App, Inputs, Report
from correlator.pipeline.analysis_pool import AnalysisPool, AnalysisTimeout
from correlator.pipeline.changes import fetch_changes
from correlator.pipeline.collecting import Collecting, conformed, reading, telemetry_of
from correlator.pipeline.fetch import Fetch, bounded
from correlator.pipeline.frames import metric_evidence, trace_evidence
from correlator.pipeline.graph import call_graph
from correlator.pipeline.keep import InputKeeper, SaveInputs
from correlator.pipeline.report import build_report, evidence_series
from correlator.pipeline.sharing import (
    SHARED_NOTE,
    Question,
    Shared,
    SharedReports,
    nearest_report,
    shared_note,
)
from correlator.pipeline.sources import (
    fetch_logs,
    fetch_metrics,
    fetch_traces,
    log_query,
    metric_queries,
    read_metrics,
    read_traces,
)
from correlator.pipeline.targets import (
    Target,
    alert_scope,
    incident_app,
    targets,
    tracing_names,
)
from correlator.settings import Settings
from correlator.signals import DEFAULT_SIGNALS, ServiceLabels, Signal

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
BACKENDS = ("prometheus", "loki", "jaeger")
DEFAULT_LABELS = ServiceLabels()
DEFAULT_SCOPE = ScopeRules()
# The call graph gets a third of the deadline: a slow graph source must leave time for the
# signals themselves (the scope is then the alerting apps and what answered).
GRAPH_SHARE = 1 / 3


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        reports: SharedReports | None = None,
        save_inputs: SaveInputs | None = None,
        signals: Sequence[Signal] = DEFAULT_SIGNALS,
        labels: ServiceLabels = DEFAULT_LABELS,
        scope_rules: ScopeRules = DEFAULT_SCOPE,
        catalogue: Catalogue | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`reports`: where to find what other replicas analysed; `save_inputs`: how to keep
        each analysis's inputs when `correlation.keep_inputs` is on."""
        self.settings = settings
        self.reports = reports
        self.metrics = metrics
        # Analysis is CPU: at most `analysis_concurrency` at once, off the event loop, however
        # many correlations are waiting on their backends.
        self._analysis = AnalysisPool(
            settings.queue.analysis_pool,
            settings.queue.analysis_concurrency,
            timeout_s=settings.queue.analysis_timeout_s,
        )
        # Incidents asking the same question (same services, same onset) share one analysis.
        # At most 128 report bodies kept (a few MiB); older answers are found in the store.
        self._shared: Shared[tuple[Report, bool]] = Shared(settings.correlation.share_s, 128)
        self._correlating = 0  # correlations fetching or analysing now
        # The settings an analysis depends on, part of every question (replicas of two
        # versions of the configuration do not share).
        self._config = hashlib.sha256(
            "".join(
                getattr(settings, group).model_dump_json()
                for group in ("correlation", "prometheus", "loki", "jaeger")
            ).encode()
        ).hexdigest()
        self.catalogue = catalogue or Catalogue()
        c = settings.correlation
        # Each analysis's inputs, kept for replay (correlation.keep_inputs), off the report's path.
        self._keeper = (
            InputKeeper(c.keep_inputs, save_inputs, self._analysis, metrics)
            if save_inputs is not None and c.keep_inputs.enabled
            else None
        )
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
        self.policy = WindowPolicy(
            lead=timedelta(minutes=c.lead_min),
            max_incident=timedelta(minutes=c.max_incident_min),
            baseline=timedelta(minutes=c.baseline_min),
        )

    def warm(self) -> None:
        """Start the analysis processes now rather than on the first alert's analysis."""
        self._analysis.warm()

    async def close(self) -> None:
        if self._keeper is not None:
            await self._keeper.close()
        for backend in (self.prometheus, self.loki, self.jaeger):
            if backend is not None:
                await backend.close()
        self._shared.close()
        self._analysis.close()

    def question(self, incident: IncidentAlerts) -> Question:
        """What the incident's analysis depends on: the services its firing alerts name, their
        namespaces, the onset, the WebApplications and the settings."""
        firing = [a for a in incident.alerts if a.status == AlertStatus.FIRING] or incident.alerts
        onset = min((a.starts_at for a in firing), default=incident.started_at)
        services, namespaces = alert_scope(firing, self.scope_rules, self.settings.tenancy)
        return Question.of(
            services,
            namespaces,
            onset,
            f"{self.catalogue.revision}:{self._config}",
            self.settings.correlation.share_onset_s,
        )

    async def correlate(
        self, incident: IncidentAlerts, *, now: datetime, question: Question | None = None
    ) -> Report:
        """The report of the incident. Incidents asking the same question (`question`)
        within `correlation.share_s` of each other share one analysis: the one running on this
        replica, else a report another replica stored."""
        question = question or self.question(incident)
        (body, analysed), waited = await self._shared.get(
            question.scope,
            lambda: self._answer(question, incident, now),
            at=question.onset.timestamp(),
            within=self.settings.correlation.share_onset_s,
        )
        if self.metrics is not None:
            how = "analysed" if analysed and not waited else "shared"
            self.metrics.correlations.labels(how).inc()
        notes = [n for n in body.notes if not n.startswith(SHARED_NOTE)]
        if body.owner != incident.id:
            notes.append(shared_note(body, question.onset))
        return body.model_copy(update={"incident_id": incident.id, "notes": notes})

    async def _answer(
        self, question: Question, incident: IncidentAlerts, now: datetime
    ) -> tuple[Report, bool]:
        """The report answering `question`, and whether it was analysed for it (False: a
        report another replica stored)."""
        c = self.settings.correlation
        if self.reports is not None and c.share_s > 0:
            try:
                stored = await self.reports.shared_reports(
                    question.nearby, now - timedelta(seconds=c.share_s)
                )
            except (StoreUnavailable, StoreRefused) as exc:  # analysing again is always correct
                log.warning("could not look for a shared report: %s", exc)
                stored = []
            nearest = nearest_report(stored, question.onset, c.share_onset_s)
            if nearest is not None:
                return nearest, False
        body = await self._correlate(
            incident, list(question.services), list(question.namespaces), question.onset, now
        )
        return body, True

    async def _correlate(
        self,
        incident: IncidentAlerts,
        alert_services: list[str],
        namespaces: list[str],
        onset: datetime,
        now: datetime,
    ) -> Report:
        incident_id = incident.id
        started = time.perf_counter()
        # The windows end on the step grid (as Grafana and Prometheus' query frontends align
        # queries): correlations within one step ask the backends the same questions, which
        # the backend clients then answer once.
        step = self.settings.correlation.step_s
        aligned = datetime.fromtimestamp(now.timestamp() // step * step, tz=UTC)
        windows = incident_windows(onset, aligned, self.policy)
        with tracer.start_as_current_span("correlate") as span:
            span.set_attribute("correlator.incident_id", incident_id)
            analysis, telemetry, fetch, services = await self.analysed(
                alert_services, namespaces, windows
            )
        app, team = incident_app(
            incident, (alert_services, namespaces), self.catalogue, self.scope_rules, self.settings
        )
        fetch.timings_ms["total"] = (time.perf_counter() - started) * 1e3
        keep = self.settings.correlation.keep_inputs
        report = build_report(
            self.settings,
            incident_id,
            analysis,
            fetch,
            (alert_services, services),
            lambda service: log_query(
                fetch.targets.get(service), service, self.settings.loki.service_label
            ),
            now,
            series=evidence_series(analysis, telemetry.metrics),
            app=App(name=app, team=team),
            inputs=Inputs(kinds=list(keep.kinds)) if self._keeper is not None else None,
        )
        if self._keeper is not None:
            # Once the report is built: handing the frames to the pool again takes the GIL a
            # moment, which the report's own work should not wait for.
            self._keeper.keep(
                incident,
                telemetry,
                windows,
                analysed_at=now,
                app=app,
                team=team,
                policy=self.policy,
            )
        return report

    async def analysed(
        self, alert_services: list[str], namespaces: list[str], windows: Windows
    ) -> tuple[Analysis, Telemetry, Fetch, list[str]]:
        """The telemetry of the services in scope and its analysis: each producer of evidence
        starts as soon as the sources it reads are in (`pipeline/collecting.py`), so what is
        left once the slowest source is in is its own producers and the ranking."""
        collecting = Collecting(self._analysis, windows, alone=lambda: self._correlating <= 1)
        self._correlating += 1
        try:
            telemetry, fetch, services = await self.gather(
                alert_services, namespaces, windows, collecting=collecting
            )
            last_source_in = time.perf_counter()
            try:
                analysis = await collecting.analysis(telemetry)
            except AnalysisTimeout as exc:
                # What was fetched is still worth a report; that it ranks nothing is said in it.
                log.warning("analysis of %s: %s", ", ".join(alert_services), exc)
                fetch.miss("analysis", "ranked causes", str(exc))
                analysis = Analysis(windows, [], services, notes=[str(exc)])
        finally:
            collecting.cancel()
            self._correlating -= 1
        # What the analysis added once the last source was in (the rest ran meanwhile).
        fetch.timings_ms["analysis"] = (time.perf_counter() - last_source_in) * 1e3
        return analysis, telemetry, fetch, services

    async def gather(
        self,
        alert_services: list[str],
        namespaces: list[str],
        windows: Windows,
        *,
        collecting: Collecting | None = None,
    ) -> tuple[Telemetry, Fetch, list[str]]:
        """Everything about the services in scope, within the overall deadline. `collecting`
        is told each time a source is in (fetched, failed or not configured), with the sources
        in so far, so their analysis can start while the others are fetched."""
        fetch = Fetch()
        c = self.settings.correlation
        deadline = time.monotonic() + c.deadline_s
        for name in BACKENDS:
            if getattr(self, name) is None:
                fetch.miss(name, "everything", "not configured")
        if not alert_services:
            fetch.miss("scope", "services", "no alert label names an app")
            return Telemetry(), fetch, []
        where = self.settings.loki.namespace_label
        alerting = targets(
            alert_services, namespaces, self.catalogue, self.labels, namespace_label=where
        )
        names = tracing_names(alerting.values(), self.catalogue)
        # The alerting apps' traces need no call graph: they are asked for beside it, so the
        # slowest source of a first alert (often Jaeger's) no longer waits for the graph.
        traces = asyncio.ensure_future(
            bounded(deadline, fetch, "traces", self._traces(alerting, windows, fetch))
        )
        try:
            return await self._gather_scope(
                alert_services, namespaces, windows, fetch, deadline, (names, traces), collecting
            )
        finally:
            traces.cancel()  # nothing when it is done; else the correlation is being given up

    async def _gather_scope(
        self,
        alert_services: list[str],
        namespaces: list[str],
        windows: Windows,
        fetch: Fetch,
        deadline: float,
        tracing: tuple[dict[str, str], Awaitable[Any]],
        collecting: Collecting | None,
    ) -> tuple[Telemetry, Fetch, list[str]]:
        """The call graph, the scope it gives, and its sources: the traces already asked for
        (Jaeger's names of the alerting apps, and their fetch)."""
        c = self.settings.correlation
        where = self.settings.loki.namespace_label
        names, traces = tracing
        started = time.perf_counter()
        graph_deadline = time.monotonic() + c.deadline_s * GRAPH_SHARE
        edges = await call_graph(
            self.jaeger, self.prometheus, namespaces, windows, fetch, graph_deadline, names
        )
        fetch.timings_ms["graph"] = (time.perf_counter() - started) * 1e3
        in_scope = dict.fromkeys(alert_services)
        for neighbour in neighbours_of(alert_services, edges, depth=c.neighbour_depth):
            in_scope.setdefault(neighbour.service)
        services = list(in_scope)
        found = fetch.targets = targets(
            services, namespaces, self.catalogue, self.labels, namespace_label=where
        )
        fetch.queries = metric_queries(self.signals, found, namespaces)
        first = fetch.queries[services[0]]
        signals = {s.name: SignalMeta(s.unit, s.worse_when, first[s.name]) for s in self.signals}
        sources: dict[str, Any] = {}

        async def source(
            kind: str,
            fetching: Awaitable[Any],
            then: Callable[[Any], Awaitable[Any]] | None = None,
        ) -> None:
            """Wait for one source (fetched within the deadline), then (`then`) read what came
            in: our own work, which the deadline for the backends does not bound."""
            value = await fetching
            if then is not None and value is not None:
                read_from = time.perf_counter()
                value = await then(value)
                fetch.timings_ms[f"read_{kind}"] = (time.perf_counter() - read_from) * 1e3
            sources[kind] = conformed(kind, value)
            if collecting is not None:
                collecting.arrived(
                    frozenset(sources), lambda kinds: telemetry_of(sources, kinds, signals, edges)
                )

        # A correlation alone reads its metrics and traces with the evidence of each alone.
        read_metrics_alone = reading(collecting, "metrics", metric_evidence, signals, edges)
        read_traces_alone = reading(collecting, "traces", trace_evidence, names, edges)
        await asyncio.gather(
            source(
                "metrics",
                bounded(deadline, fetch, "metrics", self._metrics(found, windows, fetch)),
                lambda answers: read_metrics(answers, self._analysis, fetch, read_metrics_alone),
            ),
            source(
                "logs",
                bounded(deadline, fetch, "logs", self._logs(found, namespaces, windows, fetch)),
            ),
            source(
                "traces",
                traces,
                # In the pool only for a correlation that has it to itself (not in a storm).
                lambda answers: read_traces(
                    answers,
                    names,
                    self._analysis,
                    fetch,
                    alone=self._correlating <= 1,
                    read=read_traces_alone,
                ),
            ),
            bounded(
                deadline,
                fetch,
                "changes",
                fetch_changes(
                    self.catalogue, self.prometheus, services, namespaces, windows, fetch
                ),
            ),
        )
        whole = telemetry_of(sources, frozenset(sources), signals, edges)
        return whole, fetch, services

    async def _metrics(self, found: dict[str, Target], windows: Windows, fetch: Fetch) -> Any:
        if self.prometheus is None:
            return None
        step = self.settings.correlation.step_s
        return await fetch_metrics(
            self.prometheus, self.signals, found, fetch.queries, windows, step, fetch
        )

    async def _logs(
        self, found: dict[str, Target], namespaces: list[str], windows: Windows, fetch: Fetch
    ) -> Any:
        if self.loki is None:
            return None
        return await fetch_logs(self.loki, self.settings.loki, found, namespaces, windows, fetch)

    async def _traces(self, alerting: dict[str, Target], windows: Windows, fetch: Fetch) -> Any:
        if self.jaeger is None:
            return None
        limit = self.settings.jaeger.max_traces
        return await fetch_traces(self.jaeger, list(alerting.values()), windows, limit, fetch)
