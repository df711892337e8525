"""`log_frame` builds its columns directly; it must give what building a frame from the rows
and conforming it gave (the reference below), for any rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.telemetry import _HEX_TRACE, LOG_COLUMNS, conform, log_frame


def reference(rows: list[tuple[Any, Any, Any, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(LOG_COLUMNS))
    if frame.empty:
        return conform(frame, LOG_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[ns, UTC]")
    frame["line"] = frame["line"].astype(str)
    missing = frame["trace_id"].isna() | (frame["trace_id"].astype(str) == "")
    if missing.any():
        found = frame.loc[missing, "line"].str.extract(r"\b([0-9a-f]{32}|[0-9a-f]{16})\b")[0]
        frame.loc[missing, "trace_id"] = found
    frame["trace_id"] = frame["trace_id"].fillna("").astype(str)
    return conform(frame, LOG_COLUMNS)


_HEX = st.text("0123456789abcdef", min_size=15, max_size=33)
_WORDS = st.lists(st.one_of(_HEX, st.text("xyz_-=: 0123456789abcdefABCDEF", max_size=12)))
_LINES = st.one_of(_WORDS.map(" ".join), _WORDS.map("".join), st.integers())
# Not NaN: the reference failed on a column of NaN only (it is the same as None, below).
_TRACES = st.one_of(st.just(""), st.none(), _HEX)
# Strings: the reference typed None and numbers differently by what else the column held.
_SERVICES = st.text(max_size=8)
_BASE = datetime(2026, 12, 7, tzinfo=UTC)
_TIMES = st.one_of(
    st.lists(st.integers(0, 2**62), min_size=1, max_size=30),
    st.lists(
        st.integers(0, 10**9).map(lambda us: _BASE + timedelta(microseconds=us)),
        min_size=1,
        max_size=30,
    ),
)


@settings(max_examples=300, deadline=None)
@given(times=_TIMES, data=st.data())
def test_the_columns_are_those_of_the_reference(times: list[Any], data: st.DataObject) -> None:
    rows = [(time, data.draw(_SERVICES), data.draw(_LINES), data.draw(_TRACES)) for time in times]
    built, expected = log_frame(rows), reference(rows)
    pd.testing.assert_frame_equal(built, expected)
    assert conform(built, LOG_COLUMNS) is built  # typed already: nothing more to do


def test_a_missing_trace_id_is_missing_however_it_is_said() -> None:
    line = "GET /x trace=" + "ab" * 8
    frames = [log_frame([(1, "a", line, trace)]) for trace in ("", None, float("nan"))]
    for frame in frames:
        pd.testing.assert_frame_equal(frame, frames[0])
    assert frames[0]["trace_id"][0] == "ab" * 8
    assert log_frame([(1, None, line, "")])["service"][0] == ""


def test_no_rows_give_the_empty_frame() -> None:
    pd.testing.assert_frame_equal(log_frame([]), conform(None, LOG_COLUMNS))


def test_the_trace_id_pattern_matches_as_before() -> None:
    before = r"\b([0-9a-f]{32}|[0-9a-f]{16})\b"
    for line in ("id=" + "a" * 16, "a" * 32, "a" * 20, "x" + "a" * 16, "a" * 16 + "-" + "b" * 32):
        old = pd.Series([line]).str.extract(before)[0][0]
        match = _HEX_TRACE.search(line)
        assert (match.group(1) if match else None) == (None if pd.isna(old) else old)
