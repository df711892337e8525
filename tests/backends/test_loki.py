"""The Loki backend against the Loki test server: paging, limits, escaping, errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from correlator.backends.http import BackendConfig, BackendRefused
from correlator.backends.logql import contains, stream_selector
from correlator.backends.loki import LokiBackend
from tests.fakes.loki import FakeLoki
from tests.support.servers import served

NOW = int(time.time())  # whole seconds: window edges compare exactly


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


async def test_an_empty_range_is_refused(loki: Any) -> None:
    _, backend = loki
    moment = datetime.fromtimestamp(NOW, UTC)
    with pytest.raises(BackendRefused, match="end timestamp must not be before or equal"):
        await backend.logs('{app="api"}', moment, moment)
