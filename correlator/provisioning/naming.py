"""Names, ownership labels and links shared by every generated artifact (pure)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

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
    """Where people find things: Grafana's public URL and correlator's own."""

    grafana_url: str = "http://grafana.monitoring.svc:3000"
    correlator_url: str = "http://correlator.monitoring.svc:8080"

    def dashboard_url(self, app: WebApplication) -> str:
        uid = dashboard_uid(app.namespace, app.name)
        return f"{self.grafana_url.rstrip('/')}/d/{uid}/{app.namespace}-{app.name}"

    def incidents_url(self, app: WebApplication) -> str:
        return f"{self.correlator_url.rstrip('/')}/api/v1/incidents?namespace={app.namespace}"
