"""Answers held to correlator's own OpenAPI description (openapi-core), as a client reads it:
the report inside an incident against the full `Report` schema the models generate."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from correlator.web.openapi import description


def webhook_body(body: Any) -> None:
    """Raises unless `body` is what the description's `incident` webhook documents (the
    envelope and the full Message schema)."""
    document = description()
    schema = {"$ref": "#/webhooks/incident/post/requestBody/content/application~1json/schema"}
    jsonschema.validate(body, {**document, **schema}, cls=jsonschema.Draft202012Validator)


@cache
def api() -> OpenAPI:
    return OpenAPI.from_dict(description())


def check(method: str, path: str, status: int, content_type: str, body: bytes) -> None:
    """Raises unless the description documents this answer, body included."""
    api().validate_response(
        MockRequest("http://localhost", method, path),
        MockResponse(body, status_code=status, content_type=content_type),
    )


async def documented_get(client: Any, path: str) -> Any:
    """GET `path`, check the answer against the description, return its JSON."""
    response = await client.get(path)
    body = await response.read()
    check("get", path, response.status, response.headers["Content-Type"], body)
    return json.loads(body)
