"""Grafana as a provisioning target, through grafana-client's AsyncGrafanaApi.

The only module that talks to Grafana. Its errors are translated here, once (`_call`), with
the shared mapping (`outbound.status`): no answer, 408, 425, 429 and 5xx become
`GrafanaUnavailable` with Grafana's Retry-After as `delay_s` (retry at the next resync), any
other 4xx `GrafanaRefused` carrying Grafana's own message and status (`name-exists`,
`version-mismatch`, …).

grafana-client speaks through niquests, not httpx, and takes no transport or session of ours;
so each call goes through the shared stack's pieces that do not need the transport: the
in-flight budget (`outbound.client.Budget`) and the client span (`outbound.client.traced`). A
niquests response hook, which sees the status line and headers before grafana-client reads
the body, names the span's method and status and keeps the Retry-After that grafana-client's
exceptions leave out.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from grafana_client.api import AsyncGrafanaApi
from grafana_client.client import GrafanaException, GrafanaTimeoutError
from opentelemetry import trace

from correlator.errors import CorrelatorError, RemoteRefused, RemoteUnavailable
from correlator.outbound.client import Budget, traced
from correlator.outbound.status import Errors, error_for_status, unreachable
from correlator.provisioning.dashboards import Folder

OWNERSHIP_TAG = "managed-by:correlator"
SEARCH_PAGE = 1000
MAX_IN_FLIGHT = 4  # one provisioning pass at a time, with a few reads beside it
Result = TypeVar("Result")
# The headers of the last error answer grafana-client saw in this task (see the module's text).
_error_headers: ContextVar[Mapping[str, str] | None] = ContextVar("grafana_error_headers")


class GrafanaUnavailable(RemoteUnavailable):
    """Grafana did not answer, or answered 408, 425, 429 or 5xx: try again later."""


class GrafanaRefused(RemoteRefused):
    """Grafana answered 4xx: it will refuse again until something changes."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        grafana_status: str | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.grafana_status = grafana_status

    @property
    def status_code(self) -> int:
        return self.status or 0


ERRORS = Errors(GrafanaUnavailable, GrafanaRefused, GrafanaRefused)


def _seen(response: Any, **_: Any) -> None:
    """niquests' response hook: the span learns the method and status, and an error answer's
    headers are kept for the translation (grafana-client's exceptions have only the body)."""
    span = trace.get_current_span()
    method = str(getattr(response.request, "method", "") or "")
    if method:
        span.update_name(method)
        span.set_attribute("http.request.method", method)
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 400:
        _error_headers.set(response.headers)


def translate(exc: GrafanaException, *, timeout_s: float) -> CorrelatorError:
    """grafana-client's exception as the error tree has it, by the shared mapping."""
    if isinstance(exc, GrafanaTimeoutError):
        return unreachable("Grafana", TimeoutError(), timeout_s=timeout_s, errors=ERRORS)
    if not exc.status_code:  # niquests failed before any answer
        return unreachable("Grafana", exc, timeout_s=timeout_s, errors=ERRORS)
    body = exc.response
    said = json.dumps(body) if isinstance(body, dict | list) else str(body or exc.message)
    headers = _error_headers.get(None) or {}
    error = error_for_status("Grafana", exc.status_code, headers, said, errors=ERRORS)
    if isinstance(error, GrafanaRefused) and isinstance(body, dict):
        error.grafana_status = body.get("status")
    return error or GrafanaRefused(f"Grafana answered {exc.status_code}", status=exc.status_code)


@dataclass(frozen=True, slots=True)
class LiveDashboard:
    dashboard: dict[str, Any]
    version: int
    folder_uid: str


