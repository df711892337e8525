"""The telemetry backends correlator queries: Prometheus, Loki and Jaeger."""

from __future__ import annotations

from pydantic import Field, SecretStr

from correlator.backends.http import BackendConfig
from correlator.settings.base import _Group


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
