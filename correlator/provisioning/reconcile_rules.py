"""Reconciling Grafana-managed alert rules with the WebApplications, as provisioning/reconcile.py
does dashboards: the SLO rules of the apps whose team (or spec) asks for Grafana rules are
compared with the live ones by fingerprint; only what differs is written, rules carrying
correlator's owner label but belonging to no app any more are deleted, and a rule whose
provenance Grafana will not let the API change is left alone and reported. Actions, steps and
the report are reconcile.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from correlator.errors import CorrelatorError
from correlator.models.webapp import WebApplication
from correlator.progress import Steps, quiet
from correlator.provisioning.dashboards import team_folder
from correlator.provisioning.grafana import GrafanaRefused, GrafanaTarget, GrafanaUnavailable
from correlator.provisioning.grafana_rules import (
    OWNER_LABEL,
    grafana_alert_rules,
    wants_grafana_rules,
)
from correlator.provisioning.naming import Links
from correlator.provisioning.reconcile import Action, Report, Step, run_all
from correlator.provisioning.templates import content_hash

log = logging.getLogger(__name__)

_RULE_FIELDS = (
    "title",
    "condition",
    "for",
    "noDataState",
    "execErrState",
    "folderUID",
    "ruleGroup",
)


def rule_fingerprint(rule: dict[str, Any]) -> str:
    """What matters in a rule; Grafana adds defaults to query models, which do not."""
    queries = [
        (
            q.get("refId"),
            q.get("datasourceUid"),
            q.get("model", {}).get("expr"),
            q.get("model", {}).get("expression"),
            q.get("model", {}).get("type"),
        )
        for q in rule.get("data", [])
    ]
    return content_hash(
        {
            **{name: rule.get(name) for name in _RULE_FIELDS},
            "labels": rule.get("labels", {}),
            "annotations": rule.get("annotations", {}),
            "data": queries,
            # Grafana may fill in defaults around it; the contact point named is what matters.
            "receiver": (rule.get("notification_settings") or {}).get("receiver"),
        }
    )


def _provenance_problem(provenance: str) -> str | None:
    """Why a rule of this provenance cannot be written or deleted through the API, or None."""
    if provenance in ("", "api"):
        return None
    return (
        f"provenance {provenance!r}: it comes from Grafana's provisioning files (or another "
        "tool), and Grafana refuses to change or delete it through the API; correlator leaves "
        "it as it is (remove it from those files to let correlator manage it)"
    )


async def reconcile_alert_rules(
    target: GrafanaTarget,
    apps: Iterable[WebApplication],
    links: Links,
    *,
    teams: frozenset[str],
    datasource_uid: str,
    disable_provenance: bool = True,
    concurrency: int = 8,
    dry_run: bool = False,
    notification_settings: dict[str, Any] | None = None,
    steps: Steps = quiet,
) -> Report:
    """Grafana-managed SLO alert rules for the apps of `teams` (or that ask for them), naming
    `notification_settings`' contact point when given (simplified routing).

    Provenance is decided before writing, as Grafana answers a refused change with a 500 that
    does not say why (it would look like Grafana being down, retried forever). A rule that is
    `api` while the rules should stay editable (`disable_provenance`, the default) cannot be
    updated or deleted with X-Disable-Provenance: it is deleted without the header, which
    Grafana allows, and created again with it (same uid, same content). The other way, none
    to `api`, Grafana changes in place. A rule of provenance `file` is left alone and
    reported (`left_alone`), as Grafana refuses every change of it."""
    report = Report()
    wanted_provenance = "" if disable_provenance else "api"
    desired: dict[str, tuple[WebApplication, dict[str, Any]]] = {}
    for app in apps:
        if wants_grafana_rules(app, teams):
            folder = team_folder(app.spec.team)
            for rule in grafana_alert_rules(
                app,
                links,
                folder_uid=folder.uid,
                datasource_uid=datasource_uid,
                notification_settings=notification_settings,
            ):
                desired[rule["uid"]] = (app, rule)
    try:
        every = await target.alert_rules()
        if not dry_run:
            for folder in {team_folder(app.spec.team) for app, _ in desired.values()}:
                await target.ensure_folder(folder)
    except CorrelatorError as exc:
        report.errors.append(("Grafana", str(exc)))
        return report
    owned = {
        uid: rule
        for uid, rule in every.items()
        if rule.get("labels", {}).get(OWNER_LABEL[0]) == OWNER_LABEL[1]
    }
    limit = asyncio.Semaphore(concurrency)
    receiver_checked: dict[str, bool] = {}

    async def explain(rule: dict[str, Any], exc: CorrelatorError) -> str:
        """Grafana answers a rule naming a contact point it does not have with a bare 500;
        say so when that is the reason, rather than "unavailable"."""
        receiver = (rule.get("notification_settings") or {}).get("receiver")
        if receiver is None or not isinstance(exc, GrafanaUnavailable):
            return str(exc)
        if receiver not in receiver_checked:
            try:
                names = {point.get("name") for point in await target.contact_points()}
            except CorrelatorError:
                return str(exc)
            receiver_checked[receiver] = receiver in names
        if receiver_checked[receiver]:
            return str(exc)
        return (
            f"the contact point {receiver!r} the rule names does not exist in Grafana, which "
            "answers such a rule with a bare 500; it is made again at the next pass"
        )

    async def one(uid: str, app: WebApplication, rule: dict[str, Any]) -> None:
        # A rule at correlator's uid (wa-<hash of the app and alert>) without the ownership
        # label is correlator's, its label removed by hand: put back like any hand edit.
        current = every.get(uid)
        provenance = str((current or {}).get("provenance") or "")
        migrate = False
        if current is None:
            action, reason = Action.CREATE, "created"
        elif (problem := _provenance_problem(provenance)) is not None:
            report.left_alone.append(("alert_rule", f"provenance_{provenance}"))
            report.errors.append((f"{app.key} {rule['title']}", f"alert rule {uid}: {problem}"))
            return
        elif provenance != wanted_provenance:
            action = Action.UPDATE
            migrate = provenance == "api"  # api -> none: Grafana will not do it in place
            reason = f"provenance {provenance or 'none'} -> {wanted_provenance or 'none'}" + (
                " (deleted and created again: Grafana refuses to change it in place)"
                if migrate
                else ""
            )
        elif rule_fingerprint(current) == rule_fingerprint(rule):
            report.steps.append(Step(Action.UNCHANGED, uid, app.key, "in sync", "alert-rule"))
            return
        else:
            action, reason = Action.UPDATE, "changed (spec or hand edit)"
        async with limit:
            try:
                if not dry_run and migrate:
                    log.warning(
                        "alert rule provenance migrated",
                        extra={"rule": uid, "app": app.key, "change": reason},
                    )
                    await target.delete_alert_rule(uid)
                    await target.create_alert_rule(rule, disable_provenance=disable_provenance)
                elif not dry_run and action is Action.CREATE:
                    await _create_rule(target, rule, disable_provenance=disable_provenance)
                elif not dry_run:
                    await target.update_alert_rule(rule, disable_provenance=disable_provenance)
            except CorrelatorError as exc:
                report.errors.append((f"{app.key} {rule['title']}", await explain(rule, exc)))
                return
        report.steps.append(Step(action, uid, app.key, reason, "alert-rule"))

    async def collect(uid: str) -> None:
        provenance = str(owned[uid].get("provenance") or "")
        if (problem := _provenance_problem(provenance)) is not None:
            report.left_alone.append(("alert_rule", f"provenance_{provenance}"))
            report.errors.append((f"alert rule {uid}", f"not deleted: {problem}"))
            return
        async with limit:
            try:
                if not dry_run:
                    await target.delete_alert_rule(uid)
            except CorrelatorError as exc:
                report.errors.append((f"alert rule {uid}", str(exc)))
                return
        report.steps.append(
            Step(Action.DELETE, uid, None, "its WebApplication is gone", "alert-rule")
        )

    await run_all(
        [
            *(one(uid, app, rule) for uid, (app, rule) in desired.items()),
            *(collect(uid) for uid in sorted(owned.keys() - desired.keys())),
        ],
        steps,
        "Grafana alert rules",
    )
    report.steps.sort(key=lambda step: (step.app or "", step.uid))
    return report


async def _create_rule(
    target: GrafanaTarget, rule: dict[str, Any], *, disable_provenance: bool
) -> None:
    """Create the rule; one that another replica created meanwhile is no error (Grafana
    answers a second rule of a uid 400, and the next pass compares it as usual)."""
    try:
        await target.create_alert_rule(rule, disable_provenance=disable_provenance)
    except GrafanaRefused as exc:
        if exc.status_code != 400 or rule["uid"] not in await target.alert_rules():
            raise
