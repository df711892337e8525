"""How Grafana-managed rules reach correlator: its webhook contact point in Grafana, and either
each rule's own notification settings or one child route of the notification policy tree.

Simplified routing (a rule names its contact point in `notification_settings`) exists from
Grafana 10.4 (its editor in the UI is behind the `alertingSimplifiedRouting` toggle there, the
default from 11.0); before, Grafana drops the field unread, and a rule reaches a contact point
only through the policy tree, where correlator keeps one child route of the root, matched on
the rules' `managed_by=correlator` label, with `continue` so that the user's own routes still
see those alerts as before. The tree is one object in Grafana: it is read,
changed only at that route, read again just before the write to make sure nobody changed it
meanwhile (the provisioning API carries no version to send back), and written whole; never
replaced by a tree of correlator's own.

Never locking or taking over what is the user's: both are written with X-Disable-Provenance,
so they stay editable in Grafana's UI (without it Grafana marks them `api`, and the UI refuses
every edit of the user's own routes). A tree another tool provisioned (provenance `file`, or
`api`: Terraform, a script, or a correlator from before it sent the header) is left as it is and
reported, as Grafana would refuse or the other tool would undo the change. Grafana groups
contact points by name and adds a new one to an existing one of the same name, so
correlator's has a name of its own, and if a contact point it did not make holds that name,
nothing is written and that is reported.

Reconciled like dashboards: created when a managed rule needs them, kept, put back when edited,
removed when no managed rule needs them. The contact point's credentials are secrets: Grafana
answers them redacted, they are never logged, and a change of them alone is not seen (it is
sent with the next change of the contact point, or by deleting it in Grafana).
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from correlator.errors import CorrelatorError
from correlator.provisioning.grafana import GrafanaTarget, GrafanaUnavailable
from correlator.provisioning.grafana_rules import OWNER_LABEL
from correlator.provisioning.reconcile import Action, Report, Step
from correlator.settings import AuthSettings

CONTACT_POINT_UID = "correlator-webhook"
# Not plain "correlator": a user's contact point of that name would gain correlator's webhook.
CONTACT_POINT_NAME = "correlator-webhook (managed by correlator)"
SIMPLIFIED_ROUTING_SINCE = (10, 4)
# Settings Grafana stores encrypted and answers as this placeholder.
SECURE_SETTINGS = ("password", "authorization_credentials")
REDACTED = "[REDACTED]"
TREE_ATTEMPTS = 3
Routing = Literal["rule", "policy"]
DEFAULT_ROUTING_NOTE = (
    "Grafana does not tell its version; its rules reach correlator through a child route of "
    "the notification policy tree, which every version follows (set provisioning."
    "grafana_routing: rule on Grafana 10.4 or newer to leave the tree alone)"
)
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receiver:
    """correlator's webhook as Grafana should call it."""

    url: str
    auth: AuthSettings

    def contact_point(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"url": self.url, "httpMethod": "POST"}
        # Grafana takes Basic or an Authorization header, not both: the token wins.
        if self.auth.bearer_token is not None:
            settings["authorization_scheme"] = "Bearer"
            settings["authorization_credentials"] = self.auth.bearer_token.get_secret_value()
        elif self.auth.basic_username is not None and self.auth.basic_password is not None:
            settings["username"] = self.auth.basic_username
            settings["password"] = self.auth.basic_password.get_secret_value()
        return {
            "uid": CONTACT_POINT_UID,
            "name": CONTACT_POINT_NAME,
            "type": "webhook",
            "settings": settings,
            "disableResolveMessage": False,
        }

    def __repr__(self) -> str:  # the dataclass repr would show no secret, but be explicit
        return f"Receiver(url={self.url!r})"


def routing_for(version: str, preference: str) -> Routing:
    """`rule` or `policy`: as configured, or for `auto` by Grafana's version."""
    if preference in ("rule", "policy"):
        return "rule" if preference == "rule" else "policy"
    numbers = re.match(r"v?(\d+)\.(\d+)", version)
    if numbers is None:
        return "policy"  # unknown: the method every Grafana version has
    major, minor = int(numbers.group(1)), int(numbers.group(2))
    return "rule" if (major, minor) >= SIMPLIFIED_ROUTING_SINCE else "policy"


