"""A generic webhook: the incident message as JSON, signed.

    POST <url>
    Content-Type: application/json
    X-Correlator-Event: incident.firing | incident.updated | incident.resolved
    X-Correlator-Delivery: <incident id>-<version sha>   (the same on every retry: deduplicate)
    X-Correlator-Signature: sha256=<hex HMAC-SHA256 of the body with the shared secret>

    {"schema": "correlator.incident/v1", "event": "...", "message": {...}}

`message` is the platform-neutral message (see correlator/sinks/message.py). Its text fields
carry alert content verbatim: a receiver must treat them as untrusted. Each new version of the
incident's message is one POST; the delivery id repeats only when a POST is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from correlator.sinks.base import Remember, request
from correlator.store.outbox import content_sha

SCHEMA = "correlator.incident/v1"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    def __init__(
        self,
        name: str,
        *,
        url: str,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        severities: frozenset[str] = frozenset(),
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.severities = severities
        self.teams: frozenset[str] = frozenset()  # set by build_sinks
        self._url = url
        self._secret = secret
        self._headers = dict(headers or {})
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(
        self, message: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        if message["status"] == "resolved":
            event = "incident.resolved"
        else:
            event = "incident.updated" if remote.get("sent") else "incident.firing"
        body = json.dumps(
            {"schema": SCHEMA, "event": event, "message": message}, separators=(",", ":")
        ).encode()
        delivery = f"{message['incident_id']}-{content_sha(message)[:16]}"
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "X-Correlator-Event": event,
            "X-Correlator-Delivery": delivery,
        }
        if self._secret:
            headers["X-Correlator-Signature"] = signature(self._secret, body)
        await request(self.name, self._http, "POST", self._url, content=body, headers=headers)
        return {"sent": True, "last_delivery": delivery}
