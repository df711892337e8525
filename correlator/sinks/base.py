"""What every sink is: a named destination that shows one message per incident and edits it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from correlator.errors import RemoteRefused, RemoteUnavailable
from correlator.outbound.client import Answer, Limits, OutboundClient
from correlator.outbound.status import Errors

# At once per sink: the deliverer sends one delivery per sink at a time, so this bounds only
# the few requests of one delivery (a listing's pages, an edit then a post).
MAX_IN_FLIGHT = 4
# A platform's answer is a small JSON document; anything larger is a refusal to retry.
MAX_ANSWER_BYTES = 8 * 1024 * 1024

# Called with the sink's handle on its message as soon as the platform returns one, so that a
# failure after that point edits the message instead of posting a second one.
Remember = Callable[[dict[str, Any]], Awaitable[None]]


class SinkRetry(RemoteUnavailable):
    """Try again later; `delay_s` when the platform said how long (Retry-After), which the
    outbox's queue honours."""


class SinkRejected(RemoteRefused):
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
    settings, the same for every kind) and one client of the shared stack, closed with the
    sink. No retries there: the outbox retries a delivery, after the platform's Retry-After."""

    def __init__(
        self,
        name: str,
        *,
        timeout_s: float = 10.0,
        base_url: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.severities: frozenset[str] = frozenset()
        self.teams: frozenset[str] = frozenset()
        limits = Limits(
            name=name,
            timeout_s=timeout_s,
            max_in_flight=MAX_IN_FLIGHT,
            max_body_bytes=MAX_ANSWER_BYTES,
            errors=Errors(SinkRetry, SinkRejected, SinkRejected),
        )
        self._http = OutboundClient(limits, base_url=base_url, headers=headers)

    async def close(self) -> None:
        await self._http.close()


class SinkGone(SinkRejected):
    """The message to edit is gone (deleted, or too old to edit): the sink posts it anew."""


async def request(
    sink: str,
    http: OutboundClient,
    method: str,
    url: str,
    *,
    gone_on_404: bool = False,
    **kwargs: Any,
) -> Answer:
    """One HTTP call of a sink over the shared stack, which translates its failures as for
    every other remote (no answer, 408, 425, 429, 5xx and a rate-limited 403 are SinkRetry with
    the platform's Retry-After, other 4xx SinkRejected); here only that a 404 on an edit
    (`gone_on_404`) means the message is gone."""
    try:
        return await http.request(method, url, **kwargs)
    except SinkRejected as exc:
        if gone_on_404 and exc.status == 404:
            raise SinkGone(f"{sink}: {method} {url}: gone", status=404) from None
        raise


def json_body(sink: str, response: Answer) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SinkRetry(f"{sink}: {response.request.url.path} answered non-JSON") from None
