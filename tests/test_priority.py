"""Acknowledging a notification comes first: background work's store calls wait their turn,
on SQLite and PostgreSQL, while the intake and the API do not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text

from correlator.priority import ServingFirst, mark_background
from correlator.store import Store
from correlator.web.state import INTAKE, STORE
from tests.support.payloads import alert, payload


def _select_one(connection: Any) -> int:
    return int(connection.execute(text("SELECT 1")).scalar_one())


async def _background(call: Callable[[], Any]) -> Any:
    mark_background()  # this task only: a context of its own
    return await call()


async def _turns(count: int = 20) -> None:
    """Let the loop run: every ready task and every finished thread's result gets its turn."""
    for _ in range(count):
        await asyncio.sleep(0.005)


async def test_a_background_store_call_waits_while_a_notification_is_received(
    store: Store,
) -> None:
    serving = store.serving_first = ServingFirst(max_wait_s=60)
    with serving.receiving():
        waiting = asyncio.create_task(_background(lambda: store.read(_select_one)))
        foreground = await store.read(_select_one)  # the API's reads do not wait
        await _turns()
        assert foreground == 1
        assert not waiting.done()
        assert serving.waits == 1
    assert await asyncio.wait_for(waiting, 10) == 1


async def test_background_work_is_never_starved(store: Store) -> None:
    """A flood that never pauses slows background work down; it does not stop it."""
    store.serving_first = ServingFirst(max_wait_s=0.05)
    with store.serving_first.receiving():
        assert await asyncio.wait_for(_background(lambda: store.read(_select_one)), 10) == 1


class Calls:
    """Background calls that hold their turn until released, counting how many run at once."""

    def __init__(self, serving: ServingFirst) -> None:
        self.serving = serving
        self.inside = self.most = 0
        self.release = asyncio.Event()

    async def call(self) -> None:
        async with self.serving.turn():
            self.inside += 1
            self.most = max(self.most, self.inside)
            await self.release.wait()
            self.inside -= 1

    async def run(self, count: int) -> int:
        """Start `count` calls, let the loop run, release them; the most that ran at once."""
        calls = [asyncio.create_task(_background(self.call)) for _ in range(count)]
        await _turns()
        self.release.set()
        await asyncio.gather(*calls)
        return self.most


async def test_after_notifications_background_calls_go_one_at_a_time() -> None:
    """Just after notifications came in, one background store call at a time, so a second
    one is not running when the next notification arrives; later, any number at once."""
    serving = ServingFirst(max_wait_s=60, recent_s=60)
    with serving.receiving():
        pass
    assert await Calls(serving).run(3) == 1
    assert await Calls(ServingFirst(recent_s=0)).run(3) == 3


@pytest.fixture
async def client(app_client: Callable[..., Any]) -> AsyncIterator[Any]:
    yield await app_client()


async def test_a_notification_counts_as_received_from_its_first_byte_to_its_answer(
    client: Any,
) -> None:
    serving: ServingFirst = client.app[INTAKE].serving_first
    body = json.dumps(payload([alert("f1")])).encode()
    half = asyncio.Event()
    rest = asyncio.Event()

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:10]
        half.set()
        await rest.wait()
        yield body[10:]

    posting = asyncio.create_task(
        client.post("/api/v1/alerts", data=slowly(), headers={"Content-Type": "application/json"})
    )
    await asyncio.wait_for(half.wait(), 10)
    for _ in range(200):  # the handler starts once the headers are in
        if serving.serving:
            break
        await asyncio.sleep(0.01)
    assert serving.serving == 1
    rest.set()
    response = await asyncio.wait_for(posting, 10)
    assert response.status == 200
    assert serving.serving == 0
    assert client.app[STORE].serving_first is serving  # the store's background calls wait on it
