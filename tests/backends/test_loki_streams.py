"""Loki's `streams` answers read into lines (pure): a broken document is garbage, named as such,
never another exception, and every line read converts to the frame the analysis reads."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.telemetry import log_frame
from correlator.backends.http import BackendGarbage
from correlator.backends.loki import parse_streams


@pytest.mark.parametrize(
    "result",
    [
        [{"stream": {"app": "api"}, "values": [["99999999999999999999", "past 2262"]]}],
        [{"stream": {"app": "api"}, "values": [["1.5e18", "not an integer"]]}],
        [{"stream": {"app": "api"}, "values": [[1700000000000000000, "a number, not a string"]]}],
        [{"stream": ["app", "api"], "values": []}],
        [{"stream": {"app": "api"}, "values": [["1"]]}],
        [{"stream": {"app": "api"}, "values": [["1", "x", {"structuredMetadata": [1]}]]}],
        [{"values": []}],
        ["a stream"],
    ],
)
def test_a_broken_stream_is_garbage(result: list[Any]) -> None:
    with pytest.raises(BackendGarbage, match="malformed streams"):
        parse_streams(result)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
_timestamps = st.one_of(st.integers(0, 2**64).map(str), st.text(max_size=21), _json)


@settings(max_examples=300, deadline=None)
@given(
    result=st.one_of(
        st.lists(_json, max_size=3),
        st.lists(
            st.fixed_dictionaries(
                {
                    "stream": st.one_of(
                        st.dictionaries(st.text(max_size=6), st.text(max_size=6)), _json
                    ),
                    "values": st.lists(
                        st.one_of(
                            st.tuples(_timestamps, st.text(max_size=20)).map(list),
                            st.tuples(_timestamps, st.text(max_size=20), _json).map(list),
                            _json,
                        ),
                        max_size=4,
                    ),
                }
            ),
            max_size=3,
        ),
    )
)
def test_any_answer_is_read_or_garbage_and_what_is_read_converts(result: list[Any]) -> None:
    try:
        lines = parse_streams(result)
    except BackendGarbage:
        return
    frame = log_frame(
        [(line.timestamp_ns, "api", line.line, line.trace_id or "") for line in lines]
    )
    assert len(frame) == len(lines)
