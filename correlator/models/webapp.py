"""The WebApplication custom resource: what the platform knows about an app, validated.

Field names are camelCase in manifests, as in every Kubernetes resource. Validation errors
name the field (`spec.slo.availability`), so a manifest's author knows what to change.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.alias_generators import to_camel

from correlator.backends.logql import SelectorRefused, parse_selector

KIND = "WebApplication"
DEFAULT_API_GROUP = "platform.correlator.dev"
DEFAULT_API_VERSION = "v1alpha1"

# Istio's default buckets for istio_request_duration_milliseconds: a latency SLO's threshold
# must be one of them, or the SLI could not be computed from the histogram.
_ISTIO_BUCKETS = "0.5 1 5 10 25 50 100 250 500 1000 2500 5000 10000 30000 60000 300000 600000"
ISTIO_LATENCY_BUCKETS_MS: tuple[Decimal, ...] = tuple(Decimal(b) for b in _ISTIO_BUCKETS.split(" "))

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A classic label name, or a UTF-8 one Prometheus 3 reads quoted (backends/promql.metric_label).
_LABEL_NAME = re.compile(r'^(?!__)[^\x00-\x1f\x7f"\\{},=~!`]{1,128}$|^[a-zA-Z_][a-zA-Z0-9_]*$')


def _dns_label(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"must be at most 63 characters (a DNS-1123 label), got {len(value)}")
    if not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _label_name(value: str) -> str:
    if not _LABEL_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*, or on Prometheus 3 "
            "a UTF-8 name such as service.name (no quotes, braces, commas, =, ~, ! or control "
            "characters; not starting with __)"
        )
    return value


def _percent(value: Decimal) -> Decimal:
    if not Decimal(0) < value < Decimal(100):
        raise ValueError(
            f"must be a percentage strictly between 0 and 100, got {value} "
            "(100 leaves no error budget to alert on; 0 allows every request to fail)"
        )
    return value


# The json_schema_extra parts are what the CRD's OpenAPI schema (OpenAPI 3.0) checks.
DnsLabel = Annotated[
    str,
    AfterValidator(_dns_label),
    Field(json_schema_extra={"pattern": _DNS_LABEL.pattern, "maxLength": 63}),
]
LabelName = Annotated[
    str, AfterValidator(_label_name), Field(json_schema_extra={"pattern": _LABEL_NAME.pattern})
]
Percent = Annotated[
    Decimal,
    Field(
        allow_inf_nan=False,
        json_schema_extra={
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 100,
            "exclusiveMaximum": True,
        },
    ),
    AfterValidator(_percent),
]


def _no_template(value: str) -> str:
    # Spec values are copied into PrometheusRule labels and annotations, which Prometheus
    # expands as Go templates: `{{ query "…" }}` would run any PromQL, a stray `{{` would
    # break the rule reload.
    if "{{" in value or "}}" in value:
        raise ValueError("must not contain '{{' or '}}' (Prometheus would expand a template)")
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ValueError("must be an http:// or https:// URL without spaces")
    return value


def _stream_selector(value: str) -> str:
    try:
        parse_selector(value)
    except SelectorRefused as exc:
        raise ValueError(str(exc)) from None
    return value


Text = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_no_template)
]
Url = Annotated[Text, AfterValidator(_http_url)]
StreamSelector = Annotated[Text, AfterValidator(_stream_selector)]


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class LatencySLO(_Spec):
    threshold_ms: Decimal = Field(
        allow_inf_nan=False,
        json_schema_extra={"enum": [float(b) for b in ISTIO_LATENCY_BUCKETS_MS]},
    )
    target: Percent

    @field_validator("threshold_ms")
    @classmethod
    def _is_a_bucket(cls, value: Decimal) -> Decimal:
        if value not in ISTIO_LATENCY_BUCKETS_MS:
            buckets = ", ".join(str(b) for b in ISTIO_LATENCY_BUCKETS_MS)
            raise ValueError(
                f"{value} ms is not a bucket of istio_request_duration_milliseconds; "
                f"use one of {buckets}"
            )
        return value


class SLOs(_Spec):
    availability: Percent | None = None
    latency: LatencySLO | None = None
    window_days: int = Field(30, ge=1, le=365)


class Severities(_Spec):
    page: Text = "critical"
    ticket: Text = "warning"


class Alerting(_Spec):
    severity: Severities = Severities()
    chat_channel: Text | None = None
    page_receiver: Text | None = None
    ticket_receiver: Text | None = None
    grafana_managed: bool = False


class ExtraPanel(_Spec):
    title: Text
    expr: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    unit: Text = "short"


class MetricLabels(_Spec):
    """Label names that identify the app's series, for platforms that relabel."""

    namespace: LabelName = "destination_workload_namespace"
    workload: LabelName = "destination_workload"
    pod_namespace: LabelName = "namespace"
    pod: LabelName = "pod"


class Observability(_Spec):
    extra_panels: list[ExtraPanel] = Field(default_factory=list, max_length=50)
    log_selector: StreamSelector | None = None
    trace_service: Text | None = None
    metric_labels: MetricLabels = MetricLabels()
    runbook_url: Url | None = None
    revert_manual_edits: bool = True


class WebAppSpec(_Spec):
    image: Text
    replicas: int = Field(1, ge=0, le=10_000)
    port: int = Field(8080, ge=1, le=65535)
    host: Text | None = None
    team: DnsLabel
    repo: Text | None = None
    slo: SLOs = SLOs()
    alerting: Alerting = Alerting()
    observability: Observability = Observability()


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: DnsLabel
    namespace: DnsLabel = "default"
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(None, alias="resourceVersion")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WebApplication(BaseModel):
    """One app, as the platform describes it."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: str = Field(alias="apiVersion")
    kind: Literal["WebApplication"]
    metadata: ObjectMeta
    spec: WebAppSpec
    status: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """namespace/name, the app's identity."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace
