"""The shared client against a real local server: each status, Retry-After, transport
failures, retries and the budget, as every backend and sink sees them."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.errors import RemoteRefused, RemoteUnavailable
from correlator.outbound.client import Limits, OutboundClient, retry_wait_s
from tests.support.processes import free_port
from tests.support.servers import served


class Server:
    """Answers `status` with `headers` and counts what reaches it."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body = '{"ok": true}'
        self.asked = 0
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.answer)

    async def answer(self, request: web.Request) -> web.Response:
        self.asked += 1
        return web.Response(
            status=self.status,
            headers=self.headers,
            text=self.body,
            content_type="application/json",
        )


def client(url: str, **limits: object) -> OutboundClient:
    return OutboundClient(Limits(name="Remote", **limits), base_url=url)  # type: ignore[arg-type]


STATUSES = [400, 401, 403, 404, 408, 409, 410, 413, 422, 425, 429, 500, 501, 502, 503, 504]


async def test_each_status_is_mapped_once_for_every_caller() -> None:
    server = Server()
    server.body = '{"message": "because"}'
    async with served(server.app) as url:
        remote = client(url)
        try:
            for status in STATUSES:
                server.status = status
                with pytest.raises((RemoteUnavailable, RemoteRefused)) as raised:
                    await remote.request("POST", "/x", json={})
                error = raised.value
                assert isinstance(error, RemoteUnavailable | RemoteRefused)
                temporary = status >= 500 or status in (408, 425, 429)
                assert isinstance(error, RemoteUnavailable) is temporary, status
                assert error.status == status
                assert f"Remote answered {status}: because" in str(error)
            server.status = 201
            assert (await remote.request("POST", "/x", json={})).json() == {"message": "because"}
        finally:
            await remote.close()


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_becomes_delay_s(form: str) -> None:
    server = Server()
    server.status = 429
    when = datetime.now(UTC) + timedelta(seconds=120)
    server.headers = {
        "Retry-After": "120" if form == "seconds" else format_datetime(when, usegmt=True)
    }
    async with served(server.app) as url:
        remote = client(url, retries=3)
        try:
            with pytest.raises(RemoteUnavailable) as raised:
                await remote.request("GET", "/q")
        finally:
            await remote.close()
    assert raised.value.delay_s is not None and 110 <= raised.value.delay_s <= 120
    assert server.asked == 1  # longer than this caller waits: raised for the queue, not retried


async def test_a_short_retry_after_is_waited_for_between_retries() -> None:
    server = Server()
    server.status = 503
    server.headers = {"Retry-After": "1"}
    async with served(server.app) as url:
        remote = client(url, retries=1)
        started = time.monotonic()
        try:
            with pytest.raises(RemoteUnavailable):
                await remote.request("GET", "/q")
        finally:
            await remote.close()
    assert server.asked == 2 and time.monotonic() - started >= 1


async def test_only_idempotent_requests_are_retried() -> None:
    server = Server()
    server.status = 502
    async with served(server.app) as url:
        remote = client(url, retries=2)
        try:
            with pytest.raises(RemoteUnavailable):
                await remote.request("POST", "/x", json={})
            assert server.asked == 1
            with pytest.raises(RemoteUnavailable):
                await remote.request("GET", "/x")
            assert server.asked == 4
        finally:
            await remote.close()


async def test_no_answer_is_temporary() -> None:
    remote = client(f"http://127.0.0.1:{free_port()}", retries=0)
    try:
        with pytest.raises(RemoteUnavailable, match=r"Remote is unreachable: .*Connect"):
            await remote.request("GET", "/q")
    finally:
        await remote.close()


async def test_a_slow_answer_is_temporary() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    async with served(app) as url:
        remote = client(url, timeout_s=0.2)
        try:
            with pytest.raises(RemoteUnavailable, match=r"did not answer within 0\.2 s"):
                await remote.request("GET", "/slow")
        finally:
            await remote.close()


async def test_a_gzipped_answer_is_read_once_and_kept_readable() -> None:
    async def zipped(request: web.Request) -> web.Response:
        response = web.json_response({"pad": "x" * 5000})
        response.enable_compression(web.ContentCoding.gzip)
        return response

    app = web.Application()
    app.router.add_get("/z", zipped)
    async with served(app) as url:
        remote = client(url, cache_s=10)
        try:
            first = await remote.request("GET", "/z", headers={"Accept-Encoding": "gzip"})
            again = await remote.request("GET", "/z", headers={"Accept-Encoding": "gzip"})
        finally:
            await remote.close()
    assert first.json()["pad"] == "x" * 5000 and again is first


async def test_an_answer_that_cannot_be_decoded_is_a_temporary_error_of_ours() -> None:
    async def garbled(request: web.Request) -> web.Response:
        return web.Response(body=b"not gzip at all", headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/g", garbled)
    async with served(app) as url:
        remote = client(url)
        try:
            with pytest.raises(RemoteUnavailable, match="DecodingError"):
                await remote.request("GET", "/g")
        finally:
            await remote.close()


async def test_too_large_an_answer_is_refused() -> None:
    server = Server()
    server.body = '{"pad": "' + "x" * 5000 + '"}'
    async with served(server.app) as url:
        remote = client(url, max_body_bytes=1000)
        try:
            with pytest.raises(RemoteRefused, match="more than 1000 bytes"):
                await remote.request("GET", "/q")
        finally:
            await remote.close()


async def test_one_client_span_per_request_sent_without_the_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from correlator.outbound import client as module

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(module, "tracer", provider.get_tracer("test"))
    server = Server()
    async with served(server.app) as url:
        remote = client(url, retries=1)
        try:
            await remote.request("GET", "/hooks/SECRET-PATH")
            server.status = 503
            with pytest.raises(RemoteUnavailable):
                await remote.request("GET", "/hooks/SECRET-PATH")
        finally:
            await remote.close()
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["GET", "GET", "GET"]
    assert all(span.kind is SpanKind.CLIENT for span in spans)
    attributes = [dict(span.attributes or {}) for span in spans]
    assert [a.get("http.response.status_code") for a in attributes] == [200, 503, 503]
    assert [a.get("http.request.resend_count") for a in attributes] == [None, None, 1]
    assert attributes[1]["error.type"] == "503" and attributes[0]["server.address"] == "127.0.0.1"
    assert "SECRET" not in repr(attributes)
    # The status says the error's type, never its text (which may quote the other side).
    assert [span.status.description for span in spans[1:]] == ["RemoteUnavailable"] * 2


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(1, 10),
    delay_s=st.none() | st.floats(0, 120, allow_nan=False),
    max_wait_s=st.floats(0.1, 60, allow_nan=False),
)
def test_a_retry_never_comes_sooner_than_the_retry_after(
    attempt: int, delay_s: float | None, max_wait_s: float
) -> None:
    """The wait before a retry honours the other side's Retry-After, and one longer than this
    caller waits is left to the queue (None: raised, carrying `delay_s`)."""
    wait_s = retry_wait_s(attempt, delay_s, max_wait_s)
    if delay_s is not None and delay_s > max_wait_s:
        assert wait_s is None
    else:
        assert wait_s is not None and 0 <= wait_s <= max(max_wait_s, delay_s or 0)
        assert delay_s is None or wait_s >= delay_s


async def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/q", answer)
    async with served(app) as url:
        remote = client(url.replace("http://", "http://us%40er:p%3Ass@"))
        try:
            await remote.request("GET", "/q", params={"a": "1"})
        finally:
            await remote.close()
    assert seen == ["Basic " + base64.b64encode(b"us@er:p:ss").decode()]
