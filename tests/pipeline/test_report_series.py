"""The report's graphs: for each of the first suspects with metric evidence, the series of its
strongest metric finding's signal, in time order, at most MAX_POINTS points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.evidence import Analysis
from correlator.analysis.findings import Finding
from correlator.analysis.rank import Suspect
from correlator.analysis.windows import incident_windows
from correlator.pipeline.report import MAX_GRAPHS, MAX_POINTS, evidence_series

NOW = datetime(2026, 12, 7, 1, tzinfo=UTC)
SERVICES = ["a", "b", "c", "d", "e"]
SIGNALS = ["latency", "errors", "cpu"]


def finding(service: str, kind: str, signal: str) -> Finding:
    return Finding(service, kind, signal, 5.0, 1.0, 2.0, "s", None, f"{signal} rose")


def metrics(points: int, shuffle_seed: int) -> pd.DataFrame:
    rows = [
        (NOW - timedelta(seconds=15 * i), service, signal, float(i * 7 % 13))
        for i in range(points)
        for service in SERVICES
        for signal in SIGNALS
    ]
    frame = pd.DataFrame(rows, columns=["time", "service", "signal", "value"])
    frame["time"] = frame["time"].astype("datetime64[ns, UTC]")
    return frame.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)


@settings(max_examples=60, deadline=None)
@given(
    points=st.integers(1, 600),
    seed=st.integers(0, 1000),
    suspects=st.lists(
        st.tuples(
            st.sampled_from([*SERVICES, "unknown"]),
            st.lists(
                st.tuples(st.sampled_from(["metric", "log", "trace"]), st.sampled_from(SIGNALS)),
                max_size=3,
            ),
        ),
        max_size=6,
    ),
)
def test_each_graph_is_its_finding_s_series_in_time_order(
    points: int, seed: int, suspects: list[tuple[str, list[tuple[str, str]]]]
) -> None:
    frame = metrics(points, seed)
    analysis = Analysis(
        incident_windows(NOW - timedelta(minutes=10), NOW),
        [
            Suspect(s, 1.0, 1.0, None, "", [finding(s, k, g) for k, g in evidence])
            for s, evidence in suspects
        ],
        SERVICES,
    )
    expected = []
    for service, evidence in suspects:
        signal = next((g for k, g in evidence if k == "metric"), None)
        if signal is None or service not in SERVICES:
            continue
        rows = frame[(frame["service"] == service) & (frame["signal"] == signal)]
        rows = rows.sort_values("time")
        step = max(1, len(rows) // MAX_POINTS)
        expected.append(
            (service, signal, list(zip(rows["time"][::step], rows["value"][::step], strict=True)))
        )
    expected = expected[:MAX_GRAPHS]
    got = evidence_series(analysis, frame)
    assert [(s.service, s.signal, s.points) for s in got] == expected
    assert all(len(s.points) <= 2 * MAX_POINTS for s in got)
