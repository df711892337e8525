"""correlator's own API description: a valid OpenAPI 3.1 document, served at a route and kept
in the repository, that names exactly the routes the application has, and whose documented
answers are the ones the routes give to hostile requests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_core.exceptions import OpenAPIError
from openapi_spec_validator import validate

from correlator.metrics import Metrics
from correlator.models.message import Message
from correlator.models.report import Report
from correlator.runtime.service import create_app
from correlator.web.openapi import REF, description, published
from tests.store.test_old_reports import CURRENT, OLD_MESSAGE, _incident_with
from tests.support.openapi import check, documented_get, webhook_body

ROOT = Path(__file__).resolve().parents[2]


def test_the_description_is_valid_and_the_repository_keeps_it_current() -> None:
    validate(description())  # raises on an invalid OpenAPI 3.1 document
    assert published() == json.loads(json.dumps(description())), (
        "regenerate: .venv/bin/python -c 'import json; from correlator.web.openapi import "
        "description; print(json.dumps(description(), indent=2, sort_keys=True))' "
        "> correlator/web/openapi.json"
    )


def test_it_names_exactly_the_routes_the_application_has(make_settings: Any) -> None:
    app = create_app(make_settings(), metrics=Metrics())
    served = {
        (route.method.lower(), re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.resource.canonical))
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {
        (method, path) for path, item in description()["paths"].items() for method in item
    }
    assert served == documented


async def test_it_is_served_and_hostile_requests_get_documented_answers(app_client: Any) -> None:
    client = await app_client()
    answer = await client.get("/api/v1/openapi.json")
    assert answer.status == 200
    paths = (await answer.json())["paths"]
    hostile: list[tuple[str, str, dict[str, Any]]] = [
        ("post", "/api/v1/alerts", {"data": b"{", "headers": {"Content-Type": "application/json"}}),
        ("post", "/api/v1/alerts", {"data": b"x", "headers": {"Content-Type": "text/plain"}}),
        ("put", "/api/v1/alerts", {"json": {"version": "4"}}),
        ("get", "/api/v1/incidents?limit=0", {}),
        ("get", "/api/v1/incidents?cursor=%7B", {}),
        ("get", "/api/v1/incidents/" + "9" * 5000, {}),
        ("get", "/api/v1/incidents/12345", {}),
        ("get", "/api/v1/incidents/1/graphs/99.png", {}),
        ("get", "/incidents/0", {}),
        ("get", "/incidents?status=nope", {}),
    ]
    for method, url, options in hostile:
        response = await client.request(method.upper(), url, **options)
        template = next(
            path
            for path in paths
            if re.fullmatch(re.sub(r"\{\w+\}", r"[^/]+", path), url.split("?")[0])
        )
        documented = paths[template][method]["responses"]
        assert str(response.status) in documented, (method, url, response.status)
        assert response.status < 500


def test_the_report_is_the_models_schema_with_refs_into_components() -> None:
    """The report inside an incident is described by its models (no untyped object): the
    schemas in components/schemas are exactly what `Report` generates, so they cannot drift."""
    schemas = description()["components"]["schemas"]
    report = schemas["IncidentDetail"]["properties"]["report"]
    assert report["anyOf"][0] == {"$ref": "#/components/schemas/Report"}
    generated = Report.model_json_schema(mode="serialization", ref_template=REF)
    parts = generated.pop("$defs")
    assert schemas["Report"] == generated
    assert set(parts) == {"App", "Change", "Evidence", "Inputs", "Missing", "Scope", "Series",
                          "Suspect", "Windows"}  # fmt: skip
    for name, schema in parts.items():
        assert schemas[name] == schema, name
    # Documented: every field of the report says what it is (its own description or its model's).
    for name in ("Report", "Suspect", "Evidence"):
        for field, schema in schemas[name]["properties"].items():
            assert "description" in schema or "$ref" in str(schema) or field in PLAIN, (name, field)


# Fields whose name says it all.
PLAIN = {"incident_id", "service", "unit", "notes", "timings_ms", "missing", "evidence"}


async def test_a_real_incident_with_its_report_matches_the_full_schema(app_client: Any) -> None:
    """A served incident with a full report validates; one whose report strays from the models
    in any part (a suspect, the status, a gap, a graph's points) does not."""
    client = await app_client(queue={"workers": 0})
    incident_id = await _incident_with(client, CURRENT)
    path = f"/api/v1/incidents/{incident_id}"
    detail = await documented_get(client, path)
    assert detail["report"]["suspects"][0]["confidence"] == 0.9
    report = detail["report"]
    for strayed in (
        {"suspects": [{**report["suspects"][0], "rank": "first"}]},
        {"suspects": [{**report["suspects"][0], "evidence": [{"kind": "metric"}]}]},
        {"status": "done"},
        {"missing": [{"what": "everything"}]},
        {"series": [{**report["series"][0], "points": [["not a time", 1.0]]}]},
        {"generated_at": None},
    ):
        wrong = json.dumps({**detail, "report": {**report, **strayed}}).encode()
        with pytest.raises(OpenAPIError):
            check("get", path, 200, "application/json", wrong)


def test_the_webhook_message_is_described_by_its_model_and_refuses_strays() -> None:
    """The generic webhook's body (sinks/webhook.py) is in the description too, its message
    from `Message` (tests/sinks/test_delivery checks real deliveries against it)."""
    schemas = description()["components"]["schemas"]
    generated = Message.model_json_schema(mode="serialization", ref_template=REF)
    for name, schema in generated.pop("$defs").items():
        assert schemas[name] == schema, name
    assert schemas["Message"] == generated
    message = Message.model_validate(OLD_MESSAGE).model_dump(mode="json")
    envelope = {"schema": "correlator.incident/v1", "event": "incident.resolved"}
    webhook_body({**envelope, "message": message})
    for strayed in ({"status": "closed"}, {"suspects": [{"reason": "no service"}]}):
        with pytest.raises(jsonschema.ValidationError):
            webhook_body({**envelope, "message": {**message, **strayed}})
