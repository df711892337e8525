"""Grafana annotations: the incident's time range on its app's dashboard (the one correlator
provisions), tagged, added when it starts and given its end time when it resolves.

    POST  /api/annotations        {"dashboardUID", "time", "timeEnd", "tags", "text"} → {"id"}
    PATCH /api/annotations/{id}   {"time", "timeEnd", "tags", "text"}

Without a known app the annotation is an organization annotation, found by its tags. So is
one for an app whose dashboard is not in Grafana (not provisioned there, or not yet): the
dashboard is looked up first, because Grafana does not refuse an unknown dashboardUID but
quietly saves an organization annotation (PostAnnotation in pkg/api/annotations.go), which
the app's dashboard would never show.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr

from correlator.models.message import Message
from correlator.provisioning.naming import dashboard_uid
from correlator.settings.base import SinkSettingsBase
from correlator.sinks import escape
from correlator.sinks.base import HttpSink, Remember, SinkRetry, json_body, request
from correlator.sinks.registry import register

log = logging.getLogger(__name__)


class GrafanaSinkSettings(SinkSettingsBase):
    type: Literal["grafana"]
    url: str = Field(pattern=r"^https?://", description="Grafana base URL.")
    token: SecretStr = Field(description="Service account token (annotations:write).")


def _ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # a store that kept it naive kept UTC
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def annotation(message: Message) -> dict[str, Any]:
    start = _ms(message.started_at) or 0
    end = _ms(message.resolved_at) or start
    text = f"{message.status.upper()}: {message.title}"
    if message.suspects:
        text += f" · likely cause: {message.suspects[0].service}"
    # Grafana shows annotation text as HTML in its tooltip: escaped, no tag (so no link) forms,
    # and names copy out as they are.
    safe = escape.defang(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body: dict[str, Any] = {
        "time": start,
        "timeEnd": max(end, start),
        "tags": ["correlator", f"incident-{message.incident_id}", message.status],
        "text": escape.truncate(safe, 2000) + f' <a href="{message.incident_url}">incident</a>',
    }
    app = message.app
    if app is not None:
        body["dashboardUID"] = dashboard_uid(app.namespace, app.name)
        body["tags"].append(f"app-{app.namespace}-{app.name}")
    return body


class GrafanaAnnotationSink(HttpSink):
    def __init__(self, name: str, *, url: str, token: str, timeout_s: float = 10.0) -> None:
        super().__init__(
            name,
            timeout_s=timeout_s,
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
        )

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return json_body(self.name, await request(self.name, self._http, method, path, json=body))

    async def _dashboard_exists(self, uid: str) -> bool:
        """Through search, which needs no more than the token can see (an unreadable dashboard
        counts as absent), rather than GET /api/dashboards/uid, which a token allowed only
        annotations:write would be refused."""
        found = json_body(
            self.name,
            await request(
                self.name,
                self._http,
                "GET",
                "/api/search",
                params={"dashboardUIDs": uid, "type": "dash-db"},
            ),
        )
        return isinstance(found, list) and any(
            isinstance(hit, dict) and hit.get("uid") == uid for hit in found
        )

    async def send(
        self, document: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        body = annotation(Message.model_validate(document))  # the outbox's JSON
        if remote.get("id"):
            update = {k: v for k, v in body.items() if k != "dashboardUID"}
            await self._call("PATCH", f"/api/annotations/{int(remote['id'])}", update)
            return remote
        uid = body.get("dashboardUID")
        if uid is not None and not await self._dashboard_exists(uid):
            log.info(
                "no dashboard to annotate: an organization annotation instead",
                extra={"sink": self.name, "dashboard": uid},
            )
            del body["dashboardUID"]
        answer = await self._call("POST", "/api/annotations", body)
        if not isinstance(answer, dict) or "id" not in answer:
            raise SinkRetry(f"{self.name}: the annotation has no id")
        remote = {"id": int(answer["id"])}
        await remember(remote)
        return remote


@register(GrafanaSinkSettings)
def build(spec: GrafanaSinkSettings) -> GrafanaAnnotationSink:
    return GrafanaAnnotationSink(spec.name, url=spec.url, token=spec.token.get_secret_value())
