"""The platform around correlator: Grafana provisioning, the Kubernetes API, and who owns
what (tenancy)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from correlator.settings.base import _Group


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
