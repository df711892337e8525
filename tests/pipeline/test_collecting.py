"""An analysis collected in parts, as the sources come in, ranks exactly as one analysis of
everything at once does, whatever order the sources arrive in and whichever are missing."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from correlator.analysis.evidence import READING_ONLY, READS, analyse, collect_some
from correlator.analysis.telemetry import Telemetry, log_frame, metric_frame, span_frame
from correlator.pipeline.analysis_pool import AnalysisPool
from correlator.pipeline.collecting import Collecting, telemetry_of
from correlator.pipeline.frames import WithEvidence
from tests.analysis.test_analysis import SIGNALS, WINDOWS, _log_rows, _spans, series

SOURCES = ("metrics", "logs", "traces")


def _telemetry() -> Telemetry:
    """Every producer has something to find: a metric jump, a new error template, slow spans
    whose traces wrote log lines, a call edge."""
    metrics = series("db", "error_ratio", 0.01, jump=0.2) + series("api", "error_ratio", 0.01)
    logs = _log_rows("api", "INFO served request {i} in 12 ms", 300, WINDOWS.baseline_start, 3000)
    logs += _log_rows("db", "ERROR connection {i} refused", 40, WINDOWS.incident_start, 1000)
    spans = []
    for i in range(30):
        spans += _spans(f"{i:032x}", WINDOWS.baseline_start + timedelta(minutes=i), 5 + i % 3)
        at = WINDOWS.incident_start + timedelta(seconds=20 * i)
        spans += _spans(f"{i + 1000:032x}", at, 200 + i % 5, error=i % 4 == 0)
    logs += [
        (
            WINDOWS.incident_start + timedelta(seconds=20 * i),
            "db",
            f"slow query {i}",
            f"{i + 1000:032x}",
        )
        for i in range(30)
    ]
    return Telemetry(
        metrics=metric_frame(metrics),
        logs=log_frame(logs),
        spans=span_frame(spans),
        signals=SIGNALS,
        edges={("web", "api")},
    )


def _sources(telemetry: Telemetry, present: tuple[str, ...]) -> dict[str, object]:
    return {
        "metrics": (telemetry.metrics, telemetry.replicas) if "metrics" in present else None,
        "logs": telemetry.logs if "logs" in present else None,
        "traces": telemetry.spans if "traces" in present else None,
    }


@pytest.fixture
async def pool() -> AsyncIterator[AnalysisPool]:
    made = AnalysisPool("thread", 2)
    yield made
    made.close()


@pytest.mark.parametrize("order", list(itertools.permutations(SOURCES)))
async def test_parts_rank_as_one_analysis_whatever_the_order(
    pool: AnalysisPool, order: tuple[str, ...]
) -> None:
    whole = _telemetry()
    expected = analyse(whole, WINDOWS)
    assert expected.suspects and {f.kind for s in expected.suspects for f in s.evidence} >= {
        "metric",
        "log",
        "trace",
    }
    # The log lines of the slow traces are the trace evidence's samples (what the ranking's
    # context carries from the logs to the traces' part).
    samples = [
        x for s in expected.suspects for f in s.evidence if f.kind == "trace" for x in f.samples
    ]
    assert samples and all(line.startswith("slow query") for line in samples)
    collecting = Collecting(pool, WINDOWS)
    sources = _sources(whole, SOURCES)
    arrived: dict[str, object] = {}
    for kind in order:
        arrived[kind] = sources[kind]
        collecting.arrived(
            frozenset(arrived),
            lambda kinds: telemetry_of(arrived, kinds, whole.signals, whole.edges),
        )
    # Every producer started before the last source's analysis was asked for, each once.
    assert sorted(collecting.started) == sorted(READS)
    assert await collecting.analysis(whole) == expected


@pytest.mark.parametrize(
    "present", [p for n in range(3) for p in itertools.combinations(SOURCES, n)]
)
async def test_missing_sources_are_named_as_one_analysis_names_them(
    pool: AnalysisPool, present: tuple[str, ...]
) -> None:
    full = _telemetry()
    sources = _sources(full, present)
    whole = telemetry_of(sources, frozenset(SOURCES), full.signals, full.edges)
    collecting = Collecting(pool, WINDOWS)
    for kind in SOURCES:
        arrived = {k: sources[k] for k in SOURCES[: SOURCES.index(kind) + 1]}
        collecting.arrived(
            frozenset(arrived),
            lambda kinds, arrived=arrived: telemetry_of(arrived, kinds, full.signals, full.edges),
        )
    got = await collecting.analysis(whole)
    assert got == analyse(whole, WINDOWS)
    assert got.notes == [
        f"no {kind} in the analysed windows" for kind in SOURCES if kind not in present
    ]


@pytest.mark.parametrize("alone", [False, True])
async def test_with_every_process_busy_parts_start_early_only_for_a_correlation_alone(
    alone: bool,
) -> None:
    """In a storm the analysis processes are all taken: parts started early would only queue,
    each handing its frames over again, so the analysis runs as one once the last source is
    in. A correlation alone fills the pool with its own reading: its parts start anyway and
    queue behind that work (no other correlation's). The ranking is the same."""
    pool = AnalysisPool("thread", 1)
    release = asyncio.Event()
    try:
        busy = asyncio.ensure_future(pool.run(_wait_for, release))
        while not pool.saturated():
            await asyncio.sleep(0.01)
        whole = _telemetry()
        collecting = Collecting(pool, WINDOWS, alone=lambda: alone)
        sources = _sources(whole, SOURCES)
        _arrive(collecting, whole, sources, ("metrics",))
        if alone:
            assert collecting.started == READING_ONLY["metrics"] and len(collecting.parts) == 1
        else:
            assert collecting.started == set() and collecting.parts == []
        release.set()
        await busy
        assert await collecting.analysis(whole) == analyse(whole, WINDOWS)
    finally:
        pool.close()


def _arrive(
    collecting: Collecting,
    whole: Telemetry,
    sources: dict[str, object],
    kinds: tuple[str, ...],
) -> None:
    """Tell `collecting` the sources `kinds` are in (of `whole`, as `sources` holds them)."""
    collecting.arrived(
        frozenset(kinds), lambda ks: telemetry_of(sources, ks, whole.signals, whole.edges)
    )


def _wait_for(event: asyncio.Event) -> None:
    while not event.is_set():
        time.sleep(0.01)


class _Recording(AnalysisPool):
    """A thread pool that keeps the telemetry each part was handed."""

    def __init__(self) -> None:
        super().__init__("thread", 2)
        self.handed: list[Telemetry] = []

    async def run(self, function: Any, *args: object) -> Any:
        self.handed += [a for a in args if isinstance(a, Telemetry)]
        return await super().run(function, *args)


async def test_what_is_left_for_the_end_gets_only_the_frames_it_reads() -> None:
    """Metrics came in while a process was free (their part started); logs and traces while
    every process was busy. The rest runs at the end on the logs and spans alone: the metric
    frames, the largest, are not handed over a second time, and the ranking is the same."""
    pool = _Recording()
    try:
        whole = _telemetry()
        sources = _sources(whole, SOURCES)
        collecting = Collecting(pool, WINDOWS)
        _arrive(collecting, whole, sources, ("metrics",))
        assert collecting.started == {n for n, reads in READS.items() if reads == {"metrics"}}
        release = asyncio.Event()
        busy = [asyncio.ensure_future(pool.run(_wait_for, release)) for _ in range(2)]
        while not pool.saturated():
            await asyncio.sleep(0.01)
        _arrive(collecting, whole, sources, SOURCES)
        release.set()
        await asyncio.gather(*busy)
        assert await collecting.analysis(whole) == analyse(whole, WINDOWS)
        first, rest = pool.handed
        assert not first.metrics.empty and first.logs.empty and first.spans.empty
        assert rest.metrics.empty and not rest.logs.empty and not rest.spans.empty
    finally:
        pool.close()


def _unreadable(answers: list[str], windows: object) -> Any:
    raise ValueError(f"cannot read {answers}")


async def test_reading_with_evidence_gives_nothing_when_it_fails_or_others_run(
    pool: AnalysisPool,
) -> None:
    """Reading a source with its evidence fails (a producer's bug, the time limit, a broken
    pool), or other correlations run now: it gives nothing and marks nothing started, so the
    caller reads the answers alone and the producers run in a part of their own, as they
    would have without it."""
    whole = _telemetry()
    alone = [True]
    collecting = Collecting(pool, WINDOWS, alone=lambda: alone[0])
    assert await collecting.read("metrics", _unreadable, ["an answer"]) is None
    alone[0] = False
    assert await collecting.read("traces", _spans_with_evidence, whole.spans) is None
    assert collecting.started == set() and collecting.parts == []
    _arrive(collecting, whole, _sources(whole, SOURCES), SOURCES)
    assert await collecting.analysis(whole) == analyse(whole, WINDOWS)


async def test_a_correlation_given_up_starts_no_part(pool: AnalysisPool) -> None:
    """A source read after its correlation was given up (its other sources failed) starts
    nothing more in the pool."""
    whole = _telemetry()
    collecting = Collecting(pool, WINDOWS, alone=lambda: True)
    collecting.cancel()
    assert await collecting.read("traces", _spans_with_evidence, whole.spans) is not None
    _arrive(collecting, whole, _sources(whole, SOURCES), SOURCES)
    assert collecting.parts == [] and collecting.started == set()


async def test_reading_a_source_alone_gives_its_evidence_and_the_same_ranking(
    pool: AnalysisPool,
) -> None:
    """Read with their evidence (`frames.trace_evidence`), the traces' producers are done with
    the reading: they are not run again, and the ranking is one analysis's."""
    whole = _telemetry()
    collecting = Collecting(pool, WINDOWS, alone=lambda: True)
    sources = _sources(whole, SOURCES)
    spans = await collecting.read("traces", _spans_with_evidence, whole.spans)
    assert spans is not None and spans.equals(whole.spans)
    assert collecting.started == READING_ONLY["traces"]
    _arrive(collecting, whole, sources, SOURCES)
    assert collecting.started == set(READS)
    assert await collecting.analysis(whole) == analyse(whole, WINDOWS)


def _spans_with_evidence(spans: Any, windows: Any) -> WithEvidence[Any]:
    """`frames.trace_evidence` for spans read already."""
    part = collect_some(Telemetry(spans=spans), windows, READING_ONLY["traces"])
    return WithEvidence(spans, part)


def _metrics_with_evidence(frames: Any, signals: Any, windows: Any) -> WithEvidence[Any]:
    """`frames.metric_evidence` for metric frames read already."""
    telemetry = Telemetry(metrics=frames[0], replicas=frames[1], signals=signals)
    return WithEvidence(frames, collect_some(telemetry, windows, READING_ONLY["metrics"]))


@pytest.mark.parametrize(
    "present", [p for n in range(4) for p in itertools.combinations(SOURCES, n)]
)
@pytest.mark.parametrize("order", [SOURCES, tuple(reversed(SOURCES))])
async def test_alone_whatever_is_in_ranks_as_one_analysis(
    pool: AnalysisPool, present: tuple[str, ...], order: tuple[str, ...]
) -> None:
    """Alone, metrics and traces are read with their evidence and the logs arrive as before,
    in either order, with any of them missing: the ranking and the notes are one analysis's
    of what is in."""
    full = _telemetry()
    sources = _sources(full, present)
    whole = telemetry_of(sources, frozenset(SOURCES), full.signals, full.edges)
    collecting = Collecting(pool, WINDOWS, alone=lambda: True)
    arrived: dict[str, object] = {}
    for kind in order:
        value = sources[kind]
        if kind == "metrics" and value is not None:
            value = await collecting.read("metrics", _metrics_with_evidence, value, full.signals)
        elif kind == "traces" and value is not None:
            value = await collecting.read("traces", _spans_with_evidence, value)
        arrived[kind] = value
        collecting.arrived(
            frozenset(arrived),
            lambda kinds, now=dict(arrived): telemetry_of(now, kinds, full.signals, full.edges),
        )
    assert collecting.started == set(READS)
    got = await collecting.analysis(whole)
    assert got == analyse(whole, WINDOWS)
    assert got.notes == [
        f"no {kind} in the analysed windows" for kind in SOURCES if kind not in present
    ]
