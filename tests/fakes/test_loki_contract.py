"""The Loki test server against the traffic recorded from a real Loki 3.4.6."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.loki import FakeLoki
from tests.support.servers import served

RECORDED = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "loki"


def recorded_body(name: str) -> str:
    return (RECORDED / name).read_text()


def recorded_content_type(name: str) -> str:
    for line in (RECORDED / name).read_text().splitlines():
        if line.lower().startswith("content-type:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(name)


def shape(value: Any) -> Any:
    """Types and keys, not values: what a client relies on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if key != "stats"}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


async def test_errors_are_lokis_plain_text_400s() -> None:
    fake = FakeLoki(max_entries=100)
    now = time.time()
    async with served(fake.app) as url, httpx.AsyncClient(base_url=url) as http:
        cases = {
            "err-limit": {"query": '{app="api"}', "limit": "500"},
            "err-empty-matcher": {"query": '{app=~".*"}'},
            "err-range": {"query": '{app="api"}', "start": str(now), "end": str(now - 10)},
        }
        for name, params in cases.items():
            answer = await http.get("/loki/api/v1/query_range", params=params)
            assert answer.status_code == 400, name
            assert answer.headers["content-type"] == recorded_content_type(f"{name}.headers"), name
            assert answer.text == recorded_body(f"{name}.body").rstrip("\n"), name
        parse = await http.get("/loki/api/v1/query_range", params={"query": '{app="api"'})
        assert parse.status_code == 400 and parse.text.startswith("parse error at line 1, col ")
        instant = await http.get("/loki/api/v1/query", params={"query": '{app="api"}'})
        assert instant.status_code == 400
        assert instant.text == recorded_body("err-instant-log-query.body").rstrip("\n")


async def test_answers_have_the_recorded_shapes() -> None:
    fake = FakeLoki()
    now = time.time()
    fake.add(
        {"app": "api", "env": "test", "level": "error"},
        [(now - 5, "GET /orders 500 db down", {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})],
    )
    async with served(fake.app) as url, httpx.AsyncClient(base_url=url) as http:
        streams = (
            await http.get("/loki/api/v1/query_range", params={"query": '{app="api"}'})
        ).json()
        recorded_streams = json.loads(recorded_body("query_range-streams.json"))
        assert set(streams) == set(recorded_streams)
        assert set(streams["data"]) == set(recorded_streams["data"])
        stream = streams["data"]["result"][0]
        assert {"service_name", "detected_level"} <= set(stream["stream"])
        assert stream["stream"]["service_name"] == "api"
        assert shape(stream["values"]) == shape(recorded_streams["data"]["result"][0]["values"])
        categorized = (
            await http.get(
                "/loki/api/v1/query_range",
                params={"query": '{app="api"}'},
                headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"},
            )
        ).json()
        recorded = json.loads(recorded_body("query_range-streams-categorized.json"))
        assert categorized["data"]["encodingFlags"] == recorded["data"]["encodingFlags"]
        assert shape(categorized["data"]["result"][0]["values"][0][2]) == {
            "structuredMetadata": {"detected_level": "str", "trace_id": "str"}
        }
        matrix = (
            await http.get(
                "/loki/api/v1/query_range",
                params={"query": 'sum by (level) (count_over_time({app="api"}[5m]))', "step": "60"},
            )
        ).json()
        expected = shape(json.loads(recorded_body("query_range-matrix.json")))
        assert shape(matrix)["data"]["resultType"] == expected["data"]["resultType"]
        assert set(matrix["data"]) == {"resultType", "result", "stats"}
        point = matrix["data"]["result"][0]["values"][0]
        assert isinstance(point[0], int | float) and isinstance(point[1], str)
