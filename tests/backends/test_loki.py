"""The Loki backend against the Loki test server: paging, limits, escaping, errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from correlator.backends.http import BackendConfig, BackendRefused, BackendUnavailable
from correlator.backends.logql import contains, stream_selector
from correlator.backends.loki import LokiBackend, PartialLogs
from tests.fakes.loki import FakeLoki
from tests.support.servers import served

NOW = int(time.time())  # whole seconds: window edges compare exactly
NS = 1_000_000_000


def lines(count: int, every_s: float = 1.0, text: str = "GET /orders 200") -> list[Any]:
    return [(NOW - 600 + i * every_s, f"{text} #{i}") for i in range(count)]


@pytest.fixture
async def loki() -> AsyncIterator[tuple[FakeLoki, LokiBackend]]:
    fake = FakeLoki(max_entries=100)
    async with served(fake.app) as url:
        backend = LokiBackend(BackendConfig(name="Loki", url=url), page_size=1000)
        try:
            yield fake, backend
        finally:
            await backend.close()


def window() -> tuple[datetime, datetime]:
    return datetime.fromtimestamp(NOW - 3600, UTC), datetime.fromtimestamp(NOW, UTC)


async def test_logs_page_backward_under_the_server_cap(loki: Any) -> None:
    fake, backend = loki
    fake.add({"app": "api", "namespace": "shop"}, lines(250))
    start, end = window()
    found = await backend.logs(stream_selector({"app": "api"}), start, end, max_lines=1000)
    assert len(found) == 250
    assert found[0].line == "GET /orders 200 #249"  # newest first
    assert len({line.line for line in found}) == 250  # no duplicates at page edges
    assert backend.page_size == 100  # learnt from Loki's own 400
    assert max(int(q["limit"]) for q in fake.queries[1:]) == 100


async def test_max_lines_bounds_the_reading(loki: Any) -> None:
    fake, backend = loki
    fake.add({"app": "api"}, lines(250))
    start, end = window()
    assert len(await backend.logs(stream_selector({"app": "api"}), start, end, max_lines=30)) == 30


async def test_hostile_values_stay_literal_in_selectors_and_filters(loki: Any) -> None:
    fake, backend = loki
    hostile = 'x"} |= "'
    fake.add({"app": hostile}, [(NOW - 10, 'payment failed: "} |= "boom')])
    fake.add({"app": "other"}, [(NOW - 10, "payment failed")])
    start, end = window()
    needle = 'failed: "} |= "'
    query = stream_selector({"app": hostile}) + " " + contains(needle)
    found = await backend.logs(query, start, end)
    assert [(line.labels["app"], line.line) for line in found] == [
        (hostile, 'payment failed: "} |= "boom')
    ]


async def test_structured_metadata_and_trace_ids(loki: Any) -> None:
    fake, backend = loki
    fake.add(
        {"app": "api", "level": "error"},
        [(NOW - 5, "GET /orders 500 db down", {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})],
    )
    start, end = window()
    (line,) = await backend.logs(stream_selector({"app": "api"}), start, end)
    assert line.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line.structured_metadata["detected_level"] == "error"
    (plain,) = await backend.logs(stream_selector({"app": "api"}), start, end, categorize=False)
    assert plain.labels["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_metric_queries_become_frames(loki: Any) -> None:
    fake, backend = loki
    fake.add({"app": "api", "level": "error"}, lines(120, every_s=2, text="boom"))
    fake.add({"app": "api", "level": "info"}, lines(60, every_s=4, text="ok"))
    start = datetime.fromtimestamp(NOW - 600, UTC)
    end = start + timedelta(minutes=4)
    frame = await backend.metric(
        'sum by (level) (count_over_time({app="api"}[1m]))', start, end, 60
    )
    assert sorted(frame.columns) == [(("level", "error"),), (("level", "info"),)]
    # The step at start+2m counts lines in (start+1m, start+2m]: one every 2 s, all present.
    assert frame[(("level", "error"),)].iloc[2] == 30


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ('{app="api"', "parse error at line 1"),
        ('{app=~".*"}', "empty-compatible value"),
        ("{app=}", "parse error"),
    ],
)
async def test_loki_errors_are_refusals_with_lokis_words(loki: Any, query: str, error: str) -> None:
    _, backend = loki
    start, end = window()
    with pytest.raises(BackendRefused, match=error):
        await backend.logs(query, start, end)


async def test_an_empty_window_has_no_lines_and_a_reversed_one_is_refused(loki: Any) -> None:
    fake, backend = loki
    fake.add({"app": "api"}, [(NOW, "exactly at the moment")])
    moment = datetime.fromtimestamp(NOW, UTC)
    assert await backend.logs('{app="api"}', moment, moment) == []  # [t, t) holds nothing
    with pytest.raises(BackendRefused, match="end timestamp must not be before or equal"):
        await backend.logs('{app="api"}', moment, moment - timedelta(seconds=1))


# --- every line exactly once, to the nanosecond ------------------------------------------------

# A real Loki timestamp: at 1.8e18 a float holds nanoseconds only to 256 ns, and a datetime
# only microseconds, so anything that goes through either loses or moves lines.
TIE_NS = 1_795_665_901_254_762_019


def exact_window(start_ns: int, end_ns: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(start_ns, unit="ns", tz="UTC"), pd.Timestamp(end_ns, unit="ns", tz="UTC")


@pytest.mark.parametrize("page_size", [4, 5, 7])
async def test_lines_sharing_a_nanosecond_across_page_boundaries_all_arrive(
    page_size: int,
) -> None:
    fake = FakeLoki(max_entries=100)
    fake.add_ns({"app": "api"}, [(TIE_NS, f"tied #{i}") for i in range(10)])
    fake.add_ns({"app": "api"}, [(TIE_NS - 1_000 * (i + 1), f"older #{i}") for i in range(10)])
    async with served(fake.app) as url:
        backend = LokiBackend(BackendConfig(name="Loki", url=url), page_size=page_size)
        try:
            found = await backend.logs('{app="api"}', *exact_window(TIE_NS - 60 * NS, TIE_NS + 1))
        finally:
            await backend.close()
    assert sorted(line.line for line in found) == sorted(
        [f"tied #{i}" for i in range(10)] + [f"older #{i}" for i in range(10)]
    )
    assert [line.timestamp_ns for line in found] == sorted(
        (line.timestamp_ns for line in found), reverse=True
    )  # newest first


async def test_identical_lines_a_nanosecond_apart_stay_distinct(loki: Any) -> None:
    fake, backend = loki
    fake.add_ns({"app": "api"}, [(TIE_NS + i, "GET /orders 500") for i in range(3)])
    found = await backend.logs('{app="api"}', *exact_window(TIE_NS - NS, TIE_NS + NS))
    assert [line.timestamp_ns for line in found] == [TIE_NS + 2, TIE_NS + 1, TIE_NS]
    assert [line.timestamp for line in found] == [
        pd.Timestamp(TIE_NS + i, unit="ns", tz="UTC") for i in (2, 1, 0)
    ]  # exact, not rounded to the microsecond


@pytest.mark.parametrize("page_size", [1, 2, 5])
async def test_one_line_at_one_nanosecond_in_two_streams_is_two_entries(page_size: int) -> None:
    """Loki's entry is its time, line and labels: the same text at the same nanosecond from two
    pods is two entries, however the pages cut them, while each is read once."""
    fake = FakeLoki(max_entries=100)
    for pod in ("api-1", "api-2"):
        fake.add_ns({"app": "api", "pod": pod}, [(TIE_NS, "GET /orders 500")])
    async with served(fake.app) as url:
        backend = LokiBackend(BackendConfig(name="Loki", url=url), page_size=page_size)
        try:
            found = await backend.logs('{app="api"}', *exact_window(TIE_NS - NS, TIE_NS + 1))
        finally:
            await backend.close()
    assert sorted(line.labels["pod"] for line in found) == ["api-1", "api-2"]


async def test_the_window_is_start_inclusive_and_end_exclusive_to_the_nanosecond(
    loki: Any,
) -> None:
    fake, backend = loki
    start_ns, end_ns = TIE_NS - 600 * NS, TIE_NS
    fake.add_ns(
        {"app": "api"},
        [
            (start_ns - 1, "before"),
            (start_ns, "at start"),
            (end_ns - 1, "last"),
            (end_ns, "at end"),
        ],
    )
    found = await backend.logs('{app="api"}', *exact_window(start_ns, end_ns))
    assert [(line.line, line.timestamp_ns) for line in found] == [
        ("last", end_ns - 1),
        ("at start", start_ns),
    ]


async def test_datetime_edges_are_sent_exactly(loki: Any) -> None:
    fake, backend = loki
    # 2026-11-26T04:05:01.254762Z: a microsecond datetime whose float nanoseconds drift.
    start = datetime(2026, 11, 26, 4, 5, 1, 254762, tzinfo=UTC)
    start_ns = 1_795_665_901_254_762_000
    end_ns = start_ns + 10 * NS
    fake.add_ns(
        {"app": "api"},
        [
            (start_ns - 10, "just before start"),
            (start_ns, "at start"),
            (end_ns - 10, "just before end"),
            (end_ns, "at end"),
        ],
    )
    found = await backend.logs('{app="api"}', start, start + timedelta(seconds=10))
    assert [line.line for line in found] == ["just before end", "at start"]
    assert fake.queries[0]["start"] == str(start_ns)
    assert fake.queries[0]["end"] == str(end_ns)


# --- overload, large answers, partial windows, slow answers --------------------------------


async def test_overload_is_retried_with_backoff(loki: Any) -> None:
    fake, backend = loki
    fake.add({"app": "api"}, lines(3))
    fake.refuse_next(429, times=2)
    backend.page_size = fake.max_entries
    start, end = window()
    found = await backend.logs('{app="api"}', start, end)
    assert len(found) == 3
    assert len(fake.queries) == 3  # two refusals, then the answer


async def test_overload_that_outlasts_the_retries_is_temporary(loki: Any) -> None:
    fake, backend = loki
    fake.add({"app": "api"}, lines(3))
    fake.refuse_next(429, times=10)
    start, end = window()
    with pytest.raises(BackendUnavailable, match="429"):
        await backend.logs('{app="api"}', start, end)
    assert len(fake.queries) == 3  # one try and two retries


async def test_a_page_over_the_body_cap_is_asked_again_in_smaller_pages() -> None:
    fake = FakeLoki(max_entries=100)
    fake.add({"app": "api"}, lines(40, text="x" * 2_000))
    async with served(fake.app) as url:
        config = BackendConfig(name="Loki", url=url, max_body_bytes=30_000)
        backend = LokiBackend(config, page_size=100)
        try:
            found = await backend.logs('{app="api"}', *window())
        finally:
            await backend.close()
    assert len(found) == 40
    assert len({line.line for line in found}) == 40
    assert min(int(q["limit"]) for q in fake.queries) < 40  # it asked for smaller pages


async def test_lines_before_a_later_failure_are_kept_and_the_window_is_partial() -> None:
    fake = FakeLoki(max_entries=100)
    fake.add({"app": "api"}, lines(25))
    fake.refuse_next(503, "too busy", times=10, after=1)
    async with served(fake.app) as url:
        backend = LokiBackend(BackendConfig(name="Loki", url=url, retries=0), page_size=10)
        try:
            with pytest.raises(PartialLogs) as raised:
                await backend.logs('{app="api"}', *window())
        finally:
            await backend.close()
    assert isinstance(raised.value, BackendUnavailable)  # callers that know no better: missing
    assert [line.line for line in raised.value.lines] == [
        f"GET /orders 200 #{i}" for i in range(24, 14, -1)
    ]
    assert "503" in str(raised.value)


async def test_the_timeout_bounds_the_whole_answer_not_each_read() -> None:
    fake = FakeLoki()
    fake.add({"app": "api"}, lines(60, text="y" * 100))
    fake.trickle(chunk_bytes=400, delay_s=0.05)  # about 3 s for the answer, no read waits 0.5 s
    async with served(fake.app) as url:
        config = BackendConfig(name="Loki", url=url, timeout_s=0.5, retries=0)
        backend = LokiBackend(config)
        try:
            with pytest.raises(BackendUnavailable, match=r"within 0\.5 s"):
                await backend.logs('{app="api"}', *window())
        finally:
            await backend.close()


async def test_parsed_labels_stay_apart_from_stream_labels_and_metadata(loki: Any) -> None:
    fake, backend = loki
    fake.add(
        {"app": "api", "namespace": "shop"},
        [(NOW - 5, "level=error route=/orders app=web msg=boom", {"trace_id": "abc123"})],
    )
    start, end = window()
    (line,) = await backend.logs('{app="api"} | logfmt', start, end)
    assert line.labels == {"app": "api", "namespace": "shop", "service_name": "api"}
    assert line.structured_metadata == {"trace_id": "abc123", "detected_level": "error"}
    assert line.parsed == {
        "level": "error",
        "route": "/orders",
        "msg": "boom",
        "app_extracted": "web",
    }
    assert line.trace_id == "abc123"
