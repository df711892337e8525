"""Loki's HTTP contract, checked against the test server or, with LOKI_URL set, a real Loki.

Every test pushes its own lines (labelled with a run id, timestamps near now) through
`/loki/api/v1/push` and reads them back, so the same test runs unchanged against a real Loki 3.4
(`LOKI_URL=http://127.0.0.1:3100 pytest tests/fakes/test_loki_contract.py`). The recorded
answers of a real Loki 3.4.6 are in tests/contracts/loki/. Tests that inject answers (429,
504) only run against the test server.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fakes.loki import FakeLoki, duration_ns
from tests.support.servers import served

RECORDED = Path(__file__).resolve().parents[1] / "contracts" / "loki"
LOKI_URL = os.environ.get("LOKI_URL", "").rstrip("/")
NS = 1_000_000_000

# The Loki these tests expect (the test server is configured from it too). Start a real one with
#   printf '%s' "$LOKI_CONFIG" > /tmp/loki.yaml    # this string
#   loki-3.4.6 -config.file=/tmp/loki.yaml         # or: docker run -p 3100:3100 \
#       -v /tmp/loki.yaml:/etc/loki/local-config.yaml grafana/loki:3.4.6
# then run `LOKI_URL=http://127.0.0.1:3100 pytest tests/fakes/test_loki_contract.py`.
# The recordings in tests/contracts/loki came from this configuration. Only
# max_entries_limit_per_query differs from Loki's defaults (the tests ask for 500 to see it
# refused); the others are spelt out because the tests rely on them: structured metadata
# (trace_id), service_name discovery, detected_level, 7 days' and 10 minutes' push tolerance,
# out-of-order writes, and any max_query_length below 800h.
LOKI_CONFIG = """\
auth_enabled: false
server:
  http_listen_port: 3100
  grpc_listen_port: 9096
common:
  instance_addr: 127.0.0.1
  path_prefix: /tmp/loki
  storage:
    filesystem:
      chunks_directory: /tmp/loki/chunks
      rules_directory: /tmp/loki/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
limits_config:
  max_entries_limit_per_query: 100
  max_query_length: 721h
  max_line_size: 256KB
  allow_structured_metadata: true
  discover_log_levels: true
  reject_old_samples: true
  reject_old_samples_max_age: 168h
  creation_grace_period: 10m
  unordered_writes: true
