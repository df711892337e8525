"""Hostile input that a fuzz run found answered with a 5xx: each is a precise 4xx now, the
same on SQLite and PostgreSQL, and a valid notification beside it is still stored."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import zlib
from typing import Any

import pytest

from correlator.errors import StoreRefused
from correlator.models.incidents import IntakeResult
from correlator.web.state import INTAKE
from tests.store.test_notifications import received
from tests.support.databases import write_lock
from tests.support.payloads import alert, payload

NUL_FIELDS = ["receiver", "groupKey", "externalURL", "fingerprint", "generatorURL"]


def _with_nul(field: str, group: str) -> dict[str, Any]:
    body = payload([alert("f1")], group_key=group)
    if field in ("fingerprint", "generatorURL"):
        body["alerts"][0][field] = "x\x00y"
    else:
        body[field] = "x\x00y"
    return body


async def _count(client: Any) -> int:
    return len((await (await client.get("/api/v1/incidents?limit=500")).json())["items"])


@pytest.mark.parametrize("field", NUL_FIELDS)
async def test_a_nul_in_a_text_field_is_422_on_both_stores(app_client: Any, field: str) -> None:
    client = await app_client(queue={"workers": 0})
    response = await client.post("/api/v1/alerts", json=_with_nul(field, "nul"))
    assert response.status == 422, await response.text()
    assert "NUL" in (await response.json())["detail"]
    assert await _count(client) == 0


async def test_a_nul_fails_alone_among_notifications_committed_together(
    app_client: Any, database_url: str
) -> None:
    """Forty notifications queue behind a held lock and are committed in one batch: the one
    that carries a NUL fails with 422, the other thirty-nine are stored."""
    client = await app_client(queue={"workers": 0})
    bodies = [payload([alert("f1")], group_key=f"ok-{n}") for n in range(39)]
    bodies.insert(17, _with_nul("receiver", "bad"))
    first = await client.post("/api/v1/alerts", json=bodies.pop(0))  # the schema is warm
    assert first.status == 200
    intake = client.server.app[INTAKE]
    async with write_lock(database_url):
        posts = [asyncio.create_task(client.post("/api/v1/alerts", json=b)) for b in bodies]
        for _ in range(500):  # one is being written (and waits for the lock), 37 queue behind
            if intake.waiting >= 37:
                break
            await asyncio.sleep(0.01)
        assert intake.waiting >= 37
    statuses = [(await p).status for p in posts]
    assert statuses == [200] * 16 + [422] + [200] * 22
    assert await _count(client) == 39
    metrics = await (await client.get("/metrics")).text()
    buckets = dict(
        line.removeprefix("correlator_store_batch_notifications_bucket").rsplit(" ", 1)
        for line in metrics.splitlines()
        if line.startswith("correlator_store_batch_notifications_bucket")
    )
    # They were committed together: one batch held more than 32 notifications.
    assert float(buckets['{le="+Inf"}']) > float(buckets['{le="32.0"}']), buckets


async def test_a_value_the_database_refuses_fails_alone_in_its_batch(store: Any) -> None:
    """Below the validation: a batch with one notification PostgreSQL cannot hold (NUL in a
    text column) stores the others and refuses that one for good (not 'try again')."""
    good = [received(payload([alert("f1")], group_key=f"g{n}")) for n in range(2)]
    bad = received(payload([alert("f1")], group_key="bad"))
    bad = dataclasses.replace(bad, payload=bad.payload.model_copy(update={"receiver": "a\x00"}))
    results = await store.record_batch([good[0], bad, good[1]])
    assert isinstance(results[0], IntakeResult) and isinstance(results[2], IntakeResult)
    if store.dialect == "postgresql":
        assert isinstance(results[1], StoreRefused), results[1]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_compressed_as_it_says_is_400(
    app_client: Any, encoding: str
) -> None:
    client = await app_client(queue={"workers": 0})
    body = json.dumps(payload([alert("f1")])).encode()
    # The server closes a connection whose body it could not decode: no keep-alive here.
    response = await client.post(
        "/api/v1/alerts",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": encoding,
            "Connection": "close",
        },
    )
    assert response.status == 400, await response.text()
    assert encoding in (await response.json())["detail"]
    # Compressed as it says, it is accepted.
    compressor = zlib.compressobj(wbits=31 if encoding == "gzip" else 15)
    packed = compressor.compress(body) + compressor.flush()
    response = await client.post(
        "/api/v1/alerts",
        data=packed,
        headers={"Content-Type": "application/json", "Content-Encoding": encoding},
    )
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/incidents/" + "9" * 5000,
        "/incidents/" + "9" * 5000,
        "/api/v1/incidents/" + "9" * 5000 + "/graphs/0.png",
        "/api/v1/incidents/1/graphs/" + "9" * 5000 + ".png",
        "/api/v1/incidents/²",
        "/api/v1/incidents/\uff11\uff12",
    ],
)
async def test_an_absurd_id_is_400(app_client: Any, path: str) -> None:
    client = await app_client(queue={"workers": 0})
    response = await client.get(path)
    assert response.status == 400, (response.status, await response.text())


@pytest.mark.parametrize("route", ["/api/v1/incidents", "/incidents"])
@pytest.mark.parametrize("limit", ["²", "\uff11\uff12", "\u0663", "9" * 5000, "-1", "0", "501"])
async def test_a_limit_that_is_not_an_ascii_number_in_range_is_400(
    app_client: Any, route: str, limit: str
) -> None:
    client = await app_client(queue={"workers": 0})
    response = await client.get(route, params={"limit": limit})
    assert response.status == 400, await response.text()


def _cursor(document: str) -> str:
    return base64.urlsafe_b64encode(document.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor('{"before": true}'),
        _cursor('{"before": 1.5}'),
        _cursor('{"before": "1"}'),
        _cursor("[" * 2000 + "]" * 2000),
        _cursor('{"before": ' + "[" * 2000 + "]" * 2000 + "}"),
        _cursor("[1]"),
        "not base64!",
        "é",
    ],
)
async def test_a_bad_cursor_is_400(app_client: Any, cursor: str) -> None:
    client = await app_client(queue={"workers": 0})
    response = await client.get("/api/v1/incidents", params={"cursor": cursor})
    assert response.status == 400, await response.text()
    assert "cursor" in (await response.json())["detail"]
