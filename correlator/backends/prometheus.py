"""Prometheus HTTP API: instant and range queries, series and label values.

Range results become a pandas DataFrame indexed by UTC time with one column per series
(`prometheus_matrix.py`, pure). `query_range_body` gives a range answer's bytes unparsed, for
the pipeline to parse in the analysis processes rather than on the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from correlator.backends import prometheus_matrix as matrix
from correlator.backends.http import BackendClient, BackendConfig, BackendGarbage
from correlator.backends.prometheus_matrix import MalformedAnswer, answer_data


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


def _seconds(moment: datetime) -> str:
    return f"{moment.timestamp():.3f}"


@contextlib.contextmanager
def _as_garbage() -> Iterator[None]:
    """What the pure reader finds malformed is, for this client's callers, BackendGarbage."""
    try:
        yield
    except MalformedAnswer as exc:
        raise BackendGarbage(str(exc)) from None


def _data(answer: Any, result_type: str | None = None) -> Any:
    with _as_garbage():
        return answer_data(answer, result_type)


def range_frame(result: list[dict[str, Any]]) -> pd.DataFrame:
    """Matrix result → DataFrame (`prometheus_matrix.range_frame`), garbage as BackendGarbage."""
    with _as_garbage():
        return matrix.range_frame(result)


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
        kind = data.get("resultType")
        if kind not in ("scalar", "vector"):
            raise BackendGarbage(f"Prometheus answered resultType {kind!r}")
        try:
            if kind == "scalar":
                return [Sample({}, float(data["result"][1]))]
            return [Sample(dict(s["metric"]), float(s["value"][1])) for s in data["result"]]
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise BackendGarbage(f"Prometheus answered a malformed {kind}: {exc}") from None

    async def query_range(
        self, expr: str, start: datetime, end: datetime, step_s: float
    ) -> pd.DataFrame:
        """A range query's series as a frame (`prometheus_matrix.range_frame`)."""
        body = await self.query_range_body(expr, start, end, step_s)
        with _as_garbage():
            return matrix.matrix_frame(body)

    async def query_range_body(
        self, expr: str, start: datetime, end: datetime, step_s: float
    ) -> bytes:
        """A range query's answer as its bytes came in, unparsed (`matrix_frame` reads it)."""
        params = {
            "query": expr,
            "start": _seconds(start),
            "end": _seconds(end),
            "step": f"{step_s:g}",
        }
        return await self._client.get_bytes("/api/v1/query_range", params)

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
