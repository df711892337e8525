"""`correlator provision`: the plan, printed, then applied (one shot)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from correlator.discovery.files import load_manifests
from correlator.errors import ConfigError
from correlator.models.webapp import WebApplication
from correlator.provisioning import files
from correlator.provisioning.grafana import GrafanaTarget
from correlator.provisioning.naming import Links
from correlator.provisioning.reconcile import Action, Report, reconcile, reconcile_alert_rules
from correlator.settings import Settings

EXIT_PROBLEMS = 1


def links(settings: Settings) -> Links:
    grafana = settings.provisioning
    return Links(
        grafana_url=grafana.grafana_public_url or grafana.grafana_url,
        correlator_url=grafana.public_url,
    )


async def reconcile_grafana(
    grafana: GrafanaTarget, apps: list[WebApplication], settings: Settings, *, dry_run: bool = False
) -> Report:
    """Dashboards, then the Grafana-managed alert rules, as one report."""
    options = settings.provisioning
    report = await reconcile(
        grafana, apps, links(settings), concurrency=options.concurrency, dry_run=dry_run
    )
    rules = await reconcile_alert_rules(
        grafana,
        apps,
        links(settings),
        teams=frozenset(options.grafana_managed_teams),
        datasource_uid=options.prometheus_datasource_uid,
        disable_provenance=options.disable_provenance,
        concurrency=options.concurrency,
        dry_run=dry_run,
    )
    return Report(steps=report.steps + rules.steps, errors=report.errors + rules.errors)


def provision(
    settings: Settings, *, source: str, target: str, out: Path | None, dry_run: bool
) -> int:
    """Print one line per artifact (action, what, app) and a summary; 1 if anything failed."""
    if source == "k8s":
        raise ConfigError(
            "--source k8s: Kubernetes discovery is not available in this release; "
            "give a directory of WebApplication manifests"
        )
    manifests = load_manifests(Path(source))
    for error in manifests.errors:
        print(f"invalid: {error}", file=sys.stderr)
    apps = [loaded.app for loaded in manifests.apps]
    verb = "would " if dry_run else ""

    if target == "files":
        if out is None:
            raise ConfigError("--target files needs --out DIRECTORY")
        steps, contents = files.plan(out, apps, links(settings))
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
        return EXIT_PROBLEMS if manifests.errors else 0

    token = settings.provisioning.grafana_token
    if token is None:
        raise ConfigError(
            "--target grafana needs a Grafana token: set CORRELATOR_PROVISIONING_GRAFANA_TOKEN"
        )
    grafana = GrafanaTarget(
        settings.provisioning.grafana_url,
        token.get_secret_value(),
        timeout_s=settings.provisioning.timeout_s,
    )
    report = asyncio.run(reconcile_grafana(grafana, apps, settings, dry_run=dry_run))
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
    return EXIT_PROBLEMS if manifests.errors or report.errors else 0
