"""The one HTTP client stack: every request a backend or a sink makes goes through
`OutboundClient.request`.

- **Budget.** At most `max_in_flight` requests of one client are in flight at once, whatever
  the number of callers: the other side is someone's production system.
- **Errors.** Translated here, once, by `status.error_for_status` and `status.unreachable`, into
  the caller's own classes (`status.Errors`). Nobody else catches httpx errors.
- **Retries.** Idempotent requests (GET, HEAD) are retried `retries` times on a temporary error,
  with the one backoff (`backoff.retry_delay_s`), never sooner than the other side's
  Retry-After; one that asks for longer than `retry_max_wait_s` is not waited for here but
  raised, carrying the wait as `delay_s` for the queue.
- **Sharing.** With `cache_s` > 0, identical GETs share one answer: while one runs, the others
  wait for it (shielded: a waiter cancelled does not cancel it for the rest, but once every
  waiter is, it is cancelled too); the answer is kept for `cache_s` within `cache_bytes`. A
  failure is not kept.
- **Tracing.** One client span per request sent (a retry is a new span with its resend count):
  method, host, status, error type. Never the path or query: a chat webhook's URL is its
  credential.
- **Transport.** httpx's API over aiohttp's connections (`httpx-aiohttp`): a request costs about
  a quarter of the CPU it costs through httpcore and anyio, which in a storm was a third of
  the serving process. aiohttp's errors are translated with the rest.
- **Body cap.** An answer larger than `max_body_bytes` is `Errors.too_large`; `timeout_whole_answer`
  makes `timeout_s` bound the whole answer, so a server that trickles cannot hold the caller.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from correlator.backoff import retry_delay_s
from correlator.outbound.status import Errors, error_for_status, unreachable

tracer = trace.get_tracer(__name__)
IDEMPOTENT = frozenset({"GET", "HEAD"})
Result = TypeVar("Result")
# What a request answers: the status, the headers and the whole body, read.
Answer = httpx.Response


@dataclass(frozen=True, slots=True)
class Limits:
    """How one client treats its remote (one backend, one sink)."""

    name: str
    timeout_s: float = 10.0
    timeout_whole_answer: bool = False
    max_in_flight: int = 8
    max_connections: int = 20
    max_body_bytes: int = 64 * 1024 * 1024
    retries: int = 0
    retry_max_wait_s: float = 5.0
    # Statuses outside 408/425/429/5xx that this remote uses for "overloaded, ask again".
    extra_temporary: frozenset[int] = frozenset()
    cache_s: float = 0.0
    cache_bytes: int = 32 * 1024 * 1024
    errors: Errors = field(default_factory=Errors)


class Budget:
    """Calls in flight at once, counted for the tests and the metrics."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.calls = 0

    async def run(self, call: Callable[[], Awaitable[Result]]) -> Result:
        async with self._slots:
            self.in_flight += 1
            self.calls += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                return await call()
            finally:
                self.in_flight -= 1


