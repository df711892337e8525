"""A property-based fuzz of the whole HTTP surface: any method, path, query, headers and body.

Every answer is held to correlator's own OpenAPI description, as served at
/api/v1/openapi.json (openapi-core validates it): its status is one the route documents and
its body matches that status's schema; a path the description does not name is 404, a method
it does not name on a known path 405. A refused request (4xx) stored nothing: every table's
row count is what the valid notification sent beside it adds, no more. Half the examples run
against an app with a bearer token configured, sending no, wrong or right credentials; the
routes the description protects refuse all but the right one with 401. Whatever arrives, the
service stays ready and the valid notification beside each hostile request is stored.
Failures found before are pinned with @example.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from yarl import URL

from tests.support.payloads import alert, payload
from tests.support.totals import store_totals

TOKEN = "fuzz-bearer-token-0123456789"

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
    "/api/v1/incidents/{}/bundle",
    "/api/v1/incidents/{}/cause",
    "/incidents/{}/cause",
    "/api/v1/openapi.json",
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


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


VALID = payload([alert("f")], group_key="fuzz")
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
            _json(VALID),
            _json(payload([alert("f\x00")], group_key="fuzz")),
            b'{"receiver": "\\ud800"}',
            _json({"service": "checkout", "by": "ana"}),
            _json({"service": "x\u0000y"}),
            _json({"text": 5}),
            b"service=checkout&text=%3Cscript%3E",
            b"service=%FF",
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    ).map(_json),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            [
                "application/json",
                "application/json; charset=latin-1",
                "application/x-www-form-urlencoded",
                "text/plain",
                "",
                "a/b;",
            ]
        ),
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "x"]),
        "Authorization": st.sampled_from(["Bearer x", "Basic !!", ""]),
        "traceparent": st.sampled_from(["00-zz-zz-01", "garbage", ""]),
    },
)
# What an example sends when the app has a token: none, a wrong one, or the right one.
CREDENTIALS = ["none", "wrong", "right"]


@dataclass(repr=False)
class Fuzzed:
    """Two apps on one store, one open and one with a bearer token, and the description."""

    open_app: Any
    guarded_app: Any
    api: OpenAPI
    document: dict[str, Any]
    valid_footprint: dict[str, int]  # rows one new valid notification adds, table by table

    def app(self, authed: bool) -> Any:
        return self.guarded_app if authed else self.open_app


def _problem_json(raw: bytes) -> Any:
    return json.loads(raw)


async def _notify(client: Any, *, authed: bool, group: str) -> Any:
    credentials = {"Authorization": f"Bearer {TOKEN}"} if authed else {}
    return await client.post(
        "/api/v1/alerts", json=payload([alert("ok")], group_key=group), headers=credentials
    )


@pytest.fixture
async def fuzzed(app_client: Any) -> Fuzzed:
    """One pair of apps for every example (examples share fixtures)."""
    open_app = await app_client(queue={"workers": 0})
    guarded_app = await app_client(queue={"workers": 0}, auth={"bearer_token": TOKEN})
    document = await (await open_app.get("/api/v1/openapi.json")).json()
    config = Config(extra_media_type_deserializers={"application/problem+json": _problem_json})
    api = OpenAPI.from_dict(document, config=config)
    before = await store_totals(open_app)
    assert (await _notify(open_app, authed=False, group=f"footprint-{uuid.uuid4()}")).status == 200
    after = await store_totals(open_app)
    footprint = {table: after[table] - before[table] for table in after}
    return Fuzzed(open_app, guarded_app, api, document, footprint)


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    """The operation the description names for `method` on the raw (encoded) `path`, matched
    as aiohttp's router matches: on the path decoded but for %2F and %25, a parameter being
    one or more characters other than '/', '{' and '}'."""
    routed = URL.build(path=path, encoded=True).path_safe
    for template, item in document["paths"].items():
        pattern = re.sub(r"\\\{\w+\\\}", "[^{}/]+", re.escape(template))
        if re.fullmatch(pattern, routed) and method in item:
            operation: dict[str, Any] = item[method]
            return operation
    return None


def _protected(operation: dict[str, Any]) -> bool:
    """Whether the operation lets no one in without a credential ({} in security is 'none')."""
    return bool(operation.get("security")) and {} not in operation["security"]


@dataclass
class Answer:
    status: int
    content_type: str | None
    body: bytes


MAX_LINE_BYTES = 8190  # aiohttp's limit on the request line (and each header line)


def _refused_by_the_http_parser(answer: Answer, sent: dict[str, str]) -> bool:
    """aiohttp's HTTP parser refused the message itself, before any route, middleware or
    credential check ran (the app never saw it), with a plain-text 400 saying why: a request
    line over MAX_LINE_BYTES, or a body not encoded as its Content-Encoding says (found at
    the end of the message; the intake, which reads its body, answers that as a problem)."""
    if answer.status != 400 or not (answer.content_type or "text/plain").startswith("text/plain"):
        return False
    if f"Got more than {MAX_LINE_BYTES} bytes when reading".encode() in answer.body:
        return True
    encoding = sent.get("Content-Encoding")
    return encoding is not None and encoding.encode() in answer.body


def check_against_the_description(
    fuzzed: Fuzzed,
    method: str,
    path: str,
    answer: Answer,
    *,
    sent: dict[str, str],
    authed: bool,
    credential: str,
) -> None:
    """The answer is one the description documents for this request, body included."""
    if _refused_by_the_http_parser(answer, sent):
        return
    spec_method = "get" if method == "HEAD" else method.lower()  # aiohttp answers HEAD as GET
    refused_credential = authed and credential != "right"
    operation = _operation(fuzzed.document, spec_method, path)
    if refused_credential and path.startswith(("/api/", "/incidents")):
        # Every route under these prefixes, named or not, asks for the credential first.
        assert answer.status == 401, (method, path, answer)
    elif operation is None:
        named = any(_operation(fuzzed.document, m, path) for m in ("get", "post", "put"))
        assert answer.status == (405 if named else 404), (method, path, answer)
    if operation is not None and refused_credential and _protected(operation):
        assert answer.status == 401, (method, path, answer)
    if operation is not None:
        assert str(answer.status) in operation["responses"], (method, path, answer)
    if method == "HEAD" or answer.content_type is None:
        return  # no body to check: HEAD has none; a refusal by aiohttp's parser gave none
    if answer.status in (401, 404, 405) and operation is None:
        problem_schema = fuzzed.document["components"]["schemas"]["Problem"]
        if answer.status != 405:  # aiohttp's own 405 for a method the route lacks
            assert answer.content_type == "application/problem+json", answer
            jsonschema.validate(json.loads(answer.body), problem_schema)
        return
    request = MockRequest("http://localhost", spec_method, path)
    response = MockResponse(
        answer.body, status_code=answer.status, content_type=answer.content_type
    )
    try:
        fuzzed.api.validate_response(request, response)
    except (PathNotFound, OperationNotFound) as exc:  # the router disagrees with the text
        raise AssertionError((method, path, answer)) from exc


async def _documented(fuzzed: Fuzzed, method: str, path: str, response: Any) -> None:
    """A well-formed request's answer matches the description too (Stored, IncidentDetail)."""
    fuzzed.api.validate_response(
        MockRequest("http://localhost", method, path),
        MockResponse(
            await response.read(),
            status_code=response.status,
            content_type=response.headers["Content-Type"],
        ),
    )


