"""Identical requests within `cache_s` share one answer: in a storm, many correlations ask
Prometheus, Loki and Jaeger the same question, and the backend should be asked once. The test
server counts what reaches it and can hold answers back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from correlator.backends.http import (
    BackendClient,
    BackendConfig,
    BackendRefused,
    BackendUnavailable,
)
from tests.support.servers import served


class Server:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.release = asyncio.Event()
        self.release.set()
        self.status = 200
        self.size = 10
        self.app = web.Application()
        self.app.router.add_get("/q", self.answer)

    async def answer(self, request: web.Request) -> web.Response:
        self.asked.append(request.query_string)
        await self.release.wait()
        if self.status != 200:
            return web.json_response({"error": "no"}, status=self.status)
        payload = {"q": request.query.get("q"), "n": len(self.asked), "pad": "x" * self.size}
        return web.json_response(payload)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(url: str, **config: Any) -> tuple[BackendClient, Clock]:
    made = BackendClient(BackendConfig(name="Prometheus", url=url, retries=0, **config))
    clock = Clock()
    made.clock = clock
    return made, clock


async def test_concurrent_identical_requests_reach_the_backend_once() -> None:
    server = Server()
    server.release.clear()
    async with served(server.app) as url:
        backend, _ = client(url, cache_s=10)
        try:
            asking = [
                asyncio.ensure_future(backend.get_json("/q", {"q": "up", "time": "1"}))
                for _ in range(10)
            ]
            other = asyncio.ensure_future(backend.get_json("/q", {"q": "down", "time": "1"}))
            await asyncio.sleep(0.2)
            server.release.set()
            answers = await asyncio.gather(*asking)
            assert (await other)["q"] == "down"
        finally:
            await backend.close()
    assert len(server.asked) == 2  # one per distinct question
    assert all(a["q"] == "up" for a in answers)
    answers[0]["q"] = "changed by one caller"
    assert answers[1]["q"] == "up"  # each caller parses its own copy
    assert backend.shared_answers == 9 and backend.requests == 2


async def test_an_answer_is_kept_for_cache_s_then_asked_again() -> None:
    server = Server()
    async with served(server.app) as url:
        backend, clock = client(url, cache_s=10)
        try:
            first = await backend.get_json("/q", [("q", "up")])
            clock.now += 9.9
            again = await backend.get_json("/q", [("q", "up")])
            clock.now += 0.2
            later = await backend.get_json("/q", [("q", "up")])
        finally:
            await backend.close()
    assert first == again and first["n"] == 1
    assert later["n"] == 2 and len(server.asked) == 2


@pytest.mark.parametrize(("status", "error"), [(503, BackendUnavailable), (400, BackendRefused)])
async def test_a_failure_reaches_every_waiter_and_is_not_kept(
    status: int, error: type[Exception]
) -> None:
    server = Server()
    server.status = status
    server.release.clear()
    async with served(server.app) as url:
        backend, _ = client(url, cache_s=10)
        try:
            asking = [asyncio.ensure_future(backend.get_json("/q", {"q": "up"})) for _ in range(3)]
            await asyncio.sleep(0.2)
            server.release.set()
            outcomes = await asyncio.gather(*asking, return_exceptions=True)
            assert all(isinstance(o, error) for o in outcomes), outcomes
            server.status = 200
            answer = await backend.get_json("/q", {"q": "up"})
        finally:
            await backend.close()
    assert answer["q"] == "up" and len(server.asked) == 2


async def test_a_cancelled_caller_does_not_cancel_the_request_of_the_others() -> None:
    server = Server()
    server.release.clear()
    async with served(server.app) as url:
        backend, _ = client(url, cache_s=10)
        try:
            first = asyncio.ensure_future(backend.get_json("/q", {"q": "up"}))
            second = asyncio.ensure_future(backend.get_json("/q", {"q": "up"}))
            await asyncio.sleep(0.2)
            first.cancel()
            await asyncio.sleep(0.05)
            server.release.set()
            answer = await second
        finally:
            await backend.close()
    assert answer["q"] == "up" and len(server.asked) == 1
    assert first.cancelled()


async def test_a_request_every_caller_gave_up_on_is_cancelled_and_frees_its_budget() -> None:
    """Past their correlations' deadline, nobody waits for the request: it must not hold a
    slot of the backend's budget (and a connection) until its own timeout. A caller after
    that asks anew."""
    server = Server()
    server.release.clear()
    async with served(server.app) as url:
        backend, _ = client(url, cache_s=10, timeout_s=30)
        try:
            callers = [asyncio.ensure_future(backend.get_json("/q", {"q": "up"})) for _ in "ab"]
            await asyncio.sleep(0.2)
            budget = backend.http.budget
            assert budget.in_flight == 1 and len(server.asked) == 1
            callers[0].cancel()
            await asyncio.sleep(0.05)
            assert budget.in_flight == 1  # the other still waits for it
            callers[1].cancel()
            for _ in range(50):
                if budget.in_flight == 0:
                    break
                await asyncio.sleep(0.01)
            assert budget.in_flight == 0
            assert all(caller.cancelled() for caller in callers)
            server.release.set()
            answer = await backend.get_json("/q", {"q": "up"})
        finally:
            await backend.close()
    assert answer["q"] == "up" and len(server.asked) == 2  # asked anew, answered


async def test_kept_answers_stay_within_cache_bytes() -> None:
    server = Server()
    server.size = 3000
    async with served(server.app) as url:
        backend, _ = client(url, cache_s=10, cache_bytes=16_000)
        try:
            for q in ("a", "b", "c", "d", "e", "f", "a"):
                await backend.get_json("/q", {"q": q})
            big, _ = client(url, cache_s=10, cache_bytes=8_000)  # 3 kB > a quarter of 8 kB
            try:
                await big.get_json("/q", {"q": "z"})
                await big.get_json("/q", {"q": "z"})
            finally:
                await big.close()
        finally:
            await backend.close()
    # Five of about 3 kB fit in 16 kB: "a" was let go by the time it was asked again.
    assert backend.http.shared.kept_bytes <= 16_000 and len(backend.http.shared.kept) == 5
    assert server.asked.count("q=a") == 2
    assert server.asked.count("q=z") == 2  # too big to keep


async def test_zero_cache_s_asks_every_time() -> None:
    server = Server()
    async with served(server.app) as url:
        backend, _ = client(url, cache_s=0)
        try:
            await asyncio.gather(*(backend.get_json("/q", {"q": "up"}) for _ in range(3)))
        finally:
            await backend.close()
    assert len(server.asked) == 3 and backend.shared_answers == 0