async def choose_routing(target: GrafanaTarget, preference: str) -> Routing:
    """The routing to use: as configured, or for `auto` by the version Grafana tells
    (GrafanaTarget.version). A Grafana that will not tell gets the policy route, which every
    version follows (a rule's notification_settings would be dropped unread before 10.4),
    and the log says so."""
    if preference in ("rule", "policy"):
        return routing_for("", preference)
    version = await target.version()
    if not version:
        log.warning(DEFAULT_ROUTING_NOTE)
    return routing_for(version, preference)


def notification_settings() -> dict[str, Any]:
    """What a managed rule carries under simplified routing."""
    return {"receiver": CONTACT_POINT_NAME}


def managed_route() -> dict[str, Any]:
    return {
        "receiver": CONTACT_POINT_NAME,
        "object_matchers": [[OWNER_LABEL[0], "=", OWNER_LABEL[1]]],
        "continue": True,
    }


def _is_managed(route: Any) -> bool:
    return (
        isinstance(route, dict)
        and route.get("receiver") == CONTACT_POINT_NAME
        and route.get("object_matchers") == [[OWNER_LABEL[0], "=", OWNER_LABEL[1]]]
    )


def _children(tree: dict[str, Any]) -> list[Any]:
    routes = tree.get("routes")
    return list(routes) if isinstance(routes, list) else []


def with_route(tree: dict[str, Any]) -> dict[str, Any] | None:
    """The tree with correlator's route first among the root's children (so that no user
    route without `continue` hides the alerts from it); None if it is there as it should be.
    Every other route is left exactly as it was, in its order."""
    routes = _children(tree)
    ours = [route for route in routes if _is_managed(route)]
    if routes and routes[0] == managed_route() and len(ours) == 1:
        return None
    changed = copy.deepcopy(tree)
    changed["routes"] = [managed_route()] + [route for route in routes if not _is_managed(route)]
    return changed


def without_route(tree: dict[str, Any]) -> dict[str, Any] | None:
    """The tree without correlator's route; None if it has none."""
    routes = _children(tree)
    if not any(_is_managed(route) for route in routes):
        return None
    changed = copy.deepcopy(tree)
    changed["routes"] = [route for route in routes if not _is_managed(route)]
    if not changed["routes"] and "routes" not in tree:
        del changed["routes"]
    return changed


def _contact_point_drifted(live: dict[str, Any], want: dict[str, Any]) -> bool:
    """Whether what Grafana holds differs from what correlator wants, secrets aside (Grafana
    answers them redacted): a secret that was removed counts, a changed one cannot be seen."""
    if any(live.get(key) != want[key] for key in ("name", "type", "disableResolveMessage")):
        return True
    settings = live.get("settings")
    live_settings = dict(settings) if isinstance(settings, dict) else {}
    want_settings = dict(want["settings"])
    for key in SECURE_SETTINGS:
        if (key in want_settings) != (live_settings.get(key) not in (None, "")):
            return True
        live_settings.pop(key, None)
        want_settings.pop(key, None)
    return {k: v for k, v in live_settings.items() if v not in (None, "")} != want_settings


def _provisioned_elsewhere(provenance: str) -> str:
    """Why a tree with this provenance is not correlator's to change."""
    how = {
        "file": "Grafana's provisioning files, which would put it back at the next restart",
        "api": "the provisioning API without X-Disable-Provenance (Terraform, a script, or "
        "correlator before it sent that header; DELETE /api/v1/provisioning/policies resets "
        "it and its routes to editable)",
    }.get(provenance, "another tool")
    return (
        f"the notification policy tree is provisioned (provenance {provenance!r}) by {how}; "
        f"correlator leaves it untouched: add its route there (receiver {CONTACT_POINT_NAME!r}, "
        f"matcher {OWNER_LABEL[0]}={OWNER_LABEL[1]}, continue) or use grafana_routing: rule"
    )


