"""correlator's own HTTP API as an OpenAPI 3.1 description, served at /api/v1/openapi.json and
kept in the repository beside this module (a test holds the two equal, and holds the
description to the routes the application really has).

The payload and response schemas come from the pydantic models the routes validate and
serialise with, so the description cannot drift from what is checked.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from correlator.models.alerts import GrafanaWebhookPayload, WebhookPayload
from correlator.models.incidents import IncidentDetail, IncidentPage
from correlator.models.message import Message

openapi = web.RouteTableDef()
REF = "#/components/schemas/{model}"
PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problems(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "Malformed request (bad JSON, parameter, cursor, id or encoding).",
        401: "Missing or wrong credential.",
        403: "A form posted from another site.",
        404: "No such incident (or nothing of the kind for it).",
        413: "Body over server.max_body_bytes.",
        415: "Content-Type is not application/json.",
        422: "Not a webhook payload this service accepts, or data the store refuses.",
        503: "The store is unavailable or the service is shutting down; retry later.",
    }
    return {
        str(status): {
            "description": meaning[status],
            "content": {"application/problem+json": {"schema": PROBLEM}},
        }
        for status in statuses
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _id_parameter() -> dict[str, Any]:
    return {
        "name": "incident_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


NUMBER = {
    "name": "number",
    "in": "path",
    "required": True,
    "description": "The graph's place in the report's series, counted from 0.",
    "schema": {"type": "integer", "minimum": 0},
}


WEBHOOK = {
    "post": {
        "operationId": "incidentWebhook",
        "summary": "The generic webhook sink's POST: an incident's message, signed",
        "description": "X-Correlator-Event names the event, X-Correlator-Delivery repeats only "
        "on a retry (deduplicate on it), X-Correlator-Signature is sha256=<hex HMAC-SHA256 of "
        "the body> when a secret is set. Text fields carry alert content verbatim.",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["schema", "event", "message"],
                        "properties": {
                            "schema": {"const": "correlator.incident/v1"},
                            "event": {
                                "enum": ["incident.firing", "incident.updated", "incident.resolved"]
                            },
                            "message": {"$ref": "#/components/schemas/Message"},
                        },
                    }
                }
            },
        },
        "responses": {
            "2XX": {"description": "Received."},
            "default": {
                "description": "No answer, 408, 425, 429 or 5xx: retried later (after its "
                "Retry-After); another 4xx: recorded as refused, not retried."
            },
        },
    }
}


def _json_any(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {}}}


def _receive(method: str) -> dict[str, Any]:
    return {
        "operationId": f"receiveAlerts{method.title()}",
        "summary": "Alertmanager (version 4) or Grafana Alerting (version 1) webhook",
        "description": "Stored durably before the 2xx; a 4xx is never retried by the sender.",
        "security": [{}, {"bearer": []}, {"basic": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/WebhookPayload"},
                            {"$ref": "#/components/schemas/GrafanaWebhookPayload"},
                        ]
                    }
                }
            },
        },
        "responses": {
            "200": _json("Stored", "Stored: durable from now on."),
            **_problems(400, 401, 413, 415, 422, 503),
        },
    }


@cache
def description() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (WebhookPayload, "validation"),
            (GrafanaWebhookPayload, "validation"),
            (IncidentPage, "serialization"),
            (IncidentDetail, "serialization"),
            (Message, "serialization"),
        ],
        ref_template=REF,
    )
    components = dict(schemas.get("$defs", {}))
    components["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    }
    components["CauseAnswer"] = {
        "type": "object",
        "description": "What the cause was: a service (in scope or not), free text, or both; "
        "who says so (the authenticated principal is kept as well). Control characters are "
        "refused (newlines allowed in text).",
        "additionalProperties": False,
        "anyOf": [{"required": ["service"]}, {"required": ["text"]}],
        "properties": {
            "service": {"type": ["string", "null"], "minLength": 1, "maxLength": 253},
            "text": {"type": ["string", "null"], "minLength": 1, "maxLength": 2000},
            "by": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
        },
    }
    components["Cause"] = {
        "type": "object",
        "required": ["cause"],
        "properties": {
            "cause": {
                "type": "object",
                "properties": {
                    "incident_id": {"type": "integer"},
                    "service": {"type": ["string", "null"]},
                    "text": {"type": ["string", "null"]},
                    "by": {"type": ["string", "null"]},
                    "principal": {"type": ["string", "null"]},
                    "rank": {
                        "type": ["integer", "null"],
                        "description": "The service's rank in the report when confirmed.",
                    },
                    "outcome": {"enum": ["rank1", "top3", "missed"]},
                    "app": {"type": ["string", "null"]},
                    "team": {"type": ["string", "null"]},
                    "answered_at": {"type": "string", "format": "date-time"},
                },
            },
            "changed": {
                "type": "boolean",
                "description": "False when the same answer was already stored (idempotent).",
            },
        },
    }
    components["Stored"] = {
        "type": "object",
        "required": ["status", "incident_id"],
        "properties": {"status": {"const": "stored"}, "incident_id": {"type": "integer"}},
        "additionalProperties": True,
    }
    auth: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}, {}]
    listing = [
        _query("status", "firing or resolved", {"enum": ["firing", "resolved"]}),
        _query("namespace", "any alert's namespace", {"type": "string"}),
        _query("alertname", "any alert's alertname", {"type": "string"}),
        _query("since", "RFC 3339 or Unix seconds", {"type": "string"}),
        _query("until", "RFC 3339 or Unix seconds", {"type": "string"}),
        _query("limit", "1 to 500", {"type": "integer", "minimum": 1, "maximum": 500}),
        _query("cursor", "next_cursor of the previous page", {"type": "string"}),
    ]
    text = {"description": "Plain text.", "content": {"text/plain": {"schema": {"type": "string"}}}}
    html = {"description": "HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "correlator",
            "version": "1",  # the API's version (its paths say v1), not the package's
            "description": "Alert intake, incidents with their correlation reports, health.",
        },
        "paths": {
            "/api/v1/alerts": {"post": _receive("post"), "put": _receive("put")},
            "/api/v1/incidents": {
                "get": {
                    "operationId": "listIncidents",
                    "summary": "Incidents, newest first",
                    "security": auth,
                    "parameters": listing,
                    "responses": {
                        "200": _json("IncidentPage", "A page of incidents."),
                        **_problems(400, 401, 503),
                    },
                }
            },
            "/api/v1/incidents/{incident_id}": {
                "get": {
                    "operationId": "getIncident",
                    "summary": "One incident: alerts, timeline, work, report, deliveries",
                    "security": auth,
                    "parameters": [_id_parameter()],
                    "responses": {
                        "200": _json("IncidentDetail", "The incident."),
                        **_problems(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/incidents/{incident_id}/graphs/{number}.png": {
                "get": {
                    "operationId": "getGraph",
                    "summary": "An evidence graph of the incident's report",
                    "security": auth,
                    "parameters": [_id_parameter(), NUMBER],
                    "responses": {
                        "200": {"description": "PNG.", "content": {"image/png": {}}},
                        **_problems(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/incidents/{incident_id}/bundle": {
                "get": {
                    "operationId": "getBundle",
                    "summary": "The inputs of the incident's analysis as an incident bundle "
                    "(tar.gz), for `correlator analyze`",
                    "security": auth,
                    "parameters": [_id_parameter()],
                    "responses": {
                        "200": {"description": "tar.gz.", "content": {"application/gzip": {}}},
                        **_problems(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/incidents/{incident_id}/cause": {
                "get": {
                    "operationId": "getCause",
                    "summary": "The cause confirmed for the incident",
                    "security": auth,
                    "parameters": [_id_parameter()],
                    "responses": {
                        "200": _json("Cause", "The confirmed cause."),
                        **_problems(400, 401, 404, 503),
                    },
                },
                "post": {
                    "operationId": "confirmCause",
                    "summary": "Say what the cause was (idempotent; a later answer replaces "
                    "an earlier one)",
                    "security": auth,
                    "parameters": [_id_parameter()],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CauseAnswer"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("Cause", "Stored (or already so)."),
                        **_problems(400, 401, 404, 413, 415, 422, 503),
                    },
                },
            },
            "/incidents": {
                "get": {
                    "operationId": "incidentsPage",
                    "summary": "The incidents page",
                    "security": auth,
                    "parameters": listing,
                    "responses": {"200": html, **_problems(400, 401, 503)},
                }
            },
            "/incidents/{incident_id}": {
                "get": {
                    "operationId": "incidentPage",
                    "summary": "One incident's page",
                    "security": auth,
                    "parameters": [_id_parameter()],
                    "responses": {"200": html, **_problems(400, 401, 404, 503)},
                }
            },
            "/incidents/{incident_id}/cause": {
                "post": {
                    "operationId": "confirmCauseForm",
                    "summary": "The incident page's form: what the cause was",
                    "security": auth,
                    "parameters": [_id_parameter()],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {"$ref": "#/components/schemas/CauseAnswer"}
                            }
                        },
                    },
                    "responses": {
                        "303": {
                            "description": "Stored: back to the incident page.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_problems(400, 401, 403, 404, 413, 415, 422, 503),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "200 while the process answers",
                    "responses": {"200": {"description": "Alive."}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "200 while every loop runs (the store's state in the body)",
                    "responses": {"200": {"description": "Ready."}, **_problems(503)},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus exposition",
                    "responses": {"200": text},
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This description",
                    "security": auth,
                    "responses": {"200": _json_any("OpenAPI 3.1."), **_problems(401)},
                }
            },
        },
        # What the generic webhook sink sends (sinks/webhook.py), described from its model.
        "webhooks": {"incident": WEBHOOK},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }


def published() -> dict[str, Any]:
    """The description as the repository keeps it (`openapi.json` beside this module)."""
    text = resources.files("correlator.web").joinpath("openapi.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@openapi.get("/api/v1/openapi.json")
async def serve_openapi(request: web.Request) -> web.Response:
    """correlator's API description (behind the same credential as the rest of /api)."""
    return web.json_response(description())
