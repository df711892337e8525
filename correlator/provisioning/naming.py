"""Names, ownership labels and links shared by every generated artifact (pure)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from correlator.backends.promql import metric_label
from correlator.models.webapp import WebApplication

MANAGED_BY = "correlator"
UID_MAX = 40  # Grafana's limit for a dashboard UID
_UNSAFE = re.compile(r"[^a-z0-9-]")


def dashboard_uid(namespace: str, name: str) -> str:
    """A Grafana UID fixed by namespace/name: readable, at most 40 characters, and distinct
    for distinct apps (the readable part is cut to fit, the hash keeps it unique)."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:10]
    readable = _UNSAFE.sub("-", f"{namespace}-{name}".lower())[: UID_MAX - len("wa--") - 10]
    return f"wa-{readable.strip('-')}-{digest}"


def managed_labels(app: WebApplication) -> dict[str, str]:
    """Labels that mark an object as made by correlator for this app (for garbage collection)."""
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "correlator.dev/webapp": app.name,
        "correlator.dev/team": app.spec.team,
    }


@dataclass(frozen=True, slots=True)
class Links:
    """Where people find things: Grafana's public URL, correlator's own, and Kiali's."""

    grafana_url: str = "http://grafana.monitoring.svc:3000"
    correlator_url: str = "http://correlator.monitoring.svc:8080"
    kiali_url: str | None = None

    def dashboard_url(self, app: WebApplication) -> str:
        uid = dashboard_uid(app.namespace, app.name)
        return f"{self.grafana_url.rstrip('/')}/d/{uid}/{app.namespace}-{app.name}"

    def incidents_url(self, app: WebApplication) -> str:
        return f"{self.correlator_url.rstrip('/')}/api/v1/incidents?namespace={app.namespace}"


def series_values(app: WebApplication) -> dict[str, str]:
    """Placeholder values that identify the app's series and ownership, for every template."""
    labels = app.spec.observability.metric_labels
    severity = app.spec.alerting.severity
    return {
        "namespace": app.namespace,
        "webapp": app.name,
        "team": app.spec.team,
        "severity_page": severity.page,
        "severity_ticket": severity.ticket,
        # Label names as PromQL takes them: classic names bare, UTF-8 ones quoted (Prometheus 3).
        "selector": (
            f'reporter="destination",{metric_label(labels.namespace)}="{app.namespace}",'
            f'{metric_label(labels.workload)}="{app.name}"'
        ),
        "match": f'namespace="{app.namespace}",webapp="{app.name}"',
        "pod_selector": (
            f'{metric_label(labels.pod_namespace)}="{app.namespace}",'
            f'{metric_label(labels.pod)}=~"{app.name}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}"'
        ),
        "pod_label": labels.pod,  # as a name: legends and label maps
        "pod_by": metric_label(labels.pod),  # in PromQL
        # in Prometheus' Go templates: `$labels.pod`, or `index $labels "k8s.pod.name"`
        "pod_in_template": (
            f"$labels.{labels.pod}"
            if metric_label(labels.pod) == labels.pod
            else f"index $labels {metric_label(labels.pod)}"
        ),
        "pod": _test_pod(app),
        "pod_series": (
            f'{metric_label(labels.pod_namespace)}="{app.namespace}",'
            f'{metric_label(labels.pod)}="{_test_pod(app)}"'
        ),
    }


def _test_pod(app: WebApplication) -> str:
    """The name of a pod of the app's Deployment, for the generated tests."""
    return f"{app.name}-5d8f9c7b6d-x2x4q"
