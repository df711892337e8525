"""A range frame (rows: time, columns: series) → the long metric and replica rows: the one-pass
numpy forms give exactly what a frame per series and a group-by give (kept here as the
reference), on any matrix: gaps, infinities, several series of one service, unnamed series."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.metric_evidence import ORDER, in_order
from correlator.analysis.telemetry import (
    METRIC_COLUMNS,
    REPLICA_COLUMNS,
    empty,
    metric_frame,
    wide_to_metrics,
    wide_to_replicas,
)


def reference_metrics(
    wide: pd.DataFrame, signal: str, service_of: dict[object, str]
) -> pd.DataFrame:
    frames = []
    for position, column in enumerate(wide.columns):
        if column not in service_of:
            continue
        values = wide.iloc[:, position]
        kept = values.notna().to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "time": wide.index[kept],
                    "service": service_of[column],
                    "signal": signal,
                    "value": values.to_numpy(float)[kept],
                }
            )
        )
    if not frames:
        return empty(METRIC_COLUMNS)
    long = pd.concat(frames, ignore_index=True)
    return long.groupby(["time", "service", "signal"], as_index=False, sort=True).agg(
        value=("value", "max")
    )[list(METRIC_COLUMNS)]


def reference_replicas(
    wide: pd.DataFrame, signal: str, service_of: dict[object, str], instance_of: dict[object, str]
) -> pd.DataFrame:
    per_service: dict[str, list[int]] = {}
    for position, column in enumerate(wide.columns):
        if column in service_of and instance_of.get(column):
            per_service.setdefault(service_of[column], []).append(position)
    frames = []
    for service, positions in per_service.items():
        if len(positions) < 2:
            continue
        for position in positions:
            values = wide.iloc[:, position]
            kept = values.notna().to_numpy()
            frames.append(
                pd.DataFrame(
                    {
                        "time": wide.index[kept],
                        "service": service,
                        "instance": instance_of[wide.columns[position]],
                        "signal": signal,
                        "value": values.to_numpy(float)[kept],
                    }
                )
            )
    if not frames:
        return empty(REPLICA_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def same(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(ours.columns) == list(reference.columns)
    assert len(ours) == len(reference)
    for name in ours.columns:
        a, b = ours[name].to_numpy(), reference[name].to_numpy()
        if name == "value":
            assert np.array_equal(a.astype(float), b.astype(float))
        else:
            assert list(a) == list(b), name


cells = st.one_of(
    st.just(np.nan),
    st.just(np.inf),
    st.just(-np.inf),
    st.floats(-1e6, 1e6, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    data=st.data(),
)
def test_the_one_pass_forms_give_what_a_frame_per_series_gives(
    shape: tuple[int, int], data: st.DataObject
) -> None:
    times, series = shape
    matrix = [[data.draw(cells) for _ in range(series)] for _ in range(times)]
    columns = [(("pod", f"p{i}"),) for i in range(series)]
    index = pd.to_datetime([100 + 15 * t for t in range(times)], unit="s", utc=True)
    wide = pd.DataFrame(
        np.array(matrix, dtype=float).reshape(times, series),
        index=index,
        columns=pd.Index(columns, tupleize_cols=False),
    )
    services = data.draw(
        st.lists(st.sampled_from(["b", "a", "c", None]), min_size=series, max_size=series)
    )
    instances = data.draw(
        st.lists(st.sampled_from(["x", "y", ""]), min_size=series, max_size=series)
    )
    service_of = {c: s for c, s in zip(columns, services, strict=True) if s is not None}
    instance_of = dict(zip(columns, instances, strict=True))
    same(wide_to_metrics(wide, "cpu", service_of), reference_metrics(wide, "cpu", service_of))
    same(
        wide_to_replicas(wide, "cpu", service_of, instance_of),
        reference_replicas(wide, "cpu", service_of, instance_of),
    )


_NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=4)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5),  # the instant, as seconds: ties are common
            st.sampled_from(["api", "db", "web", "Api", "api-2", "", "é"]) | _NAMES,
            st.sampled_from(["error_ratio", "cpu", "cpu_cores", "latency"]) | _NAMES,
            st.floats(allow_nan=False),
        ),
        max_size=60,
    )
)
def test_samples_are_put_in_order_as_a_stable_sort_by_service_signal_and_time_puts_them(
    rows: list[tuple[int, str, str, float]],
) -> None:
    """`in_order` ranks the strings once and sorts integers: the order (and the index) of
    pandas' stable sort by service, signal and time, ties kept in their order."""
    frame = metric_frame(
        (pd.Timestamp(1_800_000_000 + t, unit="s", tz="UTC"), service, signal, value)
        for t, service, signal, value in rows
    )
    expected = frame.sort_values(ORDER, kind="stable")
    got = in_order(frame)
    assert got.equals(expected) and list(got.index) == list(expected.index)
