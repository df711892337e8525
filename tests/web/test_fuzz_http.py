"""A property-based fuzz of the whole HTTP surface: any method, path, query, headers and body.

Whatever arrives, the answer is never a 5xx (the store is healthy), the service stays ready,
and a valid notification sent at the same moment as each hostile request is stored.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.payloads import alert, payload

segment = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1", "0", "-1", "9" * 5000, "²", "\uff11", "%00", "..", "1.png", "a/b"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
PATHS = [
    "/api/v1/alerts",
    "/api/v1/incidents",
    "/api/v1/incidents/{}",
    "/api/v1/incidents/{}/graphs/{}.png",
    "/incidents",
    "/incidents/{}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/{}",
    "/api/v1/{}",
]


@st.composite
def paths(draw: st.DrawFn) -> str:
    template = draw(st.sampled_from(PATHS))
    while "{}" in template:
        template = template.replace("{}", quote(draw(segment), safe=""), 1)
    return template


PARAMS = ["status", "namespace", "alertname", "since", "until", "limit", "cursor", "x"]
queries = st.dictionaries(
    st.sampled_from(PARAMS) | st.text(max_size=10),
    st.text(max_size=40) | st.sampled_from(["²", "9" * 400, "1e9", "-1", "firing", "null"]),
    max_size=4,
)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"{}",
            _nested(5000),
            b'{"version": "4", "alerts": ' + _nested(3000) + b"}",
            b'{"truncatedAlerts": ' + b"9" * 5000 + b"}",
            json.dumps(payload([alert("f")], group_key="fuzz")).encode(),
            json.dumps(payload([alert("f\x00")], group_key="fuzz")).encode(),
            b'{"receiver": "\\ud800"}',
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json", "application/json; charset=latin-1", "text/plain", "", "a/b;"]
        ),
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "x"]),
        "Authorization": st.sampled_from(["Bearer x", "Basic !!", ""]),
        "traceparent": st.sampled_from(["00-zz-zz-01", "garbage", ""]),
    },
)


@pytest.fixture
async def fuzzed(app_client: Any) -> Any:
    """One application for every example (examples share fixtures)."""
    return await app_client(queue={"workers": 0})


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=paths(),
    query=queries,
    request_headers=headers,
    body=bodies,
)
async def test_no_request_gets_a_5xx_and_valid_notifications_beside_them_are_stored(
    fuzzed: Any,
    method: str,
    path: str,
    query: dict[str, str],
    request_headers: dict[str, str],
    body: bytes,
) -> None:
    group = f"beside-{uuid.uuid4()}"

    async def hostile() -> tuple[int, str]:
        try:
            answer = await fuzzed.request(
                method,
                path,
                params=query,
                data=body,
                headers={**request_headers, "Connection": "close"},
                skip_auto_headers={"Content-Type"},
            )
            return answer.status, await answer.text(errors="replace")
        except aiohttp.ClientResponseError as exc:
            # aiohttp's own parser refused the request (e.g. br without Brotli) and its
            # answer to a HEAD carried a body the client cannot read: the status still counts.
            return exc.status, exc.message

    valid = fuzzed.post("/api/v1/alerts", json=payload([alert("ok")], group_key=group))
    valid_answer, (status, text) = await asyncio.gather(valid, hostile())
    assert status < 500, (method, path, query, text)
    assert valid_answer.status == 200, await valid_answer.text()
    stored = await fuzzed.get((await valid_answer.json())["incident_url"])
    assert (await stored.json())["group_key"] == group
    assert (await fuzzed.get("/readyz")).status == 200
