"""`correlator provision`: the plan, printed, then applied (one shot)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from correlator.discovery.files import ManifestError, load_manifests
from correlator.discovery.kubernetes import KubernetesSource, Snapshot, api_client
from correlator.errors import ConfigError, CorrelatorError
from correlator.models.webapp import WebApplication
from correlator.outbound.kube import KubeError
from correlator.progress import Progress, Steps, quiet
from correlator.provisioning import files
from correlator.provisioning.grafana import GrafanaTarget
from correlator.provisioning.grafana_rules import wants_grafana_rules
from correlator.provisioning.naming import Links
from correlator.provisioning.notifications import (
    Receiver,
    Routing,
    choose_routing,
    finish_routing,
    notification_settings,
    prepare_receiver,
)
from correlator.provisioning.reconcile import Action, Report, reconcile
from correlator.provisioning.reconcile_rules import reconcile_alert_rules
from correlator.settings import Settings
from correlator.tenancy import admit

EXIT_PROBLEMS = 1
INTAKE_PATH = "/api/v1/alerts"


def file_options(settings: Settings) -> dict[str, Any]:
    """What the files target needs to write Grafana-managed rules."""
    return {
        "grafana_managed_teams": frozenset(settings.provisioning.grafana_managed_teams),
        "datasource_uid": settings.provisioning.prometheus_datasource_uid,
    }


def links(settings: Settings) -> Links:
    grafana = settings.provisioning
    return Links(
        grafana_url=grafana.grafana_public_url or grafana.grafana_url,
        correlator_url=grafana.public_url,
        kiali_url=settings.correlation.kiali_url,
    )


def receiver(settings: Settings) -> Receiver:
    """correlator's webhook as Grafana's contact point should call it."""
    options = settings.provisioning
    url = options.webhook_url or f"{options.public_url.rstrip('/')}{INTAKE_PATH}"
    return Receiver(url=url, auth=settings.auth)


async def reconcile_grafana(
    grafana: GrafanaTarget,
    apps: list[WebApplication],
    settings: Settings,
    *,
    dry_run: bool = False,
    steps: Steps = quiet,
) -> Report:
    """Dashboards, then the Grafana-managed alert rules and the way their notifications reach
    correlator (contact point first, as rules name it; routes and removals after), as one
    report."""
    options = settings.provisioning
    teams = frozenset(options.grafana_managed_teams)
    needed = any(wants_grafana_rules(app, teams) for app in apps)
    # Without managed rules the method does not matter: whatever exists is removed.
    routing: Routing | None = "policy"
    errors: list[tuple[str, str]] = []
    if needed:
        try:
            routing = await choose_routing(grafana, options.grafana_routing)
        except CorrelatorError as exc:
            routing = None
            errors.append(("Grafana", f"version: {exc}"))
    contact = await prepare_receiver(grafana, receiver(settings), needed=needed, dry_run=dry_run)
    report = await reconcile(
        grafana,
        apps,
        links(settings),
        concurrency=options.concurrency,
        dry_run=dry_run,
        steps=steps,
    )
    # A contact point of correlator's name that is someone else's: rules naming it, or a route
    # to it, would send correlator's alerts to the user's integrations. Nothing is written.
    # Nor are rules that name a contact point that could not be made: Grafana refuses each
    # with a bare 500; the contact point's own error says what is wrong.
    rules = Report()
    if not contact.left_alone and not (contact.errors and routing == "rule"):
        rules = await reconcile_alert_rules(
            grafana,
            apps,
            links(settings),
            teams=teams,
            datasource_uid=options.prometheus_datasource_uid,
            disable_provenance=options.disable_provenance,
            concurrency=options.concurrency,
            dry_run=dry_run,
            notification_settings=notification_settings() if routing == "rule" else None,
            steps=steps,
        )
    parts = [contact, report, rules]
    if routing is not None and not rules.errors and not contact.errors:
        parts.append(await finish_routing(grafana, routing, needed=needed, dry_run=dry_run))
    return Report(
        steps=[step for part in parts for step in part.steps],
        errors=errors + [error for part in parts for error in part.errors],
        conflicts=report.conflicts,
        left_alone=[held for part in parts for held in part.left_alone],
    )


def provision(
    settings: Settings, *, source: str, target: str, out: Path | None, dry_run: bool
) -> int:
    """Print one line per artifact (action, what, app) and a summary; 1 if anything failed."""
    if target == "grafana" and settings.provisioning.grafana_token is None:
        raise ConfigError(
            "--target grafana needs a Grafana token: set CORRELATOR_PROVISIONING_GRAFANA_TOKEN"
        )
    if target == "files" and out is None:
        raise ConfigError("--target files needs --out DIRECTORY")
    progress = Progress.on_terminal()
    if source == "k8s":
        with progress.stage("listing WebApplications from the Kubernetes API"):
            apps, invalid = asyncio.run(_from_kubernetes(settings))
    else:
        manifests = load_manifests(Path(source), steps=progress.steps)
        apps, invalid = [loaded.app for loaded in manifests.apps], manifests.errors
    apps, refused = admit(apps, settings.tenancy, namespace_label=settings.loki.namespace_label)
    invalid = invalid + refused
    for error in invalid:
        print(f"invalid: {error}", file=sys.stderr)
    verb = "would " if dry_run else ""

    if target == "kubernetes":
        with progress.stage(f"PrometheusRules of {len(apps)} app(s)"):
            report = asyncio.run(_prometheus_rules(settings, apps, dry_run=dry_run))
        return _print_report(report, apps, verb, bool(invalid))

    if target == "files":
        assert out is not None
        rendering = progress.steps(apps, "rendering files", total=len(apps))
        steps, contents = files.plan(out, rendering, links(settings), **file_options(settings))
        for step in steps:
            if step.action is not Action.UNCHANGED:
                print(f"{step.action.value:9} {step.path}  {step.app or ''}".rstrip())
        changed = 0 if dry_run else files.apply(steps, contents)
        unchanged = sum(1 for step in steps if step.action is Action.UNCHANGED)
        print(
            f"{len(apps)} app(s): {verb}write {changed if not dry_run else len(steps) - unchanged} "
            f"file(s), {unchanged} unchanged",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS if invalid else 0

    token = settings.provisioning.grafana_token
    assert token is not None
    grafana = GrafanaTarget(
        settings.provisioning.grafana_url,
        token.get_secret_value(),
        timeout_s=settings.provisioning.timeout_s,
    )
    report = asyncio.run(
        reconcile_grafana(grafana, apps, settings, dry_run=dry_run, steps=progress.steps)
    )
    return _print_report(report, apps, verb, bool(invalid))


def _print_report(report: Report, apps: list[WebApplication], verb: str, invalid: bool) -> int:
    for done in report.steps:
        if done.action is not Action.UNCHANGED:
            print(f"{done.action.value:16} {done.kind} {done.uid}  {done.app or ''}".rstrip())
    for what, why in report.errors:
        print(f"failed: {what}: {why}", file=sys.stderr)
    print(
        f"{len(apps)} app(s): {verb}write {report.writes} artifact(s), "
        f"{report.count(Action.UNCHANGED)} unchanged, {len(report.errors)} error(s)",
        file=sys.stderr,
    )
    return EXIT_PROBLEMS if invalid or report.errors else 0


async def _from_kubernetes(settings: Settings) -> tuple[list[WebApplication], list[ManifestError]]:
    k8s = settings.kubernetes
    api = await api_client(k8s.kubeconfig)
    try:
        source = KubernetesSource.from_settings(api, k8s, _ignore)
        snapshot = await source.list_once()
    except KubeError as exc:
        raise ConfigError(f"--source k8s: {exc}") from None
    finally:
        await api.close()
    return snapshot.apps, snapshot.errors


async def _ignore(snapshot: Snapshot) -> None:
    """A one-shot list needs no change notifications."""


async def _prometheus_rules(
    settings: Settings, apps: list[WebApplication], *, dry_run: bool
) -> Report:
    from correlator.provisioning.kubernetes_rules import reconcile_prometheus_rules

    api = await api_client(settings.kubernetes.kubeconfig)
    try:
        return await reconcile_prometheus_rules(
            api,
            apps,
            links(settings),
            namespaces=settings.kubernetes.namespaces,
            dry_run=dry_run,
        )
    finally:
        await api.close()
