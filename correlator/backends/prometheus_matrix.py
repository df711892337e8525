"""Prometheus' answers as values (pure): the `data` of a document, and a range answer's matrix
as a frame. Values in, values out, no HTTP client imported: the client (backends/prometheus.py)
parses with it on the event loop, and the pipeline hands a range answer's bytes to the analysis
processes, which parse them there (pipeline/frames.py). A document that is not what the API
promises raises MalformedAnswer; each caller translates it where the bytes came in.

The conversion of a matrix is vectorised here rather than delegated to prometheus-api-client's
MetricRangeDataFrame: bench/promql_frames.py measures both on the same answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd


class MalformedAnswer(ValueError):
    """A Prometheus answer that is not what its API promises."""


def answer_data(answer: Any, result_type: str | None = None) -> Any:
    """The `data` of a successful answer (of `result_type`, when given)."""
    if not isinstance(answer, dict) or answer.get("status") != "success" or "data" not in answer:
        raise MalformedAnswer(f"Prometheus answered an unexpected document: {str(answer)[:200]}")
    data = answer["data"]
    if result_type is not None and (
        not isinstance(data, dict) or data.get("resultType") != result_type
    ):
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise MalformedAnswer(f"Prometheus answered resultType {kind!r}, expected {result_type}")
    return data


# The instants a frame can hold (nanoseconds in 64 bits: years 1677 to 2262).
_EARLIEST_S, _LATEST_S = -9.2e9, 9.2e9


def _labels(metric: object) -> tuple[tuple[str, str], ...]:
    """A series' labels as sorted pairs; anything but names to strings is malformed."""
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise TypeError("a series' labels are not names to strings")
    return tuple(sorted(metric.items()))


def range_frame(result: list[dict[str, Any]]) -> pd.DataFrame:
    """Matrix result → DataFrame (rows: UTC timestamps, columns: series labels as tuples).

    All samples are flattened once, parsed by numpy in one call ("NaN" and "+Inf" included) and
    scattered into one matrix over the union of timestamps; a gap in a series stays NaN.
    """
    if not isinstance(result, list):
        raise MalformedAnswer("Prometheus answered a malformed matrix: its result is not a list")
    try:
        kept = [series for series in result if series["values"]]
        names = [_labels(series.get("metric", {})) for series in kept]
        lengths = [len(series["values"]) for series in kept]
        timestamps = np.fromiter(
            (point[0] for series in kept for point in series["values"]),
            dtype=float,
            count=sum(lengths),
        )
        values = np.array([point[1] for series in kept for point in series["values"]], dtype=float)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise MalformedAnswer(f"Prometheus answered a malformed matrix: {exc}") from None
    if not kept:
        return pd.DataFrame()
    if values.shape != timestamps.shape:  # a value that is a list, not a number's string
        raise MalformedAnswer(
            "Prometheus answered a malformed matrix: a sample is not [time, value]"
        )
    if not np.all((timestamps >= _EARLIEST_S) & (timestamps <= _LATEST_S)):
        raise MalformedAnswer("Prometheus answered a malformed matrix: a time out of range")
    index, rows = np.unique(timestamps, return_inverse=True)
    columns = np.repeat(np.arange(len(kept)), lengths)
    matrix = np.full((len(index), len(kept)), np.nan)
    matrix[rows, columns] = values
    return pd.DataFrame(
        matrix,
        index=pd.to_datetime(index, unit="s", utc=True),
        columns=pd.Index(names, tupleize_cols=False),
    )


def matrix_frame(body: bytes) -> pd.DataFrame:
    """A range query's answer, as its bytes came in → its frame (`range_frame`)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:  # also invalid UTF-8, NaN literals, nesting past 1,024
        shown = body[:200].decode("utf-8", "replace").strip()
        raise MalformedAnswer(f"Prometheus answered something that is not JSON: {shown}") from None
    return range_frame(answer_data(answer, "matrix").get("result"))
