"""The only place configuration is read: CORRELATOR_* environment variables and a YAML file.

Precedence, highest first: command-line flags, environment variables, the YAML file given with
`--config`, the defaults below. The defaults are the embedded mode: a SQLite file in the working
directory and a server bound to 127.0.0.1.

Each group is a section of the YAML file and a prefix of the environment variable:
`database.url` is `CORRELATOR_DATABASE_URL`, `auth.bearer_token` is
`CORRELATOR_AUTH_BEARER_TOKEN`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from correlator.analysis.scope import APP_LABELS, NAMESPACE_LABELS
from correlator.backends.http import BackendConfig
from correlator.errors import ConfigError
from correlator.redaction import mask_query

ENV_PREFIX = "CORRELATOR_"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Group):
    """The HTTP server."""

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to bind (0 picks a free one).")
    max_body_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger bodies get 413, which Alertmanager "
        "never retries. The default fits a group of about 30,000 typical alerts; bodies over "
        "1 MiB are taken one at a time, so memory stays bounded.",
    )
    insecure: bool = Field(
        False,
        description="Allow binding a non-loopback address with no credential configured.",
    )
    shutdown_timeout_s: float = Field(
        30.0,
        gt=0,
        description="The whole shutdown's budget after the drain: in-flight requests, the "
        "intake's flush, the workers and the store's close share it, so the process exits "
        "within drain_s + this (the chart derives the pod's grace period from both).",
    )
    drain_s: float = Field(
        0.0,
        ge=0,
        le=300,
        description="After SIGTERM, how long the service keeps serving while /readyz answers "
        "503, so load balancers stop sending before it stops (0: stop at once; on Kubernetes "
        "the chart's preStop sleep does this).",
    )

    @property
    def shutdown_budget_s(self) -> float:
        """The longest the process takes from SIGTERM to exit: the drain, then the bounded
        shutdown."""
        return self.drain_s + self.shutdown_timeout_s


class DatabaseSettings(_Group):
    """The store of incidents, alerts, notifications and work items."""

    url: str = Field(
        "sqlite:///correlator.db",
        description="`sqlite:///PATH` (embedded, one process) or "
        "`postgresql://USER:PASSWORD@HOST:PORT/DB` (several replicas). The password is "
        "masked wherever the URL is shown.",
    )
    pool_size: int = Field(10, ge=1, le=200, description="Connections kept open (PostgreSQL).")

    @field_validator("url")
    @classmethod
    def _url_is_supported(cls, url: str) -> str:
        database_scheme(url)  # the error then names database.url, not the whole settings
        return url

    busy_timeout_ms: int = Field(
        5000,
        ge=0,
        description="How long a write waits for a lock before it fails (SQLite busy_timeout, "
        "PostgreSQL lock_timeout). A failed write is answered with 503, so Alertmanager retries.",
    )
    retention_days: float = Field(
        30.0,
        ge=0,
        description="Incidents with no notification, work or delivery for longer than this "
        "are deleted hourly, with their alerts, notifications, reports and deliveries "
        "(0: never).",
    )
    sqlite_synchronous: Literal["full", "normal"] = Field(
        "full",
        description="SQLite `synchronous` pragma. `full` survives power loss; `normal` survives "
        "a process crash only.",
    )


class AuthSettings(_Group):
    """Credentials required on /api/v1/*. Either or both may be set; none means open."""

    bearer_token: SecretStr | None = Field(
        None, description="Token expected as `Authorization: Bearer TOKEN`."
    )
    basic_username: str | None = Field(None, description="HTTP basic auth user name.")
    basic_password: SecretStr | None = Field(None, description="HTTP basic auth password.")
    read_bearer_token: SecretStr | None = Field(
        None,
        description="Token that reads the API and the incident pages, as `Authorization: Bearer "
        "TOKEN`; set, the credentials above only write alerts (what Grafana's contact point "
        "holds cannot read incidents); unset, they do both.",
    )

    @model_validator(mode="after")
    def _basic_is_complete(self) -> AuthSettings:
        if (self.basic_username is None) != (self.basic_password is None):
            raise ValueError(
                "auth.basic_username and auth.basic_password must be set together "
                "(CORRELATOR_AUTH_BASIC_USERNAME / CORRELATOR_AUTH_BASIC_PASSWORD)"
            )
        if self.bearer_token is not None and not self.bearer_token.get_secret_value():
            raise ValueError("auth.bearer_token is set but empty")
        if self.read_bearer_token is not None:
            if not self.read_bearer_token.get_secret_value():
                raise ValueError("auth.read_bearer_token is set but empty")
            if not self.configured:
                raise ValueError(
                    "auth.read_bearer_token needs an intake credential too (auth.bearer_token or "
                    "auth.basic_*): else anyone could write alerts"
                )
        return self

    @property
    def configured(self) -> bool:
        return self.bearer_token is not None or self.basic_username is not None


class IntakeSettings(_Group):
    """How webhook notifications are written."""

    max_batch: int = Field(
        256,
        ge=1,
        le=10_000,
        description="Most notifications committed in one transaction (group commit).",
    )


class QueueSettings(_Group):
    """The durable work queue that feeds the correlation pipeline."""

    workers: int = Field(
        4,
        ge=0,
        le=64,
        description="Correlations run at once per replica (0: none). Mostly waiting on the "
        "backends: a few per core; the analysis itself runs at most `analysis_concurrency` "
        "at a time.",
    )
    analysis_concurrency: int = Field(
        2, ge=1, le=64, description="Analyses (CPU) at once per replica: about its cores."
    )
    analysis_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Wall-clock limit of one analysis: past it the analysis process is killed "
        "and the report says the ranking is missing (threads are not killed).",
    )
    analysis_pool: Literal["process", "thread"] = Field(
        "process",
        description="Where analyses run: worker processes (they hold the GIL: measured 1.8x "
        "faster on 2 cores than threads) or threads (less memory, no parallelism).",
    )
    refresh_age_s: float = Field(
        300.0,
        ge=0,
        description="A re-notification that brought nothing new refreshes a report older than "
        "this (about Alertmanager's group_interval); else it is only recorded.",
    )
    refresh_delay_s: float = Field(
        60.0,
        ge=0,
        description="How long a refresh may wait behind new incidents (new incidents first; "
        "within that, more severe first, then oldest).",
    )
    lease_s: float = Field(
        30.0,
        gt=0,
        description="How long a claimed work item stays claimed without a heartbeat; after "
        "that another replica takes it over.",
    )
    poll_interval_s: float = Field(
        1.0, gt=0, description="How often an idle consumer looks for work from other replicas."
    )
    max_attempts: int = Field(8, ge=1, description="Attempts before a work item is given up.")
    retry_base_s: float = Field(2.0, gt=0, description="First retry delay; doubles per attempt.")
    retry_max_s: float = Field(300.0, gt=0, description="Longest retry delay.")


class ProvisioningSettings(_Group):
    """Grafana dashboards and alert rules for WebApplications."""

    grafana_url: str = Field(
        "http://127.0.0.1:3000", description="Grafana's API base URL, as correlator reaches it."
    )
    grafana_token: SecretStr | None = Field(
        None, description="Grafana service account token (Editor on the folders it manages)."
    )
    grafana_public_url: str | None = Field(
        None, description="Grafana's URL as people open it, for links (default: grafana_url)."
    )
    public_url: str = Field(
        "http://127.0.0.1:8080", description="correlator's URL as people open it, for links."
    )
    grafana_managed_teams: list[str] = Field(
        default_factory=list,
        description="Teams whose SLO alerts are also Grafana-managed alert rules (JSON list in "
        'the environment: `["payments"]`); an app can ask itself with '
        "spec.alerting.grafanaManaged.",
    )
    prometheus_datasource_uid: str = Field(
        "prometheus", description="UID of the Prometheus datasource Grafana-managed rules query."
    )
    disable_provenance: bool = Field(
        True,
        description="Send X-Disable-Provenance so Grafana-managed rules stay editable in the UI.",
    )
    webhook_url: str | None = Field(
        None,
        description="Where Grafana sends Grafana-managed rules' notifications: the URL of "
        "correlator's webhook contact point, as Grafana reaches it (default: public_url + "
        "/api/v1/alerts); it authenticates with auth.bearer_token or auth.basic_*.",
    )
    grafana_routing: Literal["auto", "rule", "policy"] = Field(
        "auto",
        description="How Grafana-managed rules reach correlator: `rule` sets each rule's "
        "notification_settings (Grafana 10.4+), `policy` adds one child route to the "
        "notification policy tree; `auto` picks `rule` on Grafana 10.4 and later, and "
        "`policy` when Grafana does not tell its version.",
    )
    concurrency: int = Field(8, ge=1, le=256, description="Grafana requests in flight at once.")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one Grafana request.")
    source_dir: Path | None = Field(
        None,
        description="Directory of WebApplication manifests that `serve` keeps provisioned "
        "(unset: `serve` does not provision).",
    )
    target: Literal["grafana", "files"] = Field(
        "grafana", description="Where `serve` provisions: Grafana's API, or files under out_dir."
    )
    out_dir: Path | None = Field(None, description="Output directory of the files target.")
    resync_interval_s: float = Field(
        300.0, gt=0, description="How often `serve` reconciles even if nothing changed (drift)."
    )
    watch_interval_s: float = Field(
        5.0, gt=0, description="How often `serve` looks for changed manifests."
    )


class KubernetesSettings(_Group):
    """The Kubernetes API: where WebApplications are discovered and PrometheusRules applied."""

    discovery: bool = Field(
        False, description="`serve` follows WebApplications through the Kubernetes API."
    )
    prometheus_rules: bool = Field(
        False, description="`serve` applies each app's PrometheusRule through the API."
    )
    kubeconfig: Path | None = Field(
        None,
        description="kubeconfig file; unset: the in-cluster service account, else $KUBECONFIG "
        "or ~/.kube/config.",
    )
    namespaces: list[str] = Field(
        default_factory=list,
        description='Namespaces to watch (JSON list in the environment: `["shop"]`); empty: all.',
    )
    api_group: str = Field("platform.correlator.dev", description="WebApplication API group.")
    api_version: str = Field("v1alpha1", description="WebApplication API version.")
    write_status: bool = Field(
        True, description="Record each app's provisioning result in status.conditions."
    )


class _BackendSettings(_Group):
    url: str | None = Field(None, description="Base URL; unset: not queried, and reports say so.")
    timeout_s: float = Field(3.0, gt=0, description="Timeout of one request.")
    bearer_token: SecretStr | None = Field(None, description="Bearer token sent with each request.")
    basic_username: str | None = Field(None, description="HTTP basic auth user name.")
    basic_password: SecretStr | None = Field(None, description="HTTP basic auth password.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    org_id: str | None = Field(None, description="X-Scope-OrgID of a multi-tenant backend.")
    ca_file: str | None = Field(
        None, description="CA bundle that signs the backend's TLS certificate."
    )
    insecure_skip_verify: bool = Field(False, description="Do not verify the TLS certificate.")
    max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest answer read; a larger one is garbage."
    )
    max_in_flight: int = Field(
        8,
        ge=1,
        le=1024,
        description="Requests in flight at once from one replica, however many correlations "
        "run: the budget that keeps an alert storm from overloading the backend.",
    )

    cache_s: float = Field(
        10.0,
        ge=0,
        le=300,
        description="Identical requests within this many seconds share one answer (and one "
        "request while it runs): in a storm many correlations ask the same (0: never).",
    )

    def config(self, name: str) -> BackendConfig | None:
        if self.url is None:
            return None
        basic = None
        if self.basic_username is not None:
            password = self.basic_password.get_secret_value() if self.basic_password else ""
            basic = (self.basic_username, password)
        return BackendConfig(
            name=name,
            url=self.url,
            timeout_s=self.timeout_s,
            bearer_token=self.bearer_token.get_secret_value() if self.bearer_token else None,
            basic_auth=basic,
            headers=dict(self.headers),
            org_id=self.org_id,
            ca_file=self.ca_file,
            insecure_skip_verify=self.insecure_skip_verify,
            max_body_bytes=self.max_body_bytes,
            max_in_flight=self.max_in_flight,
            cache_s=self.cache_s,
        )


class PrometheusSettings(_BackendSettings):
    """Prometheus (or a compatible API: Thanos, Mimir, VictoriaMetrics): metric signals."""


class LokiSettings(_BackendSettings):
    """Loki: log lines of the services in scope."""

    service_label: str = Field("app", description="Stream label naming the service.")
    namespace_label: str = Field("namespace", description="Stream label naming the namespace.")
    max_lines: int = Field(5000, ge=10, description="Lines read per window (baseline, incident).")
    max_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Bytes of log lines and labels read per correlation, across its windows "
        "and pages; past it the rest is reported missing (memory stays bounded).",
    )


class JaegerSettings(_BackendSettings):
    """Jaeger query service: traces and the service dependency graph."""

    max_traces: int = Field(100, ge=1, le=1500, description="Traces read per window and service.")


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


class _Sink(_Group):
    """What every sink has: a unique name, and which incidents it hears of."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    severities: list[str] = Field(default_factory=list, description="Only these (empty: all).")
    teams: list[str] = Field(
        default_factory=list, description="Only apps of these teams (empty: all)."
    )


class SlackSinkSettings(_Sink):
    type: Literal["slack"]
    token: SecretStr | None = Field(None, description="Bot token (xoxb-…), with channel.")
    channel: str | None = None
    channel_from_app: bool = Field(
        True, description="Post to the app's spec.alerting.chatChannel when it has one."
    )
    webhook_url: SecretStr | None = Field(None, description="Incoming webhook URL (a secret).")
    api_url: str = "https://slack.com/api"

    @model_validator(mode="after")
    def _one_way(self) -> SlackSinkSettings:
        if (self.token is None) == (self.webhook_url is None):
            raise ValueError(f"sink {self.name}: set exactly one of token and webhook_url")
        if self.token is not None and not self.channel:
            raise ValueError(f"sink {self.name}: a bot token needs a channel")
        return self


class WebhookSinkSettings(_Sink):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for the signature.")
    headers: dict[str, str] = Field(default_factory=dict)


class TeamsSinkSettings(_Sink):
    type: Literal["teams"]
    url: SecretStr = Field(description="Workflows webhook URL (a secret).")


class MattermostSinkSettings(_Sink):
    type: Literal["mattermost"]
    url: SecretStr = Field(description="Incoming webhook URL (a secret).")


class GitHubSinkSettings(_Sink):
    type: Literal["github"]
    token: SecretStr = Field(description="A token that may comment (fine-grained: pull requests "
                             "and contents, read and write).")  # fmt: skip
    api_url: str = Field(
        "https://api.github.com", description="GitHub Enterprise: https://HOST/api/v3"
    )
    web_host: str = Field("github.com", description="Host of the repository URLs it handles.")


class GitLabSinkSettings(_Sink):
    type: Literal["gitlab"]
    token: SecretStr = Field(description="A token with the api scope (PRIVATE-TOKEN).")
    api_url: str = Field(
        "https://gitlab.com/api/v4", description="Self-hosted: https://HOST/api/v4"
    )
    web_host: str = Field("gitlab.com", description="Host of the repository URLs it handles.")


class GrafanaSinkSettings(_Sink):
    type: Literal["grafana"]
    url: str = Field(pattern=r"^https?://", description="Grafana base URL.")
    token: SecretStr = Field(description="Service account token (annotations:write).")


SinkSettings = Annotated[
    SlackSinkSettings
    | WebhookSinkSettings
    | TeamsSinkSettings
    | MattermostSinkSettings
    | GitHubSinkSettings
    | GitLabSinkSettings
    | GrafanaSinkSettings,
    Field(discriminator="type"),
]


class NotifySettings(_Group):
    """Where developers hear about incidents: chat and webhooks, through a durable outbox."""

    sinks: list[SinkSettings] = Field(
        default_factory=list, description="Sinks (YAML list; see docs/concepts/notifications.md)."
    )
    deliverers: int = Field(1, ge=0, le=16, description="Concurrent outbox consumers (0: none).")
    lease_s: float = Field(
        60.0,
        gt=0,
        description="A send under way renews its lease every third of this; a consumer that "
        "dies holding it is taken over by another after this.",
    )
    max_attempts: int = Field(12, ge=1, description="Attempts before a delivery is given up.")
    retry_base_s: float = Field(2.0, gt=0, description="First retry delay; doubles, with jitter.")
    retry_max_s: float = Field(600.0, gt=0, description="Longest retry delay.")

    @model_validator(mode="after")
    def _unique_names(self) -> NotifySettings:
        names = [sink.name for sink in self.sinks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sink names must be unique: {', '.join(duplicates)}")
        return self


class LeaderSettings(_Group):
    """One provisioning leader among the replicas (the others serve and correlate)."""

    election: Literal["auto", "kubernetes", "postgresql", "none"] = Field(
        "auto",
        description="auto: a Kubernetes Lease when discovery runs through the API, else a "
        "PostgreSQL advisory lock on PostgreSQL, else none (one process: SQLite).",
    )
    lease_name: str = Field(
        "correlator-provisioning",
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="Name of the coordination.k8s.io Lease.",
    )
    namespace: str | None = Field(
        None, description="Namespace of the Lease; unset: the pod's service account namespace."
    )
    identity: str | None = Field(
        None, description="This replica in the Lease; unset: the host name and a random suffix."
    )
    lease_duration_s: float = Field(
        15.0, gt=0, description="A dead leader is replaced after this (plus one retry period)."
    )
    renew_deadline_s: float = Field(
        10.0, gt=0, description="A leader that could not renew for this long stops writing."
    )
    retry_period_s: float = Field(2.0, gt=0, description="Renewal and candidacy interval.")

    @model_validator(mode="after")
    def _ordered(self) -> LeaderSettings:
        if not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("needs retry_period_s < renew_deadline_s < lease_duration_s")
        return self


class LogSettings(_Group):
    """Logging. Traces are configured with the standard OTEL_* variables."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    format: Literal["json", "text"] = Field(
        "json", description="`json`: one object per line with trace_id/span_id; `text`: plain."
    )


class TeamBinding(_Group):
    """What one team owns, as the platform grants it: its namespaces, and what its
    WebApplications may name. In the lists, `*` matches within one path segment."""

    namespaces: list[str] = Field(default_factory=list)
    chat_channels: list[str] = Field(default_factory=list)
    repositories: list[str] = Field(default_factory=list)
    receivers: list[str] = Field(default_factory=list)


class TenancySettings(_Group):
    """Who owns what: the operator's binding of teams to namespaces, chat channels,
    repositories and receivers (docs/security.md)."""

    teams: dict[str, TeamBinding] = Field(
        default_factory=dict,
        description="Team → {namespaces, chat_channels, repositories, receivers} (YAML; JSON in "
        "the environment). Empty: a spec's team, chat channel, repository and receivers are "
        "trusted as written; set: a spec naming any outside its namespace's team is refused "
        "(Provisioned=False), and an alert without a namespace names no app.",
    )
    namespace_label: str | None = Field(
        None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Alert label the platform sets to the namespace of the rule that fired "
        "(prometheus-operator's enforcedNamespaceLabel): set, it alone says which namespace "
        "an alert comes from; unset: the first of correlation.namespace_labels.",
    )


class Settings(BaseSettings):
    """Everything correlator can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    auth: AuthSettings = AuthSettings()
    intake: IntakeSettings = IntakeSettings()
    queue: QueueSettings = QueueSettings()
    provisioning: ProvisioningSettings = ProvisioningSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    loki: LokiSettings = LokiSettings()
    jaeger: JaegerSettings = JaegerSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    notify: NotifySettings = NotifySettings()
    leader: LeaderSettings = LeaderSettings()
    tenancy: TenancySettings = TenancySettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _provisioning_target_is_usable(self) -> Settings:
        options = self.provisioning
        if options.source_dir is None and not self.kubernetes.discovery:
            return self  # serve does not provision
        if options.target == "grafana" and options.grafana_token is None:
            raise ValueError(
                "provisioning.target grafana needs provisioning.grafana_token "
                "(CORRELATOR_PROVISIONING_GRAFANA_TOKEN)"
            )
        if options.target == "files" and options.out_dir is None:
            raise ValueError(
                "provisioning.target files needs provisioning.out_dir "
                "(CORRELATOR_PROVISIONING_OUT_DIR)"
            )
        return self


def database_scheme(url: str) -> Literal["sqlite", "postgresql"]:
    """Which store a URL selects; raises ValueError naming what is accepted."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"database.url is not a URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return "sqlite"
    if backend in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(
        f"database.url scheme {parsed.drivername!r} is not supported; "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def mask_url(url: str) -> str:
    """The URL with its secrets replaced by ***, for logs and `correlator config`: the password
    (which may hold `@`), or for an HTTP URL with a user only, that user (a token in that
    place); and the values of secret query parameters (`sig=`, `token=`, …)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return mask_query(url)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")  # the host follows the last @
    if at:
        user, colon, _ = userinfo.partition(":")
        masked = f"{user}:***" if colon else "***" if scheme.lower() in ("http", "https") else user
        rest = f"{masked}@{host}{rest[end:]}"
    return mask_query(f"{scheme}://{rest}")


def _mask_urls(value: Any, key: str = "") -> Any:
    """Every URL-shaped string in `value` (nested dicts and lists) with its secrets masked, and
    every header value (an API key, a token) replaced by ***."""
    if isinstance(value, dict):
        if key == "headers":
            return {name: "***" for name in value}
        return {name: _mask_urls(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_mask_urls(item, key) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def is_loopback(host: str) -> bool:
    """True when binding `host` exposes the server to this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the environment and the optional YAML file; raise ConfigError with what is wrong.

    `overrides` are nested dicts of command-line values, e.g. `server={"port": 9000}`.
    """
    if config_file is not None:
        _check_yaml_file(config_file)

    class _WithFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
            return tuple(sources)

    try:
        loaded = _WithFile(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    # Hand back the plain class so the rest of the program sees one type.
    return Settings.model_construct(
        **{name: getattr(loaded, name) for name in Settings.model_fields}
    )


def _check_yaml_file(path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections, not {type(data).__name__}"
        )


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"]) or "settings"
        env = ENV_PREFIX + "_".join(str(part) for part in error["loc"][:2]).upper()
        lines.append(f"{path} ({env}): {error['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret masked (for `correlator config`)."""
    data: dict[str, Any] = _mask_urls(settings.model_dump(mode="json"))
    return data


def reference_markdown() -> str:
    """The configuration reference (docs/reference/configuration.md), from the fields above."""
    rows = [
        "| Environment variable | YAML key | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    for group_name, group_field in Settings.model_fields.items():
        group = group_field.annotation
        assert isinstance(group, type) and issubclass(group, BaseModel)
        for name, field in group.model_fields.items():
            env = f"{ENV_PREFIX}{group_name}_{name}".upper()
            rows.append(
                f"| `{env}` | `{group_name}.{name}` | {_default_text(field)} | "
                f"{(field.description or '').replace('|', '/')} |"
            )
    return "\n".join(rows) + "\n"


def _default_text(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, BaseModel):  # a nested group: as the environment takes it (JSON)
        return f"`{default.model_dump_json()}`"
    return f"`{default}`"
