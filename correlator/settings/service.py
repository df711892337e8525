"""The service's own groups: the HTTP server, the store, credentials, intake, the work queue,
the provisioning leader and logging."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from correlator.settings.base import _Group, database_scheme


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
    retry_base_s: float = Field(
        2.0,
        gt=0,
        description="First retry delay; doubles per attempt, with jitter (each wait between "
        "half and all of it).",
    )
    retry_max_s: float = Field(300.0, gt=0, description="Longest retry delay.")


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
