"""correlator's own API description: a valid OpenAPI 3.1 document, served at a route and kept
in the repository, that names exactly the routes the application has, and whose documented
answers are the ones the routes give to hostile requests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from correlator.metrics import Metrics
from correlator.runtime.service import create_app
from correlator.web.openapi import description, published

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