class GrafanaTarget:
    """Folders and dashboards in one Grafana organisation."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = url
        self._timeout_s = timeout_s
        self._host = urlsplit(url).hostname or url
        self._api = AsyncGrafanaApi.from_url(url=url, credential=token, timeout=timeout_s)
        self._api.client.s.hooks["response"].append(_seen)
        self._budget = Budget(MAX_IN_FLIGHT)

    def _before_write(self) -> None:
        """Runs before every write (and before `ensure_folder`, which may write): a subclass
        may refuse here (FencedGrafana, once this replica no longer leads)."""

    async def _write(self, operation: Callable[[], Awaitable[Result]]) -> Result:
        self._before_write()
        return await self._call(operation)

    async def _call(self, operation: Callable[[], Awaitable[Result]]) -> Result:
        """One grafana-client call (one request): within the budget, in a client span, its
        failures translated."""

        async def translated() -> Result:
            _error_headers.set(None)
            try:
                return await operation()
            except GrafanaException as exc:
                raise translate(exc, timeout_s=self._timeout_s) from exc
            except OSError as exc:  # niquests' ConnectionError and its kin
                raise unreachable("Grafana", exc, timeout_s=self._timeout_s, errors=ERRORS) from exc

        return await self._budget.run(lambda: traced("Grafana", "HTTP", self._host, translated))

    async def _folder_exists(self, uid: str) -> bool:
        try:
            await self._call(lambda: self._api.folder.get_folder(uid))
        except GrafanaRefused as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    async def ensure_folder(self, folder: Folder) -> bool:
        """Make sure the folder exists; True if it had to be created.

        A refusal to create it is not taken for success until the folder is read back by its
        uid: Grafana up to 11.2 answers the same 409 for a folder that another replica just
        made (fine) and for someone else's folder of the same title (then every save into
        correlator's uid would fail with "folder not found"), and from 11.3 an existing uid
        answers 412."""
        self._before_write()
        if await self._folder_exists(folder.uid):
            return False
        try:
            await self._write(lambda: self._api.folder.create_folder(folder.title, uid=folder.uid))
        except GrafanaRefused as exc:
            if exc.status_code not in (409, 412):
                raise
            if not await self._folder_exists(folder.uid):
                raise GrafanaRefused(
                    f"folder {folder.title!r} cannot be made with uid {folder.uid}: another "
                    f"folder holds that title ({exc}); rename that folder or give it uid "
                    f"{folder.uid}",
                    status=exc.status,
                    grafana_status=exc.grafana_status,
                ) from exc
        return True

    async def get_dashboard(self, uid: str) -> LiveDashboard | None:
        try:
            found = await self._call(lambda: self._api.dashboard.get_dashboard(uid))
        except GrafanaRefused as exc:
            if exc.status_code == 404:
                return None
            raise
        meta = found.get("meta", {})
        return LiveDashboard(
            found["dashboard"], int(meta.get("version", 0)), meta.get("folderUid", "")
        )

    async def save_dashboard(
        self,
        dashboard: dict[str, Any],
        *,
        folder_uid: str,
        message: str,
        version: int | None = None,
    ) -> int:
        """Create (`version` None) or replace the version read; returns the new version.

        Never with `overwrite`: Grafana would then take over another dashboard of the same
        title in the folder. Without it, Grafana refuses (412) a same-titled dashboard
        (`name-exists`) or a version changed since it was read (`version-mismatch`)."""
        body = {
            "dashboard": {**dashboard, "version": version} if version else dashboard,
            "folderUid": folder_uid,
            "overwrite": False,
            "message": message,
        }
        saved = await self._write(lambda: self._api.dashboard.update_dashboard(body))
        return int(saved.get("version", 0))

    async def dashboards_titled(self, title: str, folder_uid: str) -> list[dict[str, Any]]:
        """Search hits for dashboards with exactly this title in the folder."""
        hits = await self._call(
            lambda: self._api.search.search_dashboards(
                query=title, type_="dash-db", folder_uids=folder_uid, limit=SEARCH_PAGE
            )
        )
        return [
            hit
            for hit in hits
            if hit.get("title") == title and (hit.get("folderUid") or "") == folder_uid
        ]

    async def delete_dashboard(self, uid: str) -> bool:
        try:
            await self._write(lambda: self._api.dashboard.delete_dashboard(uid))
        except GrafanaRefused as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    async def alert_rules(self) -> dict[str, dict[str, Any]]:
        """Every Grafana-managed alert rule, by UID, each with its `provenance`."""
        rules = await self._call(lambda: self._api.alertingprovisioning.get_alertrules_all())
        return {rule["uid"]: rule for rule in rules if isinstance(rule, dict) and "uid" in rule}

    async def owned_alert_rules(self, label: tuple[str, str]) -> dict[str, dict[str, Any]]:
        """Grafana-managed alert rules carrying the ownership label, by UID."""
        return {
            uid: rule
            for uid, rule in (await self.alert_rules()).items()
            if rule.get("labels", {}).get(label[0]) == label[1]
        }

    async def create_alert_rule(self, rule: dict[str, Any], *, disable_provenance: bool) -> None:
        await self._write(
            lambda: self._api.alertingprovisioning.create_alertrule(
                rule, disable_provenance=disable_provenance
            )
        )

    async def update_alert_rule(self, rule: dict[str, Any], *, disable_provenance: bool) -> None:
        await self._write(
            lambda: self._api.alertingprovisioning.update_alertrule(
                rule["uid"], rule, disable_provenance=disable_provenance
            )
        )

    async def delete_alert_rule(self, uid: str) -> None:
        """Delete the rule; an absent one is no error (Grafana answers 204 for it too). Sent
        without X-Disable-Provenance, which Grafana reads as provenance `api`: that deletes a
        rule stored with none or `api`, and only a `file` rule is refused (500)."""
        try:
            await self._write(lambda: self._api.alertingprovisioning.delete_alertrule(uid))
        except GrafanaRefused as exc:
            if exc.status_code != 404:  # older clients' view of an absent rule
                raise

    async def version(self) -> str:
        """Grafana's version ("11.5.0"), or "" if it will not say.

        /api/health leaves it out under `[auth.anonymous] hide_version`; the frontend settings
        still show it to a signed-in caller, which a service-account token is."""
        health = await self._call(lambda: self._api.client.GET("/health"))
        if isinstance(health, dict) and health.get("version"):
            return str(health["version"])
        try:
            settings = await self._call(lambda: self._api.client.GET("/frontend/settings"))
        except GrafanaRefused:
            return ""
        build = settings.get("buildInfo") if isinstance(settings, dict) else None
        return str(build.get("version") or "") if isinstance(build, dict) else ""

    async def contact_points(self) -> list[dict[str, Any]]:
        """Every contact point integration (secure settings come back redacted); several may
        share a name, as Grafana groups integrations by name."""
        points = await self._call(lambda: self._api.alertingprovisioning.get_contactpoints())
        listed = points if isinstance(points, list) else []
        return [point for point in listed if isinstance(point, dict)]

    async def contact_point(self, uid: str) -> dict[str, Any] | None:
        """The contact point with this UID, or None."""
        found = (p for p in await self.contact_points() if p.get("uid") == uid)
        return next(found, None)

    # Contact point and policy tree are written with X-Disable-Provenance: without it Grafana
    # marks them provenance `api`, and the UI then refuses every edit of them, which for the
    # tree means every route of the user's own.
    async def create_contact_point(self, point: dict[str, Any]) -> None:
        await self._write(
            lambda: self._api.alertingprovisioning.create_contactpoint(
                point, disable_provenance=True
            )
        )

    async def update_contact_point(self, point: dict[str, Any]) -> None:
        await self._write(
            lambda: self._api.alertingprovisioning.update_contactpoint(
                point["uid"], point, disable_provenance=True
            )
        )

    async def delete_contact_point(self, uid: str) -> bool:
        try:
            await self._write(lambda: self._api.alertingprovisioning.delete_contactpoint(uid))
        except GrafanaRefused as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    async def policy_tree(self) -> dict[str, Any]:
        """The whole notification policy tree (Grafana keeps it as one object)."""
        tree = await self._call(
            lambda: self._api.alertingprovisioning.get_notification_policy_tree()
        )
        if not isinstance(tree, dict):
            raise GrafanaRefused("the notification policy tree is not a JSON object", status=200)
        return tree

    async def put_policy_tree(self, tree: dict[str, Any]) -> None:
        """Replace the whole tree: callers send back what they read, changed only where they
        mean to (see provisioning/notifications.py). Its provenance is Grafana's to keep,
        not part of the tree sent."""
        body = {key: value for key, value in tree.items() if key != "provenance"}
        await self._write(
            lambda: self._api.alertingprovisioning.set_notification_policy_tree(
                body, disable_provenance=True
            )
        )

    async def owned_dashboards(self) -> set[str]:
        """UIDs of every dashboard that carries correlator's ownership tag."""
        owned: set[str] = set()
        page = 1
        while True:
            hits = await self._call(
                lambda page=page: self._api.search.search_dashboards(  # type: ignore[misc]
                    tag=OWNERSHIP_TAG, type_="dash-db", limit=SEARCH_PAGE, page=page
                )
            )
            owned |= {hit["uid"] for hit in hits if OWNERSHIP_TAG in hit.get("tags", [])}
            if len(hits) < SEARCH_PAGE:
                return owned
            page += 1
