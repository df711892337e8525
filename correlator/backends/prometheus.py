"""Prometheus HTTP API: instant and range queries, series and label values.

Range results become a pandas DataFrame indexed by UTC time with one column per series. The
conversion is vectorised here rather than delegated to prometheus-api-client's
MetricRangeDataFrame: bench/promql_frames.py measures both on the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from correlator.backends.http import BackendClient, BackendConfig, BackendGarbage


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


def _seconds(moment: datetime) -> str:
    return f"{moment.timestamp():.3f}"


def _data(answer: Any, result_type: str | None = None) -> Any:
    if not isinstance(answer, dict) or answer.get("status") != "success" or "data" not in answer:
        raise BackendGarbage(f"Prometheus answered an unexpected document: {str(answer)[:200]}")
    data = answer["data"]
    if result_type is not None and (
        not isinstance(data, dict) or data.get("resultType") != result_type
    ):
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise BackendGarbage(f"Prometheus answered resultType {kind!r}, expected {result_type}")
    return data


def range_frame(result: list[dict[str, Any]]) -> pd.DataFrame:
    """Matrix result → DataFrame (rows: UTC timestamps, columns: series labels as tuples).

    All samples are flattened once, parsed by numpy in one call ("NaN" and "+Inf" included) and
    scattered into one matrix over the union of timestamps; a gap in a series stays NaN.
    """
    try:
        kept = [series for series in result if series["values"]]
        lengths = [len(series["values"]) for series in kept]
        timestamps = np.fromiter(
            (point[0] for series in kept for point in series["values"]),
            dtype=float,
            count=sum(lengths),
        )
        values = np.array([point[1] for series in kept for point in series["values"]], dtype=float)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BackendGarbage(f"Prometheus answered a malformed matrix: {exc}") from None
    if not kept:
        return pd.DataFrame()
    index, rows = np.unique(timestamps, return_inverse=True)
    columns = np.repeat(np.arange(len(kept)), lengths)
    matrix = np.full((len(index), len(kept)), np.nan)
    matrix[rows, columns] = values
    names = [tuple(sorted(series.get("metric", {}).items())) for series in kept]
    return pd.DataFrame(
        matrix,
        index=pd.to_datetime(index, unit="s", utc=True),
        columns=pd.Index(names, tupleize_cols=False),
    )


class PrometheusBackend:
    def __init__(self, config: BackendConfig) -> None:
        self._client = BackendClient(config)

    async def close(self) -> None:
        await self._client.close()

    async def query(self, expr: str, at: datetime) -> list[Sample]:
        data = _data(
            await self._client.get_json("/api/v1/query", {"query": expr, "time": _seconds(at)})
        )
        if not isinstance(data, dict):
            raise BackendGarbage(f"Prometheus answered a query with data {str(data)[:200]}")
        if data.get("resultType") == "scalar":
            return [Sample({}, float(data["result"][1]))]
        if data.get("resultType") != "vector":
            raise BackendGarbage(f"Prometheus answered resultType {data.get('resultType')!r}")
        try:
            return [Sample(dict(s["metric"]), float(s["value"][1])) for s in data["result"]]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise BackendGarbage(f"Prometheus answered a malformed vector: {exc}") from None

    async def query_range(
        self, expr: str, start: datetime, end: datetime, step_s: float
    ) -> pd.DataFrame:
        params = {
            "query": expr,
            "start": _seconds(start),
            "end": _seconds(end),
            "step": f"{step_s:g}",
        }
        data = _data(await self._client.get_json("/api/v1/query_range", params), "matrix")
        return range_frame(data["result"])

    async def series(self, match: str, start: datetime, end: datetime) -> list[dict[str, str]]:
        params = [("match[]", match), ("start", _seconds(start)), ("end", _seconds(end))]
        data = _data(await self._client.get_json("/api/v1/series", params))
        if not isinstance(data, list):
            raise BackendGarbage("Prometheus answered series that are not a list")
        return [dict(item) for item in data]

    async def label_values(self, label: str) -> list[str]:
        data = _data(await self._client.get_json(f"/api/v1/label/{label}/values", {}))
        if not isinstance(data, list):
            raise BackendGarbage("Prometheus answered label values that are not a list")
        return [str(value) for value in data]
