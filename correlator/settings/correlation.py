"""The correlation: the metric signal catalogue, the windows, the links in reports, and what
each analysis keeps for replay."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from correlator.analysis.scope import APP_LABELS, NAMESPACE_LABELS
from correlator.settings.base import _Group


class SignalSettings(_Group):
    """One metric signal of the catalogue: a PromQL template with $ns, $names, $pods, $by,
    $pod_by and $window placeholders (see correlator/signals.py)."""

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    unit: str = ""
    query: str
    worse_when: Literal["higher", "lower", "either"] = "higher"

    @model_validator(mode="after")
    def _selects_services(self) -> SignalSettings:
        if "$names" not in self.query and "$pods" not in self.query:
            raise ValueError(f"signal {self.name}: the query must select $names or $pods")
        return self


InputKind = Literal["metrics", "logs", "traces"]
INPUT_KINDS: tuple[InputKind, ...] = ("metrics", "logs", "traces")


class KeepInputsSettings(_Group):
    """What each analysis keeps of its inputs, so it can be replayed (docs/concepts/replay.md)."""

    enabled: bool = Field(
        True, description="Keep each analysis's telemetry as a compressed incident bundle."
    )
    kinds: list[InputKind] = Field(
        default_factory=lambda: list(INPUT_KINDS),
        description="Which telemetry is kept (logs may hold personal data: leave them out).",
    )
    max_bytes: int = Field(
        20 * 2**20, gt=0, description="A bundle larger than this, compressed, is not kept."
    )
    retention_days: float = Field(
        30.0, ge=0, description="Bundles older than this are deleted hourly (0: never)."
    )

    @field_validator("kinds")
    @classmethod
    def _distinct(cls, kinds: list[InputKind]) -> list[InputKind]:
        return sorted(set(kinds), key=INPUT_KINDS.index)


class CorrelationSettings(_Group):
    """The correlation of an alert group with metrics, logs and traces."""

    app_labels: list[str] = Field(
        default_factory=lambda: list(APP_LABELS),
        description="Alert labels naming the app, tried in order (a pod is reduced to its "
        "Deployment).",
    )
    namespace_labels: list[str] = Field(
        default_factory=lambda: list(NAMESPACE_LABELS),
        description="Alert labels naming the namespace, tried in order (also what "
        "`?namespace=` matches).",
    )
    signals: list[SignalSettings] = Field(
        default_factory=list,
        description="The metric signal catalogue; empty: the Istio/cAdvisor/kube-state-metrics "
        "defaults.",
    )

    deadline_s: float = Field(
        8.0, gt=0, description="Overall deadline of one correlation; missing parts are named."
    )
    lead_min: float = Field(15, gt=0, description="Minutes before the onset the incident starts.")
    baseline_min: float = Field(60, gt=0, description="Length of the baseline window (minutes).")
    max_incident_min: float = Field(
        120, gt=0, description="Longest incident window after the onset (minutes)."
    )
    neighbour_depth: int = Field(2, ge=0, le=5, description="Call-graph hops around the app.")
    step_s: float = Field(15.0, gt=0, description="Resolution of metric range queries.")
    share_s: float = Field(
        60.0,
        ge=0,
        description="Incidents with the same services in scope and the same onset, correlated "
        "within this many seconds of each other, share one analysis (an app firing several "
        "alert groups at once); 0: every incident is analysed on its own.",
    )
    share_onset_s: float = Field(
        15.0,
        ge=0,
        le=300,
        description="Onsets at most this many seconds apart count as the same onset for "
        "share_s: an app's alert rules fire on evaluations seconds apart, and windows that "
        "open within one step of each other see the same samples; the report says how far "
        "apart. 0: only equal onsets.",
    )
    grafana_url: str | None = Field(
        None, description="Grafana base URL for Explore links in reports (unset: no links)."
    )
    grafana_prometheus_uid: str = Field("prometheus", description="Prometheus datasource UID.")
    grafana_loki_uid: str = Field("loki", description="Loki datasource UID.")
    jaeger_ui_url: str | None = Field(
        None, description="Jaeger UI base URL for trace links (unset: the Jaeger API URL)."
    )
    kiali_url: str | None = Field(
        None,
        description="Kiali base URL with its web root (e.g. https://kiali.example/kiali) for "
        "the Mesh link to the app's workload graph (unset: no link).",
    )
    metric_link: str = Field(
        "{grafana}/explore?schemaVersion=1&orgId=1&panes={prometheus_pane}",
        description="Link of a metric: {grafana}, {prometheus_pane}, {query}, {from}, {to}.",
    )
    log_link: str = Field(
        "{grafana}/explore?schemaVersion=1&orgId=1&panes={loki_pane}",
        description="Link of a log template: {grafana}, {loki_pane}, {query}, {from}, {to}.",
    )
    trace_link: str = Field(
        "{jaeger}/trace/{trace_id}", description="Link of a trace: {jaeger}, {trace_id}."
    )
    keep_inputs: KeepInputsSettings = Field(
        default_factory=KeepInputsSettings,
        description="Each analysis's inputs kept for replay: {enabled, kinds (metrics, logs, "
        "traces), max_bytes (compressed, per bundle), retention_days} (YAML; JSON in the "
        "environment).",
    )
