"""Reconciling Grafana with the WebApplications: write only what differs, collect what is gone.

For each app the desired dashboard is compared with the live one by content hash, so an
unchanged resync reads but never writes. Every dashboard correlator writes carries, under the
key `correlator`, the hash of the content it was written from; so with no state of its own
(a one-shot command, a restart, another replica) correlator tells a hand edit (content no
longer matches the mark, or a save from the UI dropped the mark) from a changed spec (the mark
is of an older spec). A hand edit is put back, with a version message that says so, unless the
app sets `revertManualEdits: false`. Dashboards that
carry correlator's ownership tag but belong to no app any more are deleted; no other dashboard
is touched: before a write, correlator looks for a dashboard of the same title in the folder
(Grafana would refuse it, or with `overwrite` take it over) and for one at its UID that it did
not make; either is someone else's, left alone and reported as a conflict. Work runs with
bounded concurrency, and one app's failure is reported without stopping the others.
Grafana-managed alert rules are reconciled the same way, with these actions and reports, in
provisioning/reconcile_rules.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from correlator.errors import CorrelatorError
from correlator.models.webapp import WebApplication
from correlator.progress import Steps, quiet
from correlator.provisioning.dashboards import Folder, dashboard, team_folder
from correlator.provisioning.grafana import (
    OWNERSHIP_TAG,
    GrafanaRefused,
    GrafanaTarget,
    LiveDashboard,
)
from correlator.provisioning.naming import Links
from correlator.provisioning.templates import content_hash

log = logging.getLogger(__name__)

SERVER_FIELDS = ("id", "version")  # what Grafana adds to a dashboard it stores
MARK = "correlator"  # {"hash": …}: what correlator wrote this dashboard from
_FAILED = object()  # what a guarded call returns when it failed (the failure is reported)


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REVERT = "revert"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    KEEP_EDIT = "keep-manual-edit"


WRITES = {Action.CREATE, Action.UPDATE, Action.REVERT, Action.DELETE}


@dataclass(frozen=True, slots=True)
class Desired:
    app: WebApplication
    uid: str
    folder: Folder
    dashboard: dict[str, Any]
    hash: str


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    uid: str
    app: str | None  # namespace/name, None for a collected orphan
    reason: str
    kind: str = "dashboard"


@dataclass(frozen=True, slots=True)
class Conflict:
    """An app's dashboard not written because someone else's dashboard holds its place."""

    app: str
    uid: str
    reason: str


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    conflicts: list[Conflict] = field(default_factory=list)  # also among the errors
    # Grafana objects someone else owns that correlator needed to change and left alone:
    # (object, reason), also among the errors.
    left_alone: list[tuple[str, str]] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return sum(1 for step in self.steps if step.action in WRITES)

    def count(self, action: Action) -> int:
        return sum(1 for step in self.steps if step.action is action)


def desired_dashboards(apps: Iterable[WebApplication], links: Links) -> dict[str, Desired]:
    desired = {}
    for app in apps:
        board = dashboard(app, links)
        desired[board["uid"]] = Desired(
            app, board["uid"], team_folder(app.spec.team), board, content_hash(board)
        )
    return desired


def live_hash(live: LiveDashboard) -> str:
    ignored = (*SERVER_FIELDS, MARK)
    return content_hash({k: v for k, v in live.dashboard.items() if k not in ignored})


def marked(want: Desired) -> dict[str, Any]:
    """The dashboard as written: the desired content plus the mark of what it came from."""
    return {**want.dashboard, MARK: {"hash": want.hash}}


def _decide(want: Desired, live: LiveDashboard | None) -> Step:
    key = want.app.key
    if live is None:
        return Step(Action.CREATE, want.uid, key, f"correlator: created for WebApplication {key}")
    if live_hash(live) == want.hash and live.folder_uid == want.folder.uid:
        return Step(Action.UNCHANGED, want.uid, key, "in sync")
    mark = live.dashboard.get(MARK)
    written_from = mark.get("hash") if isinstance(mark, dict) else None
    if written_from is None or written_from == want.hash:
        if not want.app.spec.observability.revert_manual_edits:
            return Step(
                Action.KEEP_EDIT, want.uid, key, "edited by hand; the app keeps manual edits"
            )
        return Step(
            Action.REVERT,
            want.uid,
            key,
            f"correlator: reverted a manual edit; WebApplication {key} owns this dashboard "
            "(set spec.observability.revertManualEdits: false to keep edits)",
        )
    return Step(Action.UPDATE, want.uid, key, f"correlator: WebApplication {key} changed")


async def _someone_elses(
    target: GrafanaTarget, want: Desired, live: LiveDashboard | None
) -> str | None:
    """Why writing `want` would overwrite a dashboard correlator did not make, or None."""
    ours = live is None or OWNERSHIP_TAG in live.dashboard.get("tags", [])
    if live is not None and not ours and MARK not in live.dashboard:
        return f"dashboard {want.uid} exists and is not managed by correlator"
    title = want.dashboard["title"]
    for hit in await target.dashboards_titled(title, want.folder.uid):
        if hit.get("uid") != want.uid:
            whose = (
                "another of correlator's"
                if OWNERSHIP_TAG in hit.get("tags", [])
                else "not managed by correlator"
            )
            return (
                f"dashboard {hit.get('uid')!r} titled {title!r} in folder {want.folder.uid} is "
                f"{whose}; not overwritten (rename or delete it to let correlator provision)"
            )
    return None


async def reconcile(
    target: GrafanaTarget,
    apps: Iterable[WebApplication],
    links: Links,
    *,
    concurrency: int = 8,
    dry_run: bool = False,
    steps: Steps = quiet,
) -> Report:
    """Bring Grafana to the desired state (or, with dry_run, only say what that would take);
    `steps` reports each dashboard as it is done."""
    report = Report()
    desired = desired_dashboards(apps, links)
    limit = asyncio.Semaphore(concurrency)

    async def guarded(what: str, work: Any) -> Any:
        async with limit:
            try:
                return await work
            except CorrelatorError as exc:
                report.errors.append((what, str(exc)))
                log.warning("provisioning failed", extra={"what": what, "error": str(exc)})
                return _FAILED

    try:
        owned = await target.owned_dashboards()
    except CorrelatorError as exc:
        report.errors.append(("Grafana", str(exc)))
        return report

    failed_folders: set[str] = set()
    if not dry_run:
        folders = {want.folder for want in desired.values()}
        results = await asyncio.gather(
            *(guarded(f"folder {f.uid}", target.ensure_folder(f)) for f in folders)
        )
        failed_folders = {f.uid for f, ok in zip(folders, results, strict=True) if ok is _FAILED}

    async def one(want: Desired) -> None:
        if want.folder.uid in failed_folders:
            report.errors.append((want.app.key, f"folder {want.folder.uid} could not be made"))
            return
        live = await guarded(want.app.key, target.get_dashboard(want.uid))
        if live is _FAILED:
            return
        step = _decide(want, live)
        if step.action in WRITES:
            conflict = await guarded(want.app.key, _someone_elses(target, want, live))
            if conflict is _FAILED:
                return
            if conflict is None and not dry_run:
                try:
                    async with limit:
                        await target.save_dashboard(
                            marked(want),
                            folder_uid=want.folder.uid,
                            message=step.reason,
                            version=live.version if live is not None else None,
                        )
                except GrafanaRefused as exc:
                    if exc.grafana_status != "name-exists":  # made meanwhile: a conflict
                        report.errors.append((want.app.key, str(exc)))
                        log.warning(
                            "provisioning failed", extra={"what": want.app.key, "error": str(exc)}
                        )
                        return
                    conflict = f"a dashboard titled {want.dashboard['title']!r} appeared: {exc}"
                except CorrelatorError as exc:
                    report.errors.append((want.app.key, str(exc)))
                    log.warning(
                        "provisioning failed", extra={"what": want.app.key, "error": str(exc)}
                    )
                    return
            if conflict is not None:
                report.conflicts.append(Conflict(want.app.key, want.uid, conflict))
                report.errors.append((want.app.key, conflict))
                log.warning("dashboard conflict", extra={"app": want.app.key, "problem": conflict})
                return
        report.steps.append(step)

    async def collect(uid: str) -> None:
        if not dry_run and await guarded(uid, target.delete_dashboard(uid)) is _FAILED:
            return
        report.steps.append(Step(Action.DELETE, uid, None, "its WebApplication is gone"))

    await run_all(
        [
            *(one(want) for want in desired.values()),
            *(collect(uid) for uid in sorted(owned - desired.keys())),
        ],
        steps,
        "Grafana dashboards",
    )
    report.steps.sort(key=lambda step: (step.app or "", step.uid))
    return report


async def run_all(work: list[Coroutine[Any, Any, None]], steps: Steps, what: str) -> None:
    """Run the work concurrently, reporting each piece as it finishes."""
    for finished in steps(asyncio.as_completed(work), what, total=len(work)):
        await finished
