"""One httpx client per backend: auth, TLS, limits, and retries of idempotent GETs.

Identical GETs within `cache_s` share one answer: while one runs, the others wait for it
(shielded: a waiter cancelled does not cancel it for the rest); its body is kept for `cache_s`,
within `cache_bytes`, and parsed anew for each caller. A failure is not kept. In a storm many
correlations ask the same (the call graph of a namespace, the traces of one app).

Errors are translated here, once: a connection failure, a timeout or a 5xx (after retries) is
BackendUnavailable, and so is a status the backend uses to say "overloaded, ask again" (Loki's
429) where the backend's config names it; any other 4xx is BackendRefused with the backend's own
message; a body that is too large (BackendTooLarge) or not what the API promises is
BackendGarbage. Nobody else catches httpx errors.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx

from correlator.backoff import retry_delay_s
from correlator.errors import PermanentError, TemporaryError

RETRY_STATUSES = {502, 503, 504}


class BackendUnavailable(TemporaryError):
    """Down, slow or failing: the report says it is missing; a later run may succeed."""


class BackendRefused(PermanentError):
    """The backend refused the query (4xx); its message says why."""

    def __init__(self, message: str, *, status: int = 400, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class BackendGarbage(PermanentError):
    """The answer is too large or not what the backend's API promises."""


class BackendTooLarge(BackendGarbage):
    """The answer outgrew `max_body_bytes`: a smaller question may fit."""


@dataclass(frozen=True)
class BackendConfig:
    """How to reach one backend."""

    name: str
    url: str
    timeout_s: float = 5.0
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    org_id: str | None = None  # X-Scope-OrgID, for multi-tenant Loki, Mimir, Tempo
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    max_connections: int = 20
    # Requests in flight at once from this process, whatever the number of correlations: the
    # backends are the users' production systems, and a storm must not overload them.
    max_in_flight: int = 8
    max_body_bytes: int = 64 * 1024 * 1024
    retries: int = 2
    # 4xx statuses that mean "overloaded, ask again later" (Loki: 429 too many outstanding
    # requests): retried with backoff like a 5xx, then BackendUnavailable.
    overload_statuses: frozenset[int] = frozenset()
    # True: `timeout_s` bounds the whole answer (connect, headers and body), so a server that
    # trickles its answer cannot hold the caller longer; False: it bounds each read.
    timeout_whole_answer: bool = False
    # Identical GETs within this many seconds share one answer; bodies kept within cache_bytes.
    cache_s: float = 0.0
    cache_bytes: int = 32 * 1024 * 1024


