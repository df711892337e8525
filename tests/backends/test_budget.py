"""One budget of requests in flight per backend, however many correlations run: a storm must
not overload the users' Prometheus, Loki or Jaeger. The test server counts what it is asked
at once."""

from __future__ import annotations

import asyncio

from aiohttp import web

from correlator.backends.http import BackendClient, BackendConfig
from tests.support.servers import served


class Counting:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.app = web.Application()
        self.app.router.add_get("/q", self.answer)

    async def answer(self, request: web.Request) -> web.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.1)
            return web.json_response({"status": "success"})
        finally:
            self.now -= 1


async def test_requests_in_flight_never_exceed_the_budget() -> None:
    server = Counting()
    async with served(server.app) as url:
        client = BackendClient(BackendConfig(name="Prometheus", url=url, max_in_flight=3))
        try:
            answers = await asyncio.gather(*(client.get_json("/q", {}) for _ in range(12)))
        finally:
            await client.close()
    assert answers == [{"status": "success"}] * 12  # all answered: the budget delays, not drops
    assert server.peak == 3 and client.peak_in_flight == 3