"""
LIMITS = yaml.safe_load(LOKI_CONFIG)["limits_config"]
only_on_the_test_server = pytest.mark.skipif(
    bool(LOKI_URL), reason="injects answers into the test server"
)


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


@dataclass
class Loki:
    http: httpx.AsyncClient
    fake: FakeLoki | None
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    now_ns: int = field(default_factory=time.time_ns)

    def selector(self, **labels: str) -> str:
        matchers = [f'run="{self.run}"'] + [f'{k}="{v}"' for k, v in sorted(labels.items())]
        return "{" + ", ".join(matchers) + "}"

    async def push(self, labels: dict[str, str], values: list[list[Any]]) -> None:
        document = {"streams": [{"stream": {"run": self.run, **labels}, "values": values}]}
        answer = await self.http.post("/loki/api/v1/push", json=document)
        assert answer.status_code == 204, answer.text
        assert answer.content == b""

    async def query_range(self, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return await self.http.get(
            "/loki/api/v1/query_range",
            params={k: str(v) for k, v in params.items()},
            headers=headers,
        )

    async def streams(self, query: str, **params: Any) -> list[dict[str, Any]]:
        answer = await self.query_range(query=query, **params)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["resultType"] == "streams"
        return list(data["result"])


@pytest.fixture
async def loki() -> AsyncIterator[Loki]:
    if LOKI_URL:
        async with httpx.AsyncClient(base_url=LOKI_URL, timeout=30) as http:
            yield Loki(http, None)
        return
    fake = FakeLoki(
        max_entries=LIMITS["max_entries_limit_per_query"],
        max_query_length_s=duration_ns(LIMITS["max_query_length"]) / NS,
    )
    async with served(fake.app) as url, httpx.AsyncClient(base_url=url) as http:
        yield Loki(http, fake)


def entries(streams: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(value[0], value[1]) for stream in streams for value in stream["values"]]


# --- refusals ----------------------------------------------------------------------------------


async def test_errors_are_lokis_plain_text_400s(loki: Loki) -> None:
    start, end = str(loki.now_ns - 60 * NS), str(loki.now_ns)
    cases = {
        "err-limit": {"query": loki.selector(), "limit": "500", "start": start, "end": end},
        "err-empty-matcher": {"query": '{app=~".*"}'},
        "err-range": {"query": loki.selector(), "start": end, "end": start},
    }
    for name, params in cases.items():
        answer = await loki.query_range(**params)
        assert answer.status_code == 400, name
        assert answer.headers["content-type"] == recorded_content_type(f"{name}.headers"), name
        expected = recorded_body(f"{name}.body").rstrip("\n")
        if name == "err-limit" and LOKI_URL:  # the cap is the server's configuration
            expected = re.sub(r"\(500 > \d+\)", "", expected)
            assert answer.text.startswith(expected), name
        else:
            assert answer.text == expected, name
    parse = await loki.query_range(query='{app="api"')
    assert parse.status_code == 400
    assert parse.headers["content-type"] == recorded_content_type("err-parse.headers")
    assert re.fullmatch(
        r"parse error at line 1, col \d+: syntax error: unexpected \$end, expecting \} or ,",
        parse.text,
    )
    instant = await loki.http.get("/loki/api/v1/query", params={"query": loki.selector()})
    assert instant.status_code == 400
    assert instant.text == recorded_body("err-instant-log-query.body").rstrip("\n")


async def test_an_empty_window_answers_no_streams_a_reversed_one_is_refused(loki: Loki) -> None:
    at = loki.now_ns - 30 * NS
    await loki.push({"app": "api"}, [[str(at), "GET /orders 200"]])
    assert await loki.streams(loki.selector(), start=at, end=at) == []
    reversed_window = await loki.query_range(query=loki.selector(), start=at, end=at - 1)
    assert reversed_window.status_code == 400
    assert reversed_window.text == "end timestamp must not be before or equal to start time"


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("0", "limit must be a positive value"),
        ("-3", "limit must be a positive value"),
        ("many", 'strconv.Atoi: parsing "many": invalid syntax'),
    ],
)
async def test_a_limit_that_is_not_a_positive_number_is_refused(
    loki: Loki, limit: str, message: str
) -> None:
    answer = await loki.query_range(query=loki.selector(), limit=limit)
    assert answer.status_code == 400
    assert message in answer.text


async def test_a_window_longer_than_max_query_length_is_refused(loki: Loki) -> None:
    # Longer than any configuration's limit (Loki's default is 721h).
    start = loki.now_ns - 800 * 3600 * NS
    answer = await loki.query_range(query=loki.selector(), start=start, end=loki.now_ns)
    assert answer.status_code == 400
    assert answer.text.startswith(
        "the query time range exceeds the limit (query length: 800h0m0s, limit: "
    )


# --- time --------------------------------------------------------------------------------------


async def test_time_is_integer_nanoseconds_and_the_window_is_start_inclusive_end_exclusive(
    loki: Loki,
) -> None:
    at = loki.now_ns - 20 * NS
    await loki.push(
        {"app": "api"},
        [[str(at + i), f"line {i}"] for i in (-1, 0, 1, 2)]
        + [[str(at), "same nanosecond, other line"], [str(at), "line 0"]],  # the last: a duplicate
    )
    found = entries(await loki.streams(loki.selector(), start=at, end=at + 2))
    assert sorted(found, reverse=True) == [
        (str(at + 1), "line 1"),
        (str(at), "same nanosecond, other line"),
        (str(at), "line 0"),
    ]
    forward = entries(
        await loki.streams(loki.selector(), start=at, end=at + 2, direction="forward")
    )
    assert forward[-1] == (str(at + 1), "line 1")


async def test_query_range_answers_a_form_post_as_it_answers_a_get(loki: Loki) -> None:
    at = loki.now_ns - 15 * NS
    await loki.push({"app": "api"}, [[str(at), "posted"]])
    answer = await loki.http.post(
        "/loki/api/v1/query_range",
        data={"query": loki.selector(), "start": str(at), "end": str(at + 1)},
    )
    assert answer.status_code == 200
    assert entries(answer.json()["data"]["result"]) == [(str(at), "posted")]


# --- RE2 ---------------------------------------------------------------------------------------


async def test_regular_expressions_are_re2(loki: Loki) -> None:
    at = loki.now_ns - 10 * NS
    await loki.push({"app": "café"}, [[str(at), "naïve line"]])
    await loki.push({"app": "api-2"}, [[str(at), "ascii line"]])
    unicode_letters = f'{{run="{loki.run}", app=~"\\\\p{{L}}+"}}'
    assert [s["stream"]["app"] for s in await loki.streams(unicode_letters)] == ["café"]
    for query in (
        f'{{run="{loki.run}", app=~"(?=caf)caf.*"}}',
        loki.selector() + ' |~ "(?=line)"',
    ):
        answer = await loki.query_range(query=query)
        assert answer.status_code == 400, query
        assert "invalid or unsupported Perl syntax" in answer.text, query


# --- what Loki adds at ingestion -------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"job": "j", "container": "c", "component": "x"}, "c"),
        ({"k8s_job_name": "k", "workload": "w"}, "w"),
        ({"app_name": "a", "name": "n", "app_kubernetes_io_name": "k"}, "a"),
        ({"job": "j", "k8s_job_name": "k"}, "j"),
        ({"team": "payments"}, "unknown_service"),
    ],
)
async def test_service_name_is_discovered_in_lokis_order(
    loki: Loki, labels: dict[str, str], expected: str
) -> None:
    await loki.push(labels, [[str(loki.now_ns - 5 * NS), "hello"]])
    (stream,) = await loki.streams(loki.selector(**labels))
    assert stream["stream"]["service_name"] == expected


async def test_detected_level_comes_from_the_line_when_no_level_label_exists(
    loki: Loki,
) -> None:
    at = loki.now_ns - 8 * NS
    lines = {
        "payment failed with error": "error",
        '{"level":"WARN","msg":"slow"}': "warn",
        "level=debug msg=cache": "debug",
        "job 42 done": "unknown",
        "INFO handled 12 requests": "info",
    }
    await loki.push({"app": "api"}, [[str(at + i), line] for i, line in enumerate(lines)])
    found = await loki.query_range(
        query=loki.selector(app="api"),
        headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"},
    )
    levels = {
        value[1]: value[2]["structuredMetadata"]["detected_level"]
        for stream in found.json()["data"]["result"]
        for value in stream["values"]
    }
    assert levels == lines
    await loki.push({"app": "web", "level": "error"}, [[str(at), "all fine here"]])
    (stream,) = await loki.streams(loki.selector(app="web"))
    assert stream["stream"]["detected_level"] == "error"  # the label wins over the words


async def test_categorize_labels_keeps_index_metadata_and_parsed_labels_apart(loki: Loki) -> None:
    at = loki.now_ns - 7 * NS
    await loki.push(
        {"app": "api"},
        [[str(at), "route=/orders status=500 app=web", {"trace_id": "4bf92f35"}]],
    )
    query = loki.selector(app="api") + " | logfmt"
    categorized = await loki.query_range(
        query=query, headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"}
    )
    data = categorized.json()["data"]
    assert data["encodingFlags"] == ["categorize-labels"]
    (stream,) = data["result"]
    assert stream["stream"] == {"run": loki.run, "app": "api", "service_name": "api"}
    (value,) = stream["values"]
    assert value[2] == {
        "structuredMetadata": {"trace_id": "4bf92f35", "detected_level": "unknown"},
        "parsed": {"route": "/orders", "status": "500", "app_extracted": "web"},
    }
    (mixed,) = await loki.streams(query)
    assert mixed["stream"] == {
        "run": loki.run,
        "app": "api",
        "service_name": "api",
        "trace_id": "4bf92f35",
        "detected_level": "unknown",
        "route": "/orders",
        "status": "500",
        "app_extracted": "web",
    }


# --- metric queries ----------------------------------------------------------------------------


async def test_metric_queries_are_aligned_to_the_step(loki: Loki) -> None:
    # The six lines span 5 s just after a minute: one step's [1m] window holds all of them
    # (placed anywhere, they straddled a step one run in twelve).
    at = (loki.now_ns - 5 * 60 * NS) // (60 * NS) * (60 * NS) + 10 * NS
    await loki.push({"app": "api"}, [[str(at + i * NS), f"line {i}"] for i in range(6)])
    query = f"sum(count_over_time({loki.selector()}[1m]))"
    start = loki.now_ns - 10 * 60 * NS + 7 * NS  # not on a step
    answer = await loki.query_range(query=query, start=start, end=loki.now_ns, step="60")
    (series,) = answer.json()["data"]["result"]
    assert series["values"], series
    assert all(point[0] % 60 == 0 for point in series["values"])
    assert max(int(point[1]) for point in series["values"]) == 6


async def test_the_default_step_is_a_250th_of_the_window(loki: Loki) -> None:
    at = loki.now_ns - 5 * 60 * NS
    await loki.push({"app": "api"}, [[str(at), "once"]])
    query = f"sum(count_over_time({loki.selector()}[1m]))"
    start = loki.now_ns - 50 * 60 * NS  # 3000 s / 250: a 12 s step
    answer = await loki.query_range(query=query, start=start, end=loki.now_ns)
    times = [point[0] for point in answer.json()["data"]["result"][0]["values"]]
    assert len(times) == 5  # the line is in (t - 1m, t] for five 12 s steps
    assert all(t % 12 == 0 for t in times)
    assert {b - a for a, b in itertools.pairwise(times)} == {12}


async def test_instant_metric_queries_answer_bytes_and_rates(loki: Loki) -> None:
    at = loki.now_ns - 60 * NS
    lines = ["abc", "défg", "0123456789"]
    await loki.push({"app": "api"}, [[str(at + i), line] for i, line in enumerate(lines)])
    total_bytes = sum(len(line.encode()) for line in lines)
    for query, expected in (
        (f"sum(bytes_over_time({loki.selector()}[5m]))", total_bytes),
        (f"sum(count_over_time({loki.selector()}[5m]))", 3),
        (f"sum(rate({loki.selector()}[5m]))", 3 / 300),
        (f"sum(bytes_rate({loki.selector()}[5m]))", total_bytes / 300),
    ):
        answer = await loki.http.get(
            "/loki/api/v1/query", params={"query": query, "time": str(loki.now_ns)}
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["resultType"] == "vector"
        (sample,) = data["result"]
        assert float(sample["value"][1]) == pytest.approx(expected), query


# --- the other endpoints -----------------------------------------------------------------------


async def test_push_accepts_a_stream_without_labels_as_unknown_service(loki: Loki) -> None:
    # A real Loki 3.4.6 answers 204: its distributor adds service_name before it checks that a
    # stream has labels, so an unlabelled stream is stored as {service_name="unknown_service"}.
    line = f"unlabelled {loki.run}"
    at = loki.now_ns - 2 * NS
    answer = await loki.http.post(
        "/loki/api/v1/push", json={"streams": [{"stream": {}, "values": [[str(at), line]]}]}
    )
    assert answer.status_code == 204, answer.text
    (stream,) = await loki.streams(f'{{service_name="unknown_service"}} |= "{line}"')
    assert stream["stream"] == {"service_name": "unknown_service", "detected_level": "unknown"}
    assert stream["values"] == [[str(at), line]]


async def test_labels_values_series_ready_and_buildinfo(loki: Loki) -> None:
    at = loki.now_ns - 3 * NS
    await loki.push({"app": "api"}, [[str(at), "hello", {"trace_id": "abc"}]])
    start, end = str(at - NS), str(at + NS)
    names = (await loki.http.get("/loki/api/v1/labels", params={"start": start, "end": end})).json()
    assert {"run", "app", "service_name"} <= set(names["data"])
    assert not {"trace_id", "detected_level"} & set(names["data"])  # metadata is no label
    values = (
        await loki.http.get("/loki/api/v1/label/run/values", params={"start": start, "end": end})
    ).json()
    assert loki.run in values["data"]
    series = (
        await loki.http.get(
            "/loki/api/v1/series", params={"match[]": loki.selector(), "start": start, "end": end}
        )
    ).json()
    assert series["data"] == [{"run": loki.run, "app": "api", "service_name": "api"}]
    assert set(series) == set(json.loads(recorded_body("series.json")))
    ready = await loki.http.get("/ready")
    assert ready.status_code == 200
    assert ready.text.strip() == "ready"
    build = (await loki.http.get("/loki/api/v1/status/buildinfo")).json()
    assert set(build) == set(json.loads(recorded_body("buildinfo.json")))


async def test_answers_have_the_recorded_shapes(loki: Loki) -> None:
    at = loki.now_ns - 5 * NS
    await loki.push(
        {"env": "test", "level": "error"},
        [[str(at), "GET /orders 500 db down", {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}]],
    )
    streams = (await loki.query_range(query=loki.selector())).json()
    recorded_streams = json.loads(recorded_body("query_range-streams.json"))
    assert set(streams) == set(recorded_streams)
    assert set(streams["data"]) == set(recorded_streams["data"])
    stream = streams["data"]["result"][0]
    assert {"service_name", "detected_level"} <= set(stream["stream"])
    assert shape(stream["values"]) == shape(recorded_streams["data"]["result"][0]["values"])
    categorized = (
        await loki.query_range(
            query=loki.selector(),
            headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"},
        )
    ).json()
    recorded = json.loads(recorded_body("query_range-streams-categorized.json"))
    assert categorized["data"]["encodingFlags"] == recorded["data"]["encodingFlags"]
    assert shape(categorized["data"]["result"][0]["values"][0][2]) == {
        "structuredMetadata": {"detected_level": "str", "trace_id": "str"}
    }
    matrix = (
        await loki.query_range(
            query=f"sum by (level) (count_over_time({loki.selector()}[5m]))", step="60"
        )
    ).json()
    expected = shape(json.loads(recorded_body("query_range-matrix.json")))
    assert shape(matrix)["data"]["resultType"] == expected["data"]["resultType"]
    assert set(matrix["data"]) == {"resultType", "result", "stats"}
    point = matrix["data"]["result"][0]["values"][0]
    assert isinstance(point[0], int | float) and isinstance(point[1], str)


# --- the recorded traffic, replayed (test server only) ---------------------------------------

# When the recorded queries ran: the instant query's default `time` (query-vector.json).
RECORDED_AT_NS = 1_795_665_904_254_000_000
RECORDED_QUERIES: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    # recording: (path, parameters, headers), as far as the answers determine them
    "query_range-streams.json": ("/loki/api/v1/query_range", {"query": '{env="test"}'}, {}),
    "query_range-streams-categorized.json": (
        "/loki/api/v1/query_range",
        {"query": '{app="api", level="error"}'},
        {"X-Loki-Response-Encoding-Flags": "categorize-labels"},
    ),
    "query_range-matrix.json": (
        "/loki/api/v1/query_range",
        {"query": 'sum by (level) (count_over_time({app="api"}[5m]))', "step": "60"},
        {},
    ),
    "query-vector.json": (
        "/loki/api/v1/query",
        {"query": 'sum by (level) (count_over_time({app="api"}[5m]))'},
        {},
    ),
    "labels.json": ("/loki/api/v1/labels", {}, {}),
    "series.json": ("/loki/api/v1/series", {"match[]": '{env="test"}'}, {}),
}


def recorded_headers(name: str) -> tuple[int, dict[str, str]]:
    status_line, *lines = (RECORDED / name).read_text().strip().splitlines()
    fields = dict(line.split(": ", 1) for line in lines if line)
    return int(status_line.split()[1]), fields


@pytest.fixture
async def recorded_loki() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.Response]]:
    """The test server at the recording's time, after the recorded push, byte for byte."""
    fake = FakeLoki(
        max_entries=LIMITS["max_entries_limit_per_query"], clock_ns=lambda: RECORDED_AT_NS
    )
    async with served(fake.app) as url, httpx.AsyncClient(base_url=url) as http:
        pushed = await http.post(
            "/loki/api/v1/push",
            content=(RECORDED / "push-request.json").read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        yield http, pushed


@only_on_the_test_server
async def test_the_recorded_push_is_answered_as_loki_answered_it(
    recorded_loki: tuple[httpx.AsyncClient, httpx.Response],
) -> None:
    _, pushed = recorded_loki
    status, headers = recorded_headers("push-response.headers")
    assert pushed.status_code == status
    assert pushed.content == (RECORDED / "push-response.body").read_bytes()
    # Date and Server are the server's own; Loki sends no other header with its 204.
    assert set(pushed.headers) - {"date", "server"} == {h.lower() for h in headers} - {"date"}


@only_on_the_test_server
@pytest.mark.parametrize("recording", sorted(RECORDED_QUERIES))
async def test_the_recorded_queries_answer_the_recorded_values(
    recorded_loki: tuple[httpx.AsyncClient, httpx.Response], recording: str
) -> None:
    """Everything but `data.stats`: its figures are Loki's work accounting (timings, bytes per
    second, chunk, cache and split counts of its storage), which no client of ours reads and the
    test server does not model; only its sections are compared."""
    http, _ = recorded_loki
    path, params, headers = RECORDED_QUERIES[recording]
    answer = await http.get(path, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    expected = json.loads(recorded_body(recording))
    got = answer.json()
    if isinstance(expected["data"], dict):
        assert set(got["data"].pop("stats")) == set(expected["data"].pop("stats"))
    assert got == expected


@only_on_the_test_server
async def test_the_recorded_label_values_are_answered_but_for_an_unrecorded_push(
    recorded_loki: tuple[httpx.AsyncClient, httpx.Response],
) -> None:
    # The recording's "gz" came from a gzip-compressed push the recordings do not hold.
    http, _ = recorded_loki
    answer = (await http.get("/loki/api/v1/label/app/values")).json()
    expected = json.loads(recorded_body("label-app-values.json"))
    assert answer == {**expected, "data": [v for v in expected["data"] if v != "gz"]}


@only_on_the_test_server
async def test_buildinfo_has_the_recorded_fields(
    recorded_loki: tuple[httpx.AsyncClient, httpx.Response],
) -> None:
    # The recorded binary was built without version stamping (every field empty); the test
    # server names the release it answers as.
    http, _ = recorded_loki
    build = (await http.get("/loki/api/v1/status/buildinfo")).json()
    assert build["version"] == "3.4.6"
    assert {**build, "version": ""} == json.loads(recorded_body("buildinfo.json"))


# --- injected answers (test server only) ---------------------------------------------------


@only_on_the_test_server
@pytest.mark.parametrize(
    ("status", "text"),
    [(429, "too many outstanding requests"), (504, "request timed out")],
)
async def test_overload_and_timeouts_can_be_injected(loki: Loki, status: int, text: str) -> None:
    assert loki.fake is not None
    loki.fake.refuse_next(status, times=1, after=1)
    first = await loki.query_range(query=loki.selector())
    second = await loki.query_range(query=loki.selector())
    third = await loki.query_range(query=loki.selector())
    assert [first.status_code, second.status_code, third.status_code] == [200, status, 200]
    assert text in second.text
    assert second.headers["content-type"] == "text/plain; charset=utf-8"
