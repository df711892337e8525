"""The one mapping from an HTTP answer to the error tree (pure: values in, an error out).

- No answer (connection refused, reset, timed out): temporary.
- 408, 425, 429 and every 5xx, plus any status a caller names as "overloaded, ask again"
  (`extra_temporary`): temporary, `delay_s` from Retry-After (seconds or an HTTP-date).
- 403 with a rate limit's marks (`X-RateLimit-Remaining: 0`, or "rate limit" in the body, as
  GitHub answers both its primary and secondary limits): temporary, `delay_s` from Retry-After,
  else from `X-RateLimit-Reset`, else a minute.
- Any other status outside 2xx: permanent, with the other side's own message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from correlator.errors import CorrelatorError, RemoteRefused, RemoteUnavailable

TEMPORARY_STATUSES = frozenset({408, 425, 429})
RATE_LIMIT_DEFAULT_S = 60.0
# The longest wait we take from another system's Retry-After: a broken or hostile one must not
# park work for days (nor overflow a datetime).
MAX_DELAY_S = 3600.0


@dataclass(frozen=True, slots=True)
class Errors:
    """The classes a caller wants raised: its own subclasses of the two remote errors (the
    backends' BackendUnavailable/BackendRefused, the sinks' SinkRetry/SinkRejected…), and what
    an answer larger than the caller's cap is."""

    temporary: type[RemoteUnavailable] = RemoteUnavailable
    permanent: type[RemoteRefused] = RemoteRefused
    too_large: type[CorrelatorError] = RemoteRefused


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After (RFC 9110 §10.2.3) in seconds: delta-seconds or an HTTP-date; None when
    absent or unreadable; never negative, at most MAX_DELAY_S."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_DELAY_S)


def _reset_delay_s(headers: Mapping[str, str], now: datetime | None) -> float | None:
    """X-RateLimit-Reset, in epoch seconds (GitHub, GitLab): the wait until then."""
    try:
        reset = float(headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return None
    if not math.isfinite(reset):
        return None
    left = reset - (now or datetime.now(UTC)).timestamp()
    return min(max(left, 0.0), MAX_DELAY_S)


def rate_limited(status: int, headers: Mapping[str, str], text: str) -> bool:
    """A 403 that is a rate limit rather than a refusal."""
    return status == 403 and (
        headers.get("x-ratelimit-remaining") == "0" or "rate limit" in text.lower()
    )


def is_temporary(status: int, extra_temporary: frozenset[int] = frozenset()) -> bool:
    return status >= 500 or status in TEMPORARY_STATUSES or status in extra_temporary


def error_for_status(
    name: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    errors: Errors = Errors(),
    extra_temporary: frozenset[int] = frozenset(),
    now: datetime | None = None,
) -> CorrelatorError | None:
    """The error an answer means, or None for a 2xx. `headers` must look names up without
    regard to case (httpx's, aiohttp's and niquests' do; lower-case keys in a plain dict)."""
    if 200 <= status < 300:
        return None
    text = message_of(body)
    delay_s = retry_after_s(headers.get("retry-after"), now)
    if is_temporary(status, extra_temporary):
        return errors.temporary(f"{name} answered {status}: {text}", delay_s=delay_s, status=status)
    if rate_limited(status, headers, text):
        if delay_s is None:
            delay_s = _reset_delay_s(headers, now) or RATE_LIMIT_DEFAULT_S
        return errors.temporary(
            f"{name} answered {status} (rate limited): {text}", delay_s=delay_s, status=status
        )
    return errors.permanent(
        f"{name} answered {status}: {text}", status=status, body=snippet(body, 2000)
    )


def unreachable(
    name: str,
    exc: BaseException,
    *,
    timeout_s: float | None,
    errors: Errors = Errors(),
) -> RemoteUnavailable:
    """No answer: a timeout, or a connection that failed."""
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        within = f"within {timeout_s} s" if timeout_s is not None else "in time"
        return errors.temporary(f"{name} did not answer {within}")
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return errors.temporary(f"{name} is unreachable: {detail}")


def snippet(body: bytes | bytearray | str, limit: int = 300) -> str:
    text = body if isinstance(body, str) else bytes(body[:limit]).decode("utf-8", "replace")
    return text[:limit].strip()


def message_of(body: bytes | bytearray | str) -> str:
    """The other side's own message: Prometheus and Slack say {"error": …}, Jaeger
    {"error": {"message": …}}, Grafana and GitHub {"message": …}, Loki plain text."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
        return snippet(body)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return str(error.get("message", error))[:300]
        if error:
            return str(error)[:300]
        if data.get("message"):
            return str(data["message"])[:300]
    return snippet(body)