async def traced(
    name: str, method: str, host: str, call: Callable[[], Awaitable[Result]], *, resend: int = 0
) -> Result:
    """One client span around one request made by any client (grafana-client's too)."""
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "server.address": host,
        "peer.service": name,
    }
    if resend:
        attributes["http.request.resend_count"] = resend
    with tracer.start_as_current_span(
        method,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,  # its text may quote the other side's answer
        set_status_on_exception=False,
    ) as span:
        try:
            result = await call()
        except Exception as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int):
                span.set_attribute("http.response.status_code", status)
            span.set_attribute("error.type", str(status) if status else type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        status = getattr(result, "status_code", None)
        if isinstance(status, int):
            span.set_attribute("http.response.status_code", status)
        return result


def retry_wait_s(attempt: int, delay_s: float | None, max_wait_s: float) -> float | None:
    """How long to wait before retry `attempt` (1 for the first): the one backoff, never
    sooner than the other side's Retry-After (`delay_s`); None when that asks for longer than
    `max_wait_s`, which the caller does not wait for."""
    if delay_s is not None and delay_s > max_wait_s:
        return None
    wait_s = retry_delay_s(attempt + 1, 0.1, max_wait_s)
    return wait_s if delay_s is None else max(wait_s, delay_s)


class Shared:
    """Identical GETs within `cache_s` share one answer (see the module's text)."""

    def __init__(self, cache_s: float, cache_bytes: int) -> None:
        self.cache_s, self.cache_bytes = cache_s, cache_bytes
        self.running: dict[Any, asyncio.Future[httpx.Response]] = {}
        self.waiting: dict[asyncio.Future[httpx.Response], int] = {}  # callers of each request
        self.kept: OrderedDict[Any, tuple[float, httpx.Response]] = OrderedDict()
        self.kept_bytes = 0
        self.answers = 0  # answered from another caller's request
        self.clock = time.monotonic

    async def get(self, key: Any, fetch: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        kept = self.kept.get(key)
        if kept is not None and kept[0] > self.clock():
            self.answers += 1
            return kept[1]
        running = self.running.get(key)
        if running is None:
            running = asyncio.ensure_future(fetch())
            self.running[key] = running
            running.add_done_callback(lambda done: self._keep(key, done))
        else:
            self.answers += 1
        self.waiting[running] = self.waiting.get(running, 0) + 1
        try:
            return await asyncio.shield(running)
        finally:
            self._left(key, running)

    def _left(self, key: Any, running: asyncio.Future[httpx.Response]) -> None:
        """One caller is done with `running`. Once every caller was cancelled before it
        answered (their correlations' deadlines passed, the service is stopping), nobody wants
        it: it is cancelled, rather than holding a slot of the budget and a connection until
        its own timeout."""
        left = self.waiting[running] - 1
        if left:
            self.waiting[running] = left
            return
        del self.waiting[running]
        if not running.done():
            if self.running.get(key) is running:  # a new caller starts a new request
                del self.running[key]
            running.cancel()

    def _keep(self, key: Any, done: asyncio.Future[httpx.Response]) -> None:
        if self.running.get(key) is done:
            del self.running[key]
        if done.cancelled() or done.exception() is not None:
            return
        answer = done.result()
        size = len(answer.content)
        if size > self.cache_bytes // 4:
            return
        now = self.clock()
        # Kept in the order they expire (one cache_s for all, a key kept again moves to the
        # end): the expired ones are at the front, and a storm's thousands of kept answers
        # are not scanned on every request.
        while self.kept and next(iter(self.kept.values()))[0] <= now:
            self.kept_bytes -= len(self.kept.popitem(last=False)[1][1].content)
        while self.kept and self.kept_bytes + size > self.cache_bytes:
            self.kept_bytes -= len(self.kept.popitem(last=False)[1][1].content)
        previous = self.kept.pop(key, None)
        if previous is not None:
            self.kept_bytes -= len(previous[1].content)
        self.kept[key] = (now + self.cache_s, answer)
        self.kept_bytes += size


class OutboundClient:
    """Requests to one remote, answered with the whole body read, or one of `limits.errors`."""

    def __init__(
        self,
        limits: Limits,
        *,
        base_url: str = "",
        headers: dict[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        verify: bool | str = True,
    ) -> None:
        self.limits = limits
        pool = httpx.Limits(max_connections=limits.max_connections)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            auth=httpx.BasicAuth(*basic_auth) if basic_auth else None,
            timeout=httpx.Timeout(limits.timeout_s),
            transport=_Transport(verify=_tls(verify), limits=pool),
        )
        self.budget = Budget(limits.max_in_flight)
        self.shared = Shared(limits.cache_s, limits.cache_bytes)

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request (retried if idempotent) and read its answer; a 2xx is returned,
        anything else raised as `limits.errors` says."""
        method = method.upper()
        built = self._http.build_request(method, url, params=params, headers=headers, **kwargs)
        if method != "GET" or self.limits.cache_s <= 0 or kwargs:
            return await self._with_retries(built)
        key = (str(built.url), tuple(sorted((headers or {}).items())))
        return await self.shared.get(key, lambda: self._with_retries(built))

    async def _with_retries(self, request: httpx.Request) -> httpx.Response:
        limits = self.limits
        retries = limits.retries if request.method in IDEMPOTENT else 0
        attempt = 0
        while True:
            try:
                return await self._attempt(request, attempt)
            except limits.errors.temporary as exc:
                attempt += 1
                wait_s = retry_wait_s(attempt, exc.delay_s, limits.retry_max_wait_s)
                if wait_s is None or attempt > retries:
                    raise  # a longer wait is the queue's, not this caller's
                await asyncio.sleep(wait_s)

    async def _attempt(self, request: httpx.Request, resend: int) -> httpx.Response:
        async def once() -> httpx.Response:
            return await self._once(request)

        async def sent() -> httpx.Response:
            return await traced(
                self.limits.name, request.method, request.url.host, once, resend=resend
            )

        return await self.budget.run(sent)

    async def _once(self, request: httpx.Request) -> httpx.Response:
        limits = self.limits
        whole_answer_s = limits.timeout_s if limits.timeout_whole_answer else None
        try:
            async with asyncio.timeout(whole_answer_s):
                answer = await self._read(request)
        except (httpx.RequestError, aiohttp.ClientError, TimeoutError) as exc:
            # Transport, decoding, redirects. The transport names aiohttp's errors in httpx's
            # terms, a refused connection as a timeout among them: say what aiohttp saw.
            cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
            raise unreachable(
                limits.name, cause, timeout_s=limits.timeout_s, errors=limits.errors
            ) from None
        error = error_for_status(
            limits.name,
            answer.status_code,
            answer.headers,
            answer.content,
            errors=limits.errors,
            extra_temporary=limits.extra_temporary,
        )
        if error is not None:
            raise error
        return answer

    async def _read(self, request: httpx.Request) -> httpx.Response:
        response = await self._http.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.limits.max_body_bytes:
                    raise self.limits.errors.too_large(
                        f"{self.limits.name} answered more than {self.limits.max_body_bytes} bytes"
                    )
        finally:
            await response.aclose()
        # The body is decoded already: the answer kept must not claim an encoding.
        headers = [
            (key, value)
            for key, value in response.headers.multi_items()
            if key.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=bytes(body),
            request=request,
            extensions={"http_version": response.http_version.encode()},
        )


class _Transport(AiohttpTransport):
    """aiohttp refuses a URL that carries credentials beside an Authorization header: httpx
    has made that header of them (or of the client's own auth, which wins) by now."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if not url.userinfo:
            return await super().handle_async_request(request)
        request.url = url.copy_with(userinfo=b"")
        try:
            return await super().handle_async_request(request)
        finally:  # a retry of the request still carries them, for httpx's auth to read
            request.url = url


def _tls(verify: bool | str) -> bool | ssl.SSLContext:
    """`verify` as the transport takes it: a CA bundle's path becomes a context trusting it."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify
