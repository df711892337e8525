"""The one mapping from an answer to the error tree, property by property (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.errors import PermanentError, RemoteRefused, RemoteUnavailable, TemporaryError
from correlator.outbound.status import MAX_DELAY_S, error_for_status, retry_after_s

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
statuses = st.integers(min_value=100, max_value=599)
waits = st.integers(min_value=0, max_value=10 * 24 * 3600)


def expected_temporary(status: int) -> bool:
    return status >= 500 or status in (408, 425, 429)


@settings(max_examples=300, deadline=None)
@given(status=statuses, wait=st.none() | waits)
def test_every_status_is_success_temporary_or_permanent(status: int, wait: int | None) -> None:
    headers = {} if wait is None else {"retry-after": str(wait)}
    error = error_for_status("Remote", status, headers, b'{"message": "why"}', now=NOW)
    if 200 <= status < 300:
        assert error is None
    elif expected_temporary(status):
        assert isinstance(error, RemoteUnavailable) and isinstance(error, TemporaryError)
        assert error.status == status and f"answered {status}: why" in str(error)
        assert error.delay_s == (None if wait is None else min(wait, MAX_DELAY_S))
    else:
        assert isinstance(error, RemoteRefused) and isinstance(error, PermanentError)
        assert error.status == status and "why" in str(error)


@given(wait=waits)
def test_retry_after_as_an_http_date_is_the_seconds_until_then(wait: int) -> None:
    date = format_datetime(NOW + timedelta(seconds=wait), usegmt=True)
    assert retry_after_s(date, NOW) == min(wait, MAX_DELAY_S)


@given(ago=st.integers(min_value=1, max_value=10**6))
def test_a_retry_after_in_the_past_means_now(ago: int) -> None:
    assert retry_after_s(format_datetime(NOW - timedelta(seconds=ago), usegmt=True), NOW) == 0
    assert retry_after_s(str(-ago), NOW) == 0


@given(junk=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30))
def test_an_unreadable_retry_after_is_no_delay_never_an_error(junk: str) -> None:
    delay = retry_after_s(junk, NOW)
    assert delay is None or 0 <= delay <= MAX_DELAY_S


def test_retry_after_forms() -> None:
    assert retry_after_s(None) is None and retry_after_s("") is None
    assert retry_after_s(" 120 ", NOW) == 120
    assert retry_after_s("1.5", NOW) == 1.5
    assert retry_after_s("Sun, 06 Dec 2026 12:00:30 GMT", NOW) == 30  # RFC 9110's IMF-fixdate
    assert retry_after_s("nan", NOW) is None and retry_after_s("soon", NOW) is None
    assert retry_after_s("1e12", NOW) == MAX_DELAY_S


def test_a_rate_limited_403_is_temporary_and_a_plain_403_permanent() -> None:
    reset = str(int(NOW.timestamp()) + 90)
    limited = error_for_status(
        "GitHub", 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}, b"{}", now=NOW
    )
    assert isinstance(limited, RemoteUnavailable) and limited.delay_s == 90
    secondary = b'{"message": "You have exceeded a secondary rate limit."}'
    told = error_for_status("GitHub", 403, {"retry-after": "7"}, secondary, now=NOW)
    assert isinstance(told, RemoteUnavailable) and told.delay_s == 7
    untold = error_for_status("GitHub", 403, {}, secondary, now=NOW)
    assert isinstance(untold, RemoteUnavailable) and untold.delay_s == 60
    refused = error_for_status("GitHub", 403, {}, b'{"message": "Resource not accessible"}')
    assert isinstance(refused, RemoteRefused) and "Resource not accessible" in str(refused)


def test_a_status_the_remote_names_as_overloaded_is_temporary() -> None:
    assert isinstance(
        error_for_status("Loki", 499, {}, b"busy", extra_temporary=frozenset({499})),
        RemoteUnavailable,
    )
    assert isinstance(error_for_status("Loki", 499, {}, b"busy"), RemoteRefused)


@given(message=st.text(min_size=1, max_size=50).filter(str.strip))
def test_the_remote_s_own_message_is_kept(message: str) -> None:
    import json

    for body in ({"error": message}, {"error": {"message": message}}, {"message": message}):
        error = error_for_status("Remote", 400, {}, json.dumps(body).encode())
        assert message.strip()[:50] in str(error)
