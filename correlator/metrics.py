"""The service's own Prometheus metrics, on a registry each app builds for itself."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from correlator import __version__

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every instrument correlator exports at /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "correlator_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_seconds = Histogram(
            "correlator_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.alerts_received = Counter(
            "correlator_alerts_received",
            "Alerts carried by stored webhook notifications, by alert status.",
            ["status"],
            registry=r,
        )
        self.notifications = Counter(
            "correlator_webhook_notifications",
            "Webhook notifications by outcome: stored, rejected (4xx, never retried by "
            "Alertmanager) or unavailable (503, retried).",
            ["outcome", "reason"],
            registry=r,
        )
        self.store_write_seconds = Histogram(
            "correlator_store_write_duration_seconds",
            "Time to durably commit one batch of webhook notifications.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_batch_size = Histogram(
            "correlator_store_batch_notifications",
            "Notifications committed together in one transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.work_queue_depth = Gauge(
            "correlator_work_queue_depth",
            "Work items not finished yet, by state (pending or running).",
            ["state"],
            registry=r,
        )
        self.work_queue_oldest_age = Gauge(
            "correlator_work_queue_oldest_age_seconds",
            "How long the longest-waiting queued work item has waited (0: none queued).",
            registry=r,
        )
        self.notification_to_report = Histogram(
            "correlator_notification_to_report_seconds",
            "From a notification stored to its incident's report stored.",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.correlations = Counter(
            "correlator_correlations",
            "Incident reports made, by how: analysed, or shared (the analysis of another "
            "incident with the same services in scope and the same onset).",
            ["how"],
            registry=r,
        )
        self.work_items = Counter(
            "correlator_work_items_processed",
            "Work items processed, by outcome: done, retried, given_up.",
            ["outcome"],
            registry=r,
        )
        self.sink_deliveries = Counter(
            "correlator_sink_deliveries",
            "Messages to sinks, by sink and outcome: delivered, retried, given_up.",
            ["sink", "outcome"],
            registry=r,
        )
        self.provisioning_runs = Counter(
            "correlator_provisioning_runs",
            "Provisioning passes by outcome: ok, with_errors (see the log), or following (a "
            "replica that does not lead updated its catalogue and wrote nothing).",
            ["outcome"],
            registry=r,
        )
        self.provisioning_writes = Counter(
            "correlator_provisioning_writes",
            "Artifacts created, updated, reverted or deleted by provisioning.",
            registry=r,
        )
        self.provisioning_invalid = Gauge(
            "correlator_provisioning_invalid_manifests",
            "WebApplication manifests that failed validation in the last pass.",
            registry=r,
        )
        self.provisioning_conflicts = Gauge(
            "correlator_provisioning_conflicts",
            "Dashboards not written in the last pass because a dashboard correlator did not "
            "make holds their title or UID (see the log and the app's Provisioned condition).",
            registry=r,
        )
        self.provisioning_left_alone = Gauge(
            "correlator_provisioning_left_alone",
            "1 for each Grafana object correlator needed to change in the last pass but left "
            "alone because someone else owns it, by object (policy_tree, contact_point) and "
            "reason (provenance_file, provenance_api: provisioned by another tool; name_taken: "
            "a contact point of correlator's name that it did not make); see the log.",
            ["object", "reason"],
            registry=r,
        )
        self.provisioning_last_success = Gauge(
            "correlator_provisioning_last_success_timestamp_seconds",
            "When a provisioning pass last finished without errors.",
            registry=r,
        )
        self.leader = Gauge(
            "correlator_leader",
            "1 while this replica leads the role (provisioning: the Lease or advisory lock).",
            ["role"],
            registry=r,
        )
        self.store_up = Gauge(
            "correlator_store_up",
            "1 when the store (SQLite or PostgreSQL) answered this replica's last check (each "
            "/readyz probe and /metrics scrape), 0 when it did not.",
            registry=r,
        )
        self.kept_inputs = Counter(
            "correlator_kept_inputs",
            "Analyses whose inputs were packed as an incident bundle, by outcome: kept, "
            "over_cap (larger than correlation.keep_inputs.max_bytes: not kept) or failed.",
            ["outcome"],
            registry=r,
        )
        self.kept_input_bytes = Histogram(
            "correlator_kept_input_bytes",
            "Size of each kept incident bundle (tar.gz).",
            buckets=(2**14, 2**16, 2**18, 2**20, 2**22, 2**24, 2**26),
            registry=r,
        )
        self.rca_confirmed = Counter(
            "correlator_rca_confirmed",
            "Causes confirmed by responders (new or changed answers), by where the confirmed "
            "service stood in the report: rank1, top3 or missed.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("rank1", "top3", "missed"):
            self.rca_confirmed.labels(outcome)
        self.build_info = Info("correlator_build", "The running build.", registry=r)
        self.build_info.info({"version": __version__, "python_version": platform.python_version()})
