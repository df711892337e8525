"""A generic webhook: the incident message as JSON, signed.

    POST <url>
    Content-Type: application/json
    X-Correlator-Event: incident.firing | incident.updated | incident.resolved
    X-Correlator-Delivery: <incident id>-<version sha>   (the same on every retry: deduplicate)
    X-Correlator-Signature: sha256=<hex HMAC-SHA256 of the body with the shared secret>

    {"schema": "correlator.incident/v1", "event": "...", "message": {...}}

`message` is the platform-neutral message: the JSON of `models/message.Message`, whose fields
are documented there (built by correlator/sinks/message.py). Its text fields
carry alert content verbatim: a receiver must treat them as untrusted. Each new version of the
incident's message is one POST; the delivery id repeats only when a POST is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

from pydantic import Field, SecretStr

from correlator.models.message import Message
from correlator.settings.base import SinkSettingsBase
from correlator.sinks.base import HttpSink, Remember, request
from correlator.sinks.registry import register
from correlator.store.outbox import content_sha

SCHEMA = "correlator.incident/v1"


class WebhookSinkSettings(SinkSettingsBase):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for the signature.")
    headers: dict[str, str] = Field(default_factory=dict)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink(HttpSink):
    def __init__(
        self,
        name: str,
        *,
        url: str,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self._url = url
        self._secret = secret
        self._headers = dict(headers or {})

    async def send(
        self, document: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        # The outbox's JSON validated, and sent as the message's JSON: a message an earlier
        # release left in the outbox reaches the receiver in today's shape.
        message = Message.model_validate(document)
        if message.resolved:
            event = "incident.resolved"
        else:
            event = "incident.updated" if remote.get("sent") else "incident.firing"
        sent = message.model_dump(mode="json")
        body = json.dumps(
            {"schema": SCHEMA, "event": event, "message": sent}, separators=(",", ":")
        ).encode()
        # Over the stored document: a retry after an upgrade keeps the id an earlier release
        # sent, so a receiver that drops repeated ids still does.
        delivery = f"{message.incident_id}-{content_sha(document)[:16]}"
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


@register(WebhookSinkSettings)
def build(spec: WebhookSinkSettings) -> WebhookSink:
    secret = spec.secret.get_secret_value() if spec.secret else None
    return WebhookSink(spec.name, url=spec.url, secret=secret, headers=spec.headers)