class BackendClient:
    """GETs that return parsed JSON, with the translation of every failure."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        headers = dict(config.headers)
        if config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        if config.org_id:
            headers["X-Scope-OrgID"] = config.org_id
        verify: bool | str = False if config.insecure_skip_verify else (config.ca_file or True)
        self._http = httpx.AsyncClient(
            base_url=config.url.rstrip("/"),
            headers=headers,
            auth=httpx.BasicAuth(*config.basic_auth) if config.basic_auth else None,
            timeout=httpx.Timeout(config.timeout_s),
            limits=httpx.Limits(max_connections=config.max_connections),
            verify=verify,
        )
        self._budget = asyncio.Semaphore(config.max_in_flight)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.requests = 0  # sent to the backend (retries included)
        self.shared_answers = 0  # answered from another caller's request
        self._running: dict[Any, asyncio.Future[bytes]] = {}
        self._kept: OrderedDict[Any, tuple[float, bytes]] = OrderedDict()
        self._kept_bytes = 0
        self.clock = time.monotonic

    async def close(self) -> None:
        await self._http.aclose()

    async def get_json(
        self,
        path: str,
        params: dict[str, Any] | list[tuple[str, Any]],
        *,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """GET and parse JSON; retried on connection failures, timeouts and 5xx."""
        return self._parse(await self._body(path, params, headers))

    async def _body(
        self,
        path: str,
        params: dict[str, Any] | list[tuple[str, Any]],
        headers: dict[str, str] | None,
    ) -> bytes:
        if self.config.cache_s <= 0:
            return await self._get(path, params, headers)
        pairs = sorted(params.items()) if isinstance(params, dict) else list(params)
        key = (path, tuple((k, str(v)) for k, v in pairs), tuple(sorted((headers or {}).items())))
        kept = self._kept.get(key)
        if kept is not None and kept[0] > self.clock():
            self.shared_answers += 1
            return kept[1]
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._get(path, params, headers))
            self._running[key] = running
            running.add_done_callback(lambda done: self._keep(key, done))
        else:
            self.shared_answers += 1
        return await asyncio.shield(running)

    def _keep(self, key: Any, done: asyncio.Future[bytes]) -> None:
        del self._running[key]
        if done.cancelled() or done.exception() is not None:
            return
        body = done.result()
        if len(body) > self.config.cache_bytes // 4:
            return
        now = self.clock()
        for old in [k for k, (expires, _) in self._kept.items() if expires <= now]:
            self._kept_bytes -= len(self._kept.pop(old)[1])
        while self._kept and self._kept_bytes + len(body) > self.config.cache_bytes:
            self._kept_bytes -= len(self._kept.popitem(last=False)[1][1])
        previous = self._kept.pop(key, None)
        if previous is not None:
            self._kept_bytes -= len(previous[1])
        self._kept[key] = (now + self.config.cache_s, body)
        self._kept_bytes += len(body)

    async def _get(self, path: str, params: Any, headers: dict[str, str] | None) -> bytes:
        attempt = 0
        while True:
            try:
                async with self._budget:
                    self.in_flight += 1
                    self.requests += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                    try:
                        return await self._get_once(path, params, headers)
                    finally:
                        self.in_flight -= 1
            except BackendUnavailable:
                attempt += 1
                if attempt > self.config.retries:
                    raise
                await asyncio.sleep(retry_delay_s(attempt + 1, 0.1, 5.0))

    def _parse(self, body: bytes) -> Any:
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BackendGarbage(
                f"{self.config.name} answered something that is not JSON: {_snippet(body)}"
            ) from None

    async def _get_once(self, path: str, params: Any, headers: dict[str, str] | None) -> bytes:
        name = self.config.name
        whole_answer_s = self.config.timeout_s if self.config.timeout_whole_answer else None
        try:
            async with asyncio.timeout(whole_answer_s):
                response, body = await self._read(path, params, headers)
        except (httpx.TimeoutException, TimeoutError):
            raise BackendUnavailable(
                f"{name} did not answer within {self.config.timeout_s} s"
            ) from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"{name} is unreachable: {type(exc).__name__}") from None
        status = response.status_code
        if status in RETRY_STATUSES or status >= 500:
            raise BackendUnavailable(f"{name} answered {status}: {_snippet(body)}")
        if status in self.config.overload_statuses:
            raise BackendUnavailable(f"{name} is overloaded ({status}): {_message(body)}")
        if response.status_code >= 400:
            raise BackendRefused(
                f"{name} refused the query ({response.status_code}): {_message(body)}",
                status=response.status_code,
                body=_snippet(body, 2000),
            )
        return bytes(body)

    async def _read(
        self, path: str, params: Any, headers: dict[str, str] | None
    ) -> tuple[httpx.Response, bytearray]:
        async with self._http.stream("GET", path, params=params, headers=headers) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.config.max_body_bytes:
                    raise BackendTooLarge(
                        f"{self.config.name} answered more than {self.config.max_body_bytes} bytes"
                    )
        return response, body


def _snippet(body: bytes | bytearray, limit: int = 200) -> str:
    return body[:limit].decode("utf-8", "replace").strip()


def _message(body: bytes | bytearray) -> str:
    """Prometheus says {"error": …}; Loki answers plain text; Jaeger {"error": {"message"}}."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _snippet(body)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return str(error.get("message", error))
        if error:
            return str(error)
    return _snippet(body)
