"""A sink's requests over the shared stack: its failures as the outbox's queue needs them
(SinkRetry with the platform's Retry-After as delay_s, SinkRejected, SinkGone on an edit),
against a real local server."""

from __future__ import annotations

import pytest
from aiohttp import web

from correlator.errors import PermanentError, TemporaryError
from correlator.sinks.base import HttpSink, SinkGone, SinkRejected, SinkRetry, request
from tests.support.processes import free_port
from tests.support.servers import served


def platform(status: int, headers: dict[str, str], body: dict[str, str]) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def call(url: str, method: str = "POST", *, gone_on_404: bool = False) -> None:
    sink = HttpSink("team", base_url=url)
    try:
        await request(sink.name, sink._http, method, "/x", gone_on_404=gone_on_404, json={})
    finally:
        await sink.close()


@pytest.mark.parametrize(
    ("status", "headers", "body", "error", "delay_s"),
    [
        (429, {"Retry-After": "30"}, {}, SinkRetry, 30),
        (503, {}, {}, SinkRetry, None),
        (403, {"X-RateLimit-Remaining": "0", "Retry-After": "5"}, {}, SinkRetry, 5),
        (403, {}, {"message": "You have exceeded a secondary rate limit"}, SinkRetry, 60),
        (403, {}, {"message": "Resource not accessible by integration"}, SinkRejected, None),
        (400, {}, {"message": "bad payload"}, SinkRejected, None),
        (404, {}, {}, SinkRejected, None),
    ],
)
async def test_each_failure_is_one_error_of_the_tree(
    status: int,
    headers: dict[str, str],
    body: dict[str, str],
    error: type[Exception],
    delay_s: float | None,
) -> None:
    async with served(platform(status, headers, body)) as url:
        with pytest.raises(error) as raised:
            await call(url)
    assert type(raised.value) is error  # a 404 is gone only on an edit
    if isinstance(raised.value, SinkRetry):
        assert isinstance(raised.value, TemporaryError) and raised.value.delay_s == delay_s
    else:
        assert isinstance(raised.value, PermanentError)
    assert f"team answered {status}" in str(raised.value)


async def test_a_404_on_an_edit_is_gone() -> None:
    async with served(platform(404, {}, {"message": "Not Found"})) as url:
        with pytest.raises(SinkGone):
            await call(url, "PATCH", gone_on_404=True)


async def test_no_answer_is_retried_later() -> None:
    with pytest.raises(SinkRetry, match="team is unreachable"):
        await call(f"http://127.0.0.1:{free_port()}")
