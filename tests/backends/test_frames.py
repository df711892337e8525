"""Matrix answers to frames (pure): alignment, gaps, special values, broken answers."""

from __future__ import annotations

import json
import math
import re

import pytest

from correlator.backends.http import BackendGarbage
from correlator.backends.prometheus import range_frame
from correlator.backends.prometheus_matrix import MalformedAnswer, matrix_frame


def test_series_are_aligned_on_the_union_of_timestamps_with_gaps_left_empty() -> None:
    frame = range_frame(
        [
            {"metric": {"app": "a"}, "values": [[100, "1"], [115, "2"], [130, "3"]]},
            {"metric": {"app": "b"}, "values": [[115, "NaN"], [130, "+Inf"], [145, "-Inf"]]},
            {"metric": {"app": "c"}, "values": []},  # no samples: no column
        ]
    )
    assert [ts.timestamp() for ts in frame.index] == [100, 115, 130, 145]
    assert list(frame.columns) == [(("app", "a"),), (("app", "b"),)]
    a, b = frame.iloc[:, 0].tolist(), frame.iloc[:, 1].tolist()
    assert a[:3] == [1, 2, 3] and math.isnan(a[3])
    assert math.isnan(b[0]) and math.isnan(b[1]) and b[2] == math.inf and b[3] == -math.inf


def test_nothing_gives_an_empty_frame() -> None:
    assert range_frame([]).empty


@pytest.mark.parametrize(
    "result",
    [
        [{"metric": {}, "values": [["x", "1"]]}],
        [{"metric": {}, "values": [[1, "one"]]}],
        [{"metric": {}}],
        [{"metric": {}, "values": [[1]]}],
    ],
)
def test_a_broken_matrix_is_garbage(result: list[dict[str, object]]) -> None:
    with pytest.raises(BackendGarbage, match="malformed matrix"):
        range_frame(result)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "not JSON: {not json"),
        (b'{"status":"success","data":NaN}', "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b'{"status":"error","error":"x"}', "unexpected document"),
        (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "'vector'"),
        (b'{"status":"success","data":{"resultType":"matrix"}}', "result is not a list"),
        (
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":1},'
            b'"values":[[1,"1"]]}]}}',
            "labels are not names to strings",
        ),
        (
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
            b'"values":[[1e89,"1"]]}]}}',
            "time out of range",
        ),
        (
            b'{"status":"success","data":{"resultType":"matrix","result":["x"]}}',
            "malformed matrix",
        ),
    ],
)
def test_a_range_answer_read_from_its_bytes_names_what_is_wrong(body: bytes, error: str) -> None:
    """What the analysis processes read (`matrix_frame`): every broken answer is
    MalformedAnswer, never another exception."""
    with pytest.raises(MalformedAnswer, match=re.escape(error)):
        matrix_frame(body)


def test_a_range_answer_read_from_its_bytes_is_the_frame_of_its_matrix() -> None:
    body = (
        b'{"status":"success","data":{"resultType":"matrix","result":'
        b'[{"metric":{"app":"a"},"values":[[100,"1"],[115,"+Inf"]]}]}}'
    )
    frame = matrix_frame(body)
    assert list(frame.columns) == [(("app", "a"),)]
    assert frame.iloc[:, 0].tolist() == [1, math.inf]


@pytest.mark.parametrize("value", [[1, 2], [1], [], {"v": 1}])
def test_a_sample_whose_value_is_not_a_number_string_is_malformed(value: object) -> None:
    body = json.dumps(
        {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, value]]}]},
        }
    ).encode()
    with pytest.raises(MalformedAnswer, match="malformed matrix"):
        matrix_frame(body)