async def _policy(target: GrafanaTarget, wanted: bool, report: Report, dry_run: bool) -> None:
    """Insert or remove correlator's route: read, change, re-read to check, write whole.
    A tree provisioned by another tool is not changed: reported instead."""
    for _ in range(TREE_ATTEMPTS):
        tree = await target.policy_tree()
        changed = with_route(tree) if wanted else without_route(tree)
        if changed is None:
            if wanted:
                report.steps.append(
                    Step(Action.UNCHANGED, "managed_by=correlator", None, "in place", "route")
                )
            return
        provenance = str(tree.get("provenance") or "")
        if provenance:
            report.left_alone.append(("policy_tree", f"provenance_{provenance}"))
            report.errors.append(("Grafana", _provisioned_elsewhere(provenance)))
            return
        if not dry_run:
            if await target.policy_tree() != tree:
                continue  # someone changed the tree meanwhile: start again from theirs
            await target.put_policy_tree(changed)
        action, reason = (
            (Action.UPDATE, "routed to correlator") if wanted else (Action.DELETE, "not needed")
        )
        report.steps.append(Step(action, "managed_by=correlator", None, reason, "route"))
        return
    report.errors.append(
        ("Grafana", f"the notification policy tree kept changing; tried {TREE_ATTEMPTS} times")
    )


async def prepare_receiver(
    target: GrafanaTarget, receiver: Receiver, *, needed: bool, dry_run: bool = False
) -> Report:
    """Create or put back correlator's contact point when managed rules need it (before the
    rules, which name it). Removal waits for `finish_routing`, after the rules are gone."""
    report = Report()
    if not needed:
        return report
    want = receiver.contact_point()
    try:
        points = await target.contact_points()
        live = next((p for p in points if p.get("uid") == CONTACT_POINT_UID), None)
        theirs = [p for p in points if p.get("name") == CONTACT_POINT_NAME and p is not live]
        if theirs:
            # Grafana would add correlator's webhook to it (or, renaming, merge into it).
            report.left_alone.append(("contact_point", "name_taken"))
            report.errors.append(
                (
                    "Grafana",
                    f"a contact point named {CONTACT_POINT_NAME!r} exists that correlator did "
                    f"not make (uid {theirs[0].get('uid')!r}); correlator writes no contact "
                    "point, rule or route until it is renamed or removed",
                )
            )
            return report
        if live is None:
            if not dry_run:
                await _create_contact_point(target, want)
            step = Step(Action.CREATE, CONTACT_POINT_UID, None, "created", "contact-point")
        elif _contact_point_drifted(live, want):
            if not dry_run:
                await target.update_contact_point(want)
            step = Step(Action.UPDATE, CONTACT_POINT_UID, None, "put back", "contact-point")
        else:
            step = Step(Action.UNCHANGED, CONTACT_POINT_UID, None, "in sync", "contact-point")
    except CorrelatorError as exc:
        report.errors.append(("Grafana", f"contact point: {exc}"))
        return report
    report.steps.append(step)
    return report


async def _create_contact_point(target: GrafanaTarget, want: dict[str, Any]) -> None:
    """Create it; if another replica made it meanwhile, that is no error. Grafana answers a
    second contact point of a uid with a bare 500, which looks like Grafana being down, so
    the uid is read back before the failure is believed."""
    try:
        await target.create_contact_point(want)
    except GrafanaUnavailable:
        if await target.contact_point(CONTACT_POINT_UID) is None:
            raise


async def finish_routing(
    target: GrafanaTarget, routing: Routing, *, needed: bool, dry_run: bool = False
) -> Report:
    """After the rules: the policy route in place when `policy` routing is used and needed,
    else gone; then, if no managed rule is left, the contact point removed."""
    report = Report()
    try:
        await _policy(target, needed and routing == "policy", report, dry_run)
        if not needed and await target.contact_point(CONTACT_POINT_UID) is not None:
            if not dry_run:
                await target.delete_contact_point(CONTACT_POINT_UID)
            report.steps.append(
                Step(Action.DELETE, CONTACT_POINT_UID, None, "not needed", "contact-point")
            )
    except CorrelatorError as exc:
        report.errors.append(("Grafana", f"notification routing: {exc}"))
    return report