async def _send(
    client: Any, method: str, path: str, query: dict[str, str], sent: dict[str, str], body: bytes
) -> tuple[str, Answer]:
    try:
        response = await client.request(
            method,
            path,
            params=query,
            data=body,
            headers={**sent, "Connection": "close"},
            skip_auto_headers={"Content-Type"},
        )
        raw = await response.read()
        return response.request_info.url.raw_path, Answer(
            response.status, response.headers.get("Content-Type"), raw
        )
    except aiohttp.ClientResponseError as exc:
        # aiohttp's own parser refused the request (e.g. br without Brotli), or its answer to
        # a HEAD carried a body the client cannot read: the status still counts.
        url = exc.request_info.url.raw_path
        return url, Answer(exc.status, None, exc.message.encode())


def _credentials(sent: dict[str, str], *, authed: bool, credential: str) -> dict[str, str]:
    if not authed:
        return sent
    chosen = {k: v for k, v in sent.items() if k != "Authorization"}
    if credential == "right":
        chosen["Authorization"] = f"Bearer {TOKEN}"
    elif credential == "wrong":
        chosen["Authorization"] = sent.get("Authorization") or f"Bearer {TOKEN}x"
    return chosen


def _cursor(document: str) -> str:
    return base64.urlsafe_b64encode(document.encode()).decode()


GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=paths(),
    query=queries,
    request_headers=headers,
    body=bodies,
    authed=st.booleans(),
    credential=st.sampled_from(CREDENTIALS),
)
# Failures found before (commits 55a65db and aeab8aa: each was a 5xx; the graph number's and
# the description's 401 were found by this oracle):
# a truncatedAlerts past an integer column (PostgreSQL refused the group with 503 for good),
@example("POST", "/api/v1/alerts", {}, {"Content-Type": "application/json"},
         _json({**VALID, "truncatedAlerts": 2**64 - 1}), False, "none")  # fmt: skip
# a NUL in a text field (PostgreSQL refused a whole group commit with 503),
@example("POST", "/api/v1/alerts", {}, {"Content-Type": "application/json"},
         _json({**VALID, "receiver": "x\x00y"}), True, "right")  # fmt: skip
# a body that is not compressed as it says (500),
@example("POST", "/api/v1/alerts", {}, GZIP, _json(VALID), False, "none")  # fmt: skip
@example("PUT", "/api/v1/alerts", {}, GZIP, gzip.compress(b"{") + b"x", True, "right")  # fmt: skip
# ids and limits past what an integer holds, or written in Unicode digits (500/503),
@example("GET", "/api/v1/incidents/" + "9" * 5000, {}, {}, b"", True, "right")  # fmt: skip
@example("GET", "/incidents/" + quote("²"), {}, {}, b"", False, "none")  # fmt: skip
@example("GET", "/api/v1/incidents", {"limit": "\uff11\uff12"}, {}, b"", False, "none")  # fmt: skip
@example("GET", "/incidents", {"limit": "9" * 5000}, {}, b"", True, "right")  # fmt: skip
# a cursor that decodes to something other than an id,
@example("GET", "/api/v1/incidents", {"cursor": _cursor('{"before": true}')}, {}, b"", False,
         "none")  # fmt: skip
# a graph number that is no number (404 where a bad id is 400; /graphs/0.png undocumented),
@example("GET", "/api/v1/incidents/1/graphs/" + "9" * 5000 + ".png", {}, {}, b"", False,
         "none")  # fmt: skip
@example("GET", "/api/v1/incidents/1/graphs/0.png", {}, {}, b"", True, "right")  # fmt: skip
# and the description itself, read without the credential it asks for (401 undocumented).
@example("GET", "/api/v1/openapi.json", {}, {}, b"", True, "none")  # fmt: skip
async def test_every_answer_is_documented_refusals_store_nothing_and_notifications_beside_land(
    fuzzed: Fuzzed,
    method: str,
    path: str,
    query: dict[str, str],
    request_headers: dict[str, str],
    body: bytes,
    authed: bool,
    credential: str,
) -> None:
    client = fuzzed.app(authed)
    sent = _credentials(request_headers, authed=authed, credential=credential)
    group = f"beside-{uuid.uuid4()}"
    before = await store_totals(client)
    valid, (raw_path, answer) = await asyncio.gather(
        _notify(client, authed=authed, group=group), _send(client, method, path, query, sent, body)
    )
    assert answer.status < 500, (method, path, query, answer)
    check_against_the_description(
        fuzzed, method, raw_path, answer, sent=sent, authed=authed, credential=credential
    )
    if 400 <= answer.status < 500:
        after = await store_totals(client)
        added = {table: after[table] - before[table] for table in after}
        assert added == fuzzed.valid_footprint, (method, path, answer)
    assert valid.status == 200, await valid.text()
    await _documented(fuzzed, "post", "/api/v1/alerts", valid)
    incident_url = (await valid.json())["incident_url"]
    stored = await client.get(incident_url, headers={"Authorization": f"Bearer {TOKEN}"})
    await _documented(fuzzed, "get", incident_url, stored)
    assert (await stored.json())["group_key"] == group
    assert (await client.get("/readyz")).status == 200
