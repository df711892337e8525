"""Tenancy: a namespace is a tenant, and ownership is granted by the platform (pure).

A WebApplication is written by whoever may write in its namespace, so nothing in its spec may
reach beyond that namespace:
- its `logSelector` (label matchers only, checked by the model) may not name another
  namespace: correlator forces `namespace="<its own>"` into every stream it reads for it;
- its `traceService` may not take a name another app uses, nor a `name.namespace` of another
  namespace (Jaeger's names are mapped back to apps, so a claim would relabel their spans);
- with a binding configured (`tenancy.teams`), its team must own its namespace, and its chat
  channel, repository and receivers must be the team's.

A spec that breaks any of these is refused as a whole, like an invalid manifest: it is not
provisioned, the pipeline and the sinks do not know it, and its `Provisioned` condition names
the field. Alerts name an app only within the namespace they come from (`alert_namespace`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from correlator.analysis.scope import ScopeRules, candidate_names
from correlator.backends.logql import confined_selector, parse_selector
from correlator.catalogue import default_trace_name
from correlator.discovery.files import ManifestError
from correlator.models.webapp import WebApplication
from correlator.settings import TeamBinding, TenancySettings

__all__ = ["admit", "alert_namespace", "app_log_selector", "app_of_alerts", "default_trace_name"]


def app_log_selector(app: WebApplication, namespace_label: str) -> str | None:
    """The app's own stream selector with its namespace forced, when its spec gives one."""
    text = app.spec.observability.log_selector
    if not text:
        return None
    return confined_selector(
        parse_selector(text), namespace_label=namespace_label, namespace=app.namespace
    )


def _glob(pattern: str, value: str) -> bool:
    """`*` matches within one path segment; everything else literally."""
    regex = "[^/]*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value) is not None


def _granted(patterns: Sequence[str], value: str) -> bool:
    return any(_glob(pattern, value) for pattern in patterns)


def _problem(app: WebApplication, field: str, message: str) -> ManifestError:
    return ManifestError(Path(f"webapplications/{app.key}"), 1, field, message)


def _selector_problem(app: WebApplication, namespace_label: str) -> ManifestError | None:
    text = app.spec.observability.log_selector
    if not text:
        return None
    for name, op, value in parse_selector(text):
        if name == namespace_label and (op != "=" or value != app.namespace):
            return _problem(
                app,
                "spec.observability.logSelector",
                f'may select only its own namespace ({namespace_label}="{app.namespace}", '
                "which correlator adds): another namespace's logs are not this app's",
            )
    return None


def _trace_problems(
    apps: Sequence[WebApplication], settings: TenancySettings
) -> dict[str, ManifestError]:
    """Each app whose traceService claims a name that is not its own to claim: another app's
    (Istio's `name.namespace` included), one several apps claim, or one ending in another
    known namespace."""
    namespaces = {app.namespace for app in apps}
    namespaces |= {n for binding in settings.teams.values() for n in binding.namespaces}
    defaults = {default_trace_name(app): app.key for app in apps}
    claims = Counter(app.spec.observability.trace_service for app in apps)
    naturals: dict[str, list[str]] = {}
    for app in apps:
        name = app.spec.observability.trace_service
        if name and name in (app.name, default_trace_name(app)):
            naturals.setdefault(name, []).append(app.key)
    natural = {name: keys[0] for name, keys in naturals.items() if len(keys) == 1}
    problems = {}
    for app in apps:
        name = app.spec.observability.trace_service
        if not name:
            continue
        suffix = name.rsplit(".", 1)[1] if "." in name else None
        if suffix is not None and suffix != app.namespace and suffix in namespaces:
            why = f"{name!r} names namespace {suffix!r}: use a name in {app.namespace!r}"
        elif defaults.get(name, app.key) != app.key:
            why = f"{name!r} is the tracing name of {defaults[name]}"
        elif claims[name] > 1 and natural.get(name) != app.key:
            # One natural claimant (its own name, or Istio's name.namespace) keeps the name, so
            # a copy cannot take an app's name from it; with none or several, nobody does.
            why = f"{name!r} is claimed by several apps: a tracing name must be unique"
        else:
            continue
        problems[app.key] = _problem(app, "spec.observability.traceService", why)
    return problems


def _ownership_problem(
    app: WebApplication, teams: Mapping[str, TeamBinding]
) -> ManifestError | None:
    owners = sorted(team for team, b in teams.items() if _granted(b.namespaces, app.namespace))
    if not owners:
        return _problem(app, "metadata.namespace", f"namespace {app.namespace} is bound to no team")
    team = app.spec.team
    if team not in owners:
        return _problem(
            app,
            "spec.team",
            f"team {team} does not own namespace {app.namespace} (owned by {', '.join(owners)})",
        )
    binding, alerting = teams[team], app.spec.alerting
    claims = [
        ("spec.alerting.chatChannel", alerting.chat_channel, binding.chat_channels, "chat channel"),
        ("spec.repo", app.spec.repo, binding.repositories, "repository"),
        ("spec.alerting.pageReceiver", alerting.page_receiver, binding.receivers, "receiver"),
        ("spec.alerting.ticketReceiver", alerting.ticket_receiver, binding.receivers, "receiver"),
    ]
    for field, value, granted, what in claims:
        if value is not None and not _granted(granted, value):
            return _problem(app, field, f"{what} {value!r} is not granted to team {team}")
    return None


def admit(
    apps: Iterable[WebApplication], settings: TenancySettings, *, namespace_label: str
) -> tuple[list[WebApplication], list[ManifestError]]:
    """The apps whose specs stay within their tenancy, and why each other one is refused."""
    apps = list(apps)
    traces = _trace_problems(apps, settings)
    admitted, refused = [], []
    for app in apps:
        problem = (
            _selector_problem(app, namespace_label)
            or traces.get(app.key)
            or (_ownership_problem(app, settings.teams) if settings.teams else None)
        )
        if problem is None:
            admitted.append(app)
        else:
            refused.append(problem)
    return admitted, refused


def alert_namespace(
    labels: Mapping[str, str], rules: ScopeRules, settings: TenancySettings
) -> str | None:
    """The namespace an alert comes from: the label the platform enforces when one is
    configured, else the first namespace label present."""
    if settings.namespace_label is not None:
        return labels.get(settings.namespace_label) or None
    return next((labels[n] for n in rules.namespace_labels if labels.get(n)), None)


def app_of_alerts(
    alerts: Sequence[Mapping[str, str]],
    apps: Sequence[WebApplication],
    rules: ScopeRules,
    settings: TenancySettings,
) -> WebApplication | None:
    """The one app every alert of a group is about, each within the namespace it comes from;
    None when they disagree (a group mixing namespaces or apps) or name none. With a binding,
    an alert without a namespace names no app (a name unique among the apps is not enough)."""
    found: WebApplication | None = None
    for labels in alerts:
        namespace = alert_namespace(labels, rules, settings)
        if namespace is None and settings.teams:
            return None
        app = _named_app(candidate_names(labels, rules), namespace, apps)
        if app is None or (found is not None and app.key != found.key):
            return None
        found = app
    return found


def _named_app(
    names: Sequence[str], namespace: str | None, apps: Sequence[WebApplication]
) -> WebApplication | None:
    for name in names:
        matching = [a for a in apps if a.name == name and namespace in (None, a.namespace)]
        # Without a namespace a name must be unique, or the alert would blame the wrong app.
        if matching and (namespace is not None or len(matching) == 1):
            return matching[0]
    return None
