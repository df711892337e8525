"""What every sink is: a named destination that shows one message per incident and edits it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

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


def status_error(sink: str, status: int, body: str, retry_after: str | None) -> Exception:
    """The error for a non-2xx answer: 429 and 5xx are temporary, other 4xx permanent."""
    text = body.strip()[:300]
    if status == 429:
        try:
            seconds = float(retry_after) if retry_after is not None else None
        except ValueError:
            seconds = None
        return SinkRetry(f"{sink}: rate limited (429) {text}", retry_after_s=seconds)
    if status >= 500 or status in (408, 425):
        return SinkRetry(f"{sink}: {status} {text}")
    return SinkRejected(f"{sink}: {status} {text}")
