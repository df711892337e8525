"""The WebApplications the service knows (from the manifests directory or the Kubernetes API),
shared by provisioning (which discovers them), the pipeline (deploys as evidence) and the
sinks (who to tell: team, chat channel, repository)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from correlator.analysis.scope import ScopeRules, apps_for_alert
from correlator.models.webapp import WebApplication

REVISION_ANNOTATION = "correlator.dev/revision"
DEPLOYED_AT_ANNOTATION = "correlator.dev/deployed-at"
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True, slots=True)
class Deployed:
    """What runs: the revision (a commit) and when it was deployed, when known."""

    revision: str | None
    deployed_at: datetime | None
    source: str


class Catalogue:
    def __init__(self, apps: Iterable[WebApplication] = ()) -> None:
        self._apps = list(apps)
        self._by_name = _by_name(self._apps)
        # A digest of the apps, the same on every replica that knows the same apps: what was
        # analysed with other apps is not reused (pipeline/sharing.py).
        self.revision = _digest(self._apps)

    def update(self, apps: Iterable[WebApplication]) -> None:
        apps = list(apps)
        if apps != self._apps:
            self._apps = apps
            self._by_name = _by_name(apps)
            self.revision = _digest(apps)

    def apps(self) -> list[WebApplication]:
        return list(self._apps)

    def for_labels(
        self, labels: Mapping[str, str], rules: ScopeRules | None = None
    ) -> WebApplication | None:
        found = apps_for_alert(labels, self._apps, rules or ScopeRules())
        return found[0] if found else None

    def named(self, name: str, namespace: str | None = None) -> WebApplication | None:
        for app in self._by_name.get(name, ()):
            if namespace in (None, app.namespace):
                return app
        return None

    def find(self, name: str, namespace: str | None) -> WebApplication | None:
        """The app of that name in that namespace; with no namespace, only a name no other
        namespace uses (else the correlation would read another team's app)."""
        same = self._by_name.get(name, ())
        matching = [a for a in same if namespace in (None, a.namespace)]
        return matching[0] if len(matching) == 1 else None

    def find_in(self, name: str, namespaces: Sequence[str]) -> WebApplication | None:
        """The app of that name among `namespaces` (an alert group's): a group mixing
        namespaces reaches no app outside them; with none, as `find` without a namespace."""
        if len(namespaces) <= 1:
            return self.find(name, namespaces[0] if namespaces else None)
        matching = [a for a in self._by_name.get(name, ()) if a.namespace in namespaces]
        return matching[0] if len(matching) == 1 else None


def _by_name(apps: Iterable[WebApplication]) -> dict[str, list[WebApplication]]:
    """The apps by name, in their order: a storm's scope looks up thousands of names."""
    index: dict[str, list[WebApplication]] = {}
    for app in apps:
        index.setdefault(app.name, []).append(app)
    return index


def _digest(apps: Iterable[WebApplication]) -> str:
    dumps = sorted(app.model_dump_json() for app in apps)
    return hashlib.sha256("\n".join(dumps).encode()).hexdigest()


def deployed(app: WebApplication) -> Deployed:
    """The app's deployed revision: an annotation set by the delivery pipeline (ArgoCD, CI),
    else its status, else an image tag that is a commit id."""
    annotations = app.metadata.annotations
    status = app.status or {}
    revision = annotations.get(REVISION_ANNOTATION) or status.get("revision")
    source = "annotation" if annotations.get(REVISION_ANNOTATION) else "status"
    # A revision goes into Git hosts' API paths under an organisation-wide token: only a
    # commit id is one (`../../repos/victim/…` would be another repository's path).
    if not isinstance(revision, str) or not _SHA.match(revision):
        revision = None
    if not revision:
        tag = app.spec.image.rsplit(":", 1)[-1] if ":" in app.spec.image.split("/")[-1] else ""
        revision = tag if _SHA.match(tag) else None
        source = "image tag"
    when = annotations.get(DEPLOYED_AT_ANNOTATION) or status.get("deployedAt")
    moment = None
    if isinstance(when, str):
        try:
            moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            moment = None
    return Deployed(str(revision) if revision else None, moment, source)


def github_repo(url: str | None) -> tuple[str, str, str] | None:
    """(host, owner, name) of a repository URL (https://host/owner/name[.git])."""
    if not url:
        return None
    match = re.match(r"^https://([^/]+)/([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def trace_service(app: WebApplication) -> str:
    """The app's service name in the tracing backend: its spec's, else Istio's `name.namespace`
    (the dashboards and the correlation read the same one)."""
    return app.spec.observability.trace_service or default_trace_name(app)


def default_trace_name(app: WebApplication) -> str:
    """Istio's service name of the app in the tracing backend: `name.namespace`."""
    return f"{app.name}.{app.namespace}"
