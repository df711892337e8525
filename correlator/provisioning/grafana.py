"""Grafana as a provisioning target, through grafana-client's AsyncGrafanaApi.

The only module that talks to Grafana. Its errors are translated here, once: timeouts and 5xx
become `GrafanaUnavailable` (retry at the next resync), 4xx become `GrafanaRefused` carrying
Grafana's own message and status (`name-exists`, `version-mismatch`, …).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from grafana_client.api import AsyncGrafanaApi
from grafana_client.client import GrafanaException, GrafanaServerError, GrafanaTimeoutError

from correlator.errors import PermanentError, TemporaryError
from correlator.provisioning.dashboards import Folder

OWNERSHIP_TAG = "managed-by:correlator"
SEARCH_PAGE = 1000
Result = TypeVar("Result")


class GrafanaUnavailable(TemporaryError):
    """Grafana did not answer, or answered 5xx: try again later."""


class GrafanaRefused(PermanentError):
    """Grafana answered 4xx: it will refuse again until something changes."""

    def __init__(self, status_code: int, message: str, grafana_status: str | None) -> None:
        super().__init__(f"Grafana answered {status_code}: {message}")
        self.status_code = status_code
        self.grafana_status = grafana_status


@dataclass(frozen=True, slots=True)
class LiveDashboard:
    dashboard: dict[str, Any]
    version: int
    folder_uid: str


class GrafanaTarget:
    """Folders and dashboards in one Grafana organisation."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = url
        self._api = AsyncGrafanaApi.from_url(url=url, credential=token, timeout=timeout_s)

    def _before_write(self) -> None:
        """Runs before every write (and before `ensure_folder`, which may write): a subclass
        may refuse here (FencedGrafana, once this replica no longer leads)."""

    async def _write(self, operation: Callable[[], Awaitable[Result]]) -> Result:
        self._before_write()
        return await self._call(operation)

    async def _call(self, operation: Callable[[], Awaitable[Result]]) -> Result:
        try:
            return await operation()
        except (GrafanaTimeoutError, GrafanaServerError) as exc:
            raise GrafanaUnavailable(f"Grafana is unavailable: {exc}") from exc
        except GrafanaException as exc:
            body = exc.response if isinstance(exc.response, dict) else {}
            raise GrafanaRefused(
                exc.status_code, str(body.get("message") or exc.message), body.get("status")
            ) from exc
        except OSError as exc:
            raise GrafanaUnavailable(f"cannot reach Grafana: {exc}") from exc

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
                    exc.status_code,
                    f"folder {folder.title!r} cannot be made with uid {folder.uid}: another "
                    f"folder holds that title ({exc}); rename that folder or give it uid "
                    f"{folder.uid}",
                    exc.grafana_status,
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
            raise GrafanaRefused(200, "the notification policy tree is not a JSON object", None)
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
