"""The one error tree: temporary failures are retried, permanent ones are reported."""

from __future__ import annotations


class CorrelatorError(Exception):
    """Base of every error correlator raises on purpose."""


class TemporaryError(CorrelatorError):
    """Retrying later may succeed (a database that is busy, a backend that timed out)."""

    def __init__(self, message: str, *, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PermanentError(CorrelatorError):
    """Retrying will never succeed (bad input, a configuration that cannot work)."""


class StoreUnavailable(TemporaryError):
    """The store could not durably record something; the caller must not acknowledge it."""


class StoreRefused(PermanentError):
    """The database refuses this data for good (a value it cannot hold): retrying the same
    data can never succeed, so the caller answers 4xx rather than 503."""


class ConfigError(PermanentError):
    """The configuration cannot work; the message names the setting and what to do."""


class RemoteUnavailable(TemporaryError):
    """Another system did not answer, or answered "not now" (408, 425, 429, 5xx); `delay_s` is
    how long it asked us to wait (Retry-After), `status` its answer (None: no answer at all)."""

    def __init__(
        self, message: str, *, delay_s: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, delay_s=delay_s)
        self.status = status


class RemoteRefused(PermanentError):
    """Another system refused for good (any other 4xx): the same request will fail again.
    `status` is its answer (None when the refusal is ours, made from what it answered) and
    `body` the start of what it said."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body
