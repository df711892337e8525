"""What every sink is: a named destination that shows one message per incident and edits it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from correlator.errors import PermanentError, TemporaryError

# Called with the sink's handle on its message as soon as the platform returns one, so that a
# failure after that point edits the message instead of posting a second one.
Remember = Callable[[dict[str, Any]], Awaitable[None]]


class SinkRetry(TemporaryError):
    """Try again later; `retry_after_s` when the platform said how long (429 Retry-After)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SinkRejected(PermanentError):
    """The platform refused for good (bad credentials, channel gone…): recorded, not retried."""


class Sink(Protocol):
    name: str
    severities: frozenset[str]
    teams: frozenset[str]

    async def send(
        self, message: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        """Show `message` (create, or edit the one `remote` points at); returns the new remote."""
        ...

    async def close(self) -> None: ...


class HttpSink:
    """What the sinks share: a name, the filters (`build_sinks` sets them from the sink's
    settings, the same for every kind) and one HTTP client, closed with the sink."""

    def __init__(self, name: str, *, timeout_s: float = 10.0, **client: Any) -> None:
        self.name = name
        self.severities: frozenset[str] = frozenset()
        self.teams: frozenset[str] = frozenset()
        self._http = httpx.AsyncClient(timeout=timeout_s, **client)

    async def close(self) -> None:
        await self._http.aclose()


class SinkGone(SinkRejected):
    """The message to edit is gone (deleted, or too old to edit): the sink posts it anew."""


async def request(
    sink: str,
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    gone_on_404: bool = False,
    **kwargs: Any,
) -> httpx.Response:
    """One HTTP call of a sink, its failures translated once for all sinks: transport errors,
    429, 5xx and a rate-limited 403 are temporary, other 4xx permanent, and a 404 on an edit
    (`gone_on_404`) means the message is gone."""
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise SinkRetry(f"{sink}: {type(exc).__name__}: {exc}") from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    text = response.text.strip()[:300]
    retry_after = _seconds(response.headers.get("Retry-After"))
    if status == 429:
        raise SinkRetry(f"{sink}: rate limited (429) {text}", retry_after_s=retry_after)
    # GitHub's primary and secondary rate limits answer 403.
    if status == 403 and (
        response.headers.get("x-ratelimit-remaining") == "0" or "rate limit" in text.lower()
    ):
        raise SinkRetry(f"{sink}: rate limited (403)", retry_after_s=retry_after or 60.0)
    if status == 404 and gone_on_404:
        raise SinkGone(f"{sink}: {method} {url}: gone")
    if status >= 500 or status in (408, 425):
        raise SinkRetry(f"{sink}: {status} {text}")
    raise SinkRejected(f"{sink}: {status} {text}")


def json_body(sink: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SinkRetry(f"{sink}: {response.request.url.path} answered non-JSON") from None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
