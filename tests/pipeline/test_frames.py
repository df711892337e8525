"""A correlation's range and trace answers → its metric and span frames (pipeline/frames.py,
run in the analysis pool): services found per series, replicas kept apart, spans once under
the analysis' names, each unusable answer named and the others kept, and no bytes whatever that
make it raise."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.evidence import analyse
from correlator.analysis.windows import incident_windows
from correlator.backends.jaeger_spans import SearchBody
from correlator.pipeline import Pipeline
from correlator.pipeline.analysis_pool import AnalysisPool
from correlator.pipeline.fetch import Fetch
from correlator.pipeline.frames import RangeAnswer, TraceAnswer, metric_frames, span_frames
from correlator.pipeline.sources import read_traces
from correlator.settings import load_settings
from correlator.signals import ServiceLabels
from tests.fakes.jaeger import FakeJaeger, FakeSpan, otlp_traces
from tests.support.processes import Prometheus
from tests.support.servers import served

LABELS = ServiceLabels()


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> bytes:
    result = [{"metric": m, "values": [[t, v] for t, v in values]} for m, values in series]
    return json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": result}}
    ).encode()


def test_each_series_is_told_to_its_service_and_pods_of_one_service_become_replicas() -> None:
    cpu = matrix(
        ({"pod": "api-7d9f8c6b5-x2x9q"}, [(100, "0.5"), (115, "0.7")]),
        ({"pod": "api-7d9f8c6b5-k8s7z"}, [(100, "0.1"), (115, "0.9")]),
        ({"pod": "db-5f6d7c8b9-abcde"}, [(100, "0.2")]),
        ({"pod": "other-5f6d7c8b9-abcde"}, [(100, "9")]),  # not in scope: left out
    )
    errors = matrix(({"destination_workload": "api"}, [(100, "0.01"), (115, "NaN")]))
    frames = metric_frames(
        [
            RangeAnswer("cpu", ("api", "db"), LABELS, cpu),
            RangeAnswer("error_ratio", ("api",), LABELS, errors),
        ]
    )
    assert frames.unusable == ()
    rows = {
        (r.time.timestamp(), r.service, r.signal): r.value
        for r in frames.metrics.itertuples(index=False)
    }
    # Two pods of api: the larger value at each time stands for the service.
    assert rows[(100.0, "api", "cpu")] == 0.5 and rows[(115.0, "api", "cpu")] == 0.9
    assert rows[(100.0, "db", "cpu")] == 0.2
    assert rows[(100.0, "api", "error_ratio")] == 0.01
    assert (115.0, "api", "error_ratio") not in rows  # a NaN sample is no sample
    assert not any(service == "other" for _, service, _ in rows)
    replicas = frames.replicas
    assert set(replicas["instance"]) == {"api-7d9f8c6b5-x2x9q", "api-7d9f8c6b5-k8s7z"}
    assert set(replicas["service"]) == {"api"}
    assert str(frames.metrics["time"].dtype) == "datetime64[ns, UTC]"


def test_an_unusable_answer_is_named_and_the_others_are_kept() -> None:
    good = matrix(({"destination_workload": "api"}, [(100, "1")]))
    frames = metric_frames(
        [
            RangeAnswer("latency", ("api",), LABELS, b"<html>proxy login</html>"),
            RangeAnswer("cpu", ("api",), LABELS, good),
            RangeAnswer("rps", ("api",), LABELS, b'{"status":"success","data":NaN}'),
            RangeAnswer(
                "errors",
                ("api",),
                LABELS,
                b'{"status":"success","data":{"resultType":"vector","result":[]}}',
            ),
            RangeAnswer("memory", ("api",), LABELS, matrix(({"pod": "api-1"}, [(1, "one")]))),
        ]
    )
    unusable = dict(frames.unusable)
    assert set(unusable) == {"latency", "rps", "errors", "memory"}
    assert "not JSON: <html>proxy login</html>" in unusable["latency"]
    assert "not JSON" in unusable["rps"]
    assert "resultType 'vector', expected matrix" in unusable["errors"]
    assert "malformed matrix" in unusable["memory"]
    assert list(frames.metrics["signal"]) == ["cpu"] and math.isclose(
        frames.metrics["value"].iloc[0], 1.0
    )


def test_nothing_in_any_answer_gives_empty_typed_frames() -> None:
    frames = metric_frames([RangeAnswer("cpu", ("api",), LABELS, matrix())])
    assert frames.metrics.empty and frames.replicas.empty and frames.unusable == ()
    assert str(frames.metrics["time"].dtype) == "datetime64[ns, UTC]"


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        _json.map(lambda doc: json.dumps(doc).encode()),
        _json.map(
            lambda result: json.dumps(
                {"status": "success", "data": {"resultType": "matrix", "result": result}}
            ).encode()
        ),
        st.lists(
            st.tuples(
                st.dictionaries(
                    st.sampled_from(["pod", "destination_workload", "x"]),
                    st.text(max_size=12),
                    max_size=2,
                ),
                st.lists(
                    st.tuples(
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.one_of(st.text(max_size=5), _json),
                    ),
                    max_size=4,
                ),
            ),
            max_size=4,
        ).map(lambda series: matrix(*series)),
    )
)
def test_no_answer_makes_reading_raise(body: bytes) -> None:
    """Whatever a backend (or a proxy before it) answers, the answer is either read or named
    as unusable: the analysis process never raises on it."""
    frames = metric_frames([RangeAnswer("cpu", ("api", ""), LABELS, body)])
    assert len(frames.unusable) <= 1
    if frames.unusable:
        assert frames.unusable[0][0] == "cpu" and frames.metrics.empty


def _otlp(*spans: FakeSpan) -> bytes:
    return json.dumps({"result": otlp_traces(list(spans))}).encode()


NS = 1_700_000_000 * 10**9
ROOT = FakeSpan("a" * 32, "1" * 16, "frontend-v2", "GET /", NS, 300 * 10**6)
CALL = FakeSpan("a" * 32, "2" * 16, "api", "GET /orders", NS + 10**6, 250 * 10**6, "1" * 16)
OTHER = FakeSpan("b" * 32, "1" * 16, "api", "GET /orders", NS, 5 * 10**6, error=True)


def test_spans_of_overlapping_windows_are_read_once_under_the_analysis_names() -> None:
    v1 = {
        "data": [
            {
                "traceID": "c" * 32,
                "processes": {"p0": {"serviceName": "api"}},
                "spans": [
                    {
                        "traceID": "c" * 32,
                        "spanID": "3" * 16,
                        "operationName": "GET /health",
                        "processID": "p0",
                        "startTime": NS // 1000,
                        "duration": 2000,
                        "tags": [{"key": "span.kind", "value": "server"}],
                    }
                ],
            }
        ]
    }
    frames = span_frames(
        [
            TraceAnswer("baseline traces of frontend", SearchBody(_otlp(ROOT, CALL))),
            TraceAnswer("incident traces of frontend", SearchBody(_otlp(CALL, OTHER))),
            TraceAnswer("incident traces of api", SearchBody(json.dumps(v1).encode(), v1=True)),
        ],
        {"frontend-v2": "frontend"},
    )
    assert frames.unusable == ()
    rows = {(r.trace_id, r.span_id): r for r in frames.spans.itertuples(index=False)}
    assert sorted(rows) == [("a" * 32, "1" * 16), ("a" * 32, "2" * 16), ("b" * 32, "1" * 16),
                            ("c" * 32, "3" * 16)]  # fmt: skip
    assert rows[("a" * 32, "1" * 16)].service == "frontend"  # Jaeger's name → ours
    assert rows[("a" * 32, "2" * 16)].parent_id == "1" * 16
    assert rows[("a" * 32, "2" * 16)].duration_ms == 250
    assert rows[("b" * 32, "1" * 16)].error
    assert rows[("c" * 32, "3" * 16)].duration_ms == 2 and rows[("c" * 32, "3" * 16)].kind == (
        "server"
    )
    assert str(frames.spans["start"].dtype) == "datetime64[ns, UTC]"


def test_an_unusable_trace_answer_is_named_and_the_others_are_kept() -> None:
    frames = span_frames(
        [
            TraceAnswer("baseline traces of api", SearchBody(b"<html>proxy login</html>")),
            TraceAnswer("incident traces of api", SearchBody(_otlp(OTHER))),
            TraceAnswer("incident traces of web", SearchBody(b'{"data": []}')),
            TraceAnswer("baseline traces of web", SearchBody(b'{"result": []}', v1=True)),
            TraceAnswer("incident traces of db", SearchBody(b'{"result": {"resourceSpans": 1}}')),
        ],
        {},
    )
    unusable = dict(frames.unusable)
    assert set(unusable) == {
        "baseline traces of api",
        "incident traces of web",
        "baseline traces of web",
        "incident traces of db",
    }
    assert "not JSON: <html>proxy login</html>" in unusable["baseline traces of api"]
    assert "without a result" in unusable["incident traces of web"]
    assert "without data" in unusable["baseline traces of web"]
    assert "malformed OTLP" in unusable["incident traces of db"]
    assert list(frames.spans["trace_id"]) == ["b" * 32]


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        _json.map(lambda doc: json.dumps(doc).encode()),
        _json.map(lambda result: json.dumps({"result": result}).encode()),
        _json.map(lambda data: json.dumps({"data": data}).encode()),
        _json.map(
            lambda spans: json.dumps(
                {"result": {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}}
            ).encode()
        ),
    ),
    v1=st.booleans(),
)
def test_no_trace_answer_makes_reading_raise(body: bytes, v1: bool) -> None:
    frames = span_frames([TraceAnswer("incident traces of api", SearchBody(body, v1))], {})
    assert len(frames.unusable) <= 1
    if frames.unusable:
        assert frames.unusable[0][0] == "incident traces of api" and frames.spans.empty


class _SlowPool(AnalysisPool):
    """Threads whose every task starts `delay_s` late, as a pool still spawning its processes
    (seconds, on a cold start or after a runaway analysis's pool was killed)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__("thread", 2)
        self.delay_s = delay_s
        self.ran: list[str] = []

    async def run(self, function: Any, *args: object) -> Any:
        self.ran.append(function.__name__)
        await asyncio.sleep(self.delay_s)
        return await super().run(function, *args)


async def test_reading_the_answers_is_not_bounded_by_the_backends_deadline(
    tmp_path: Path,
) -> None:
    """The deadline bounds waiting on the backends. Reading what they answered is our own work,
    in the analysis pool: a pool that starts late loses no answer that came in time."""
    now = datetime.now(UTC).replace(microsecond=0)
    lines = ["# TYPE istio_requests counter"]
    for step in range(120, -1, -1):
        t = (now - timedelta(seconds=15 * step)).timestamp()
        lines.append(
            'istio_requests_total{reporter="destination",destination_workload="api",'
            f'destination_workload_namespace="shop",response_code="200"}} {1000 - step} {t:.0f}'
        )
    prometheus = Prometheus(tmp_path, rule_files=[], openmetrics="\n".join(lines) + "\n# EOF\n")
    prometheus.start()
    jaeger = FakeJaeger()
    ns = int((now - timedelta(minutes=1)).timestamp()) * 10**9
    jaeger.add(FakeSpan("d" * 32, "1" * 16, "api", "GET /orders", ns, 20 * 10**6))
    try:
        async with served(jaeger.app) as jaeger_url:
            pipeline = Pipeline(
                load_settings(
                    prometheus={"url": prometheus.url},
                    jaeger={"url": jaeger_url},
                    correlation={"deadline_s": 0.5},
                    queue={"analysis_pool": "thread"},
                )
            )
            pipeline._analysis.close()
            pipeline._analysis = pool = _SlowPool(delay_s=1.0)
            try:
                windows = incident_windows(now - timedelta(minutes=3), now, pipeline.policy)
                telemetry, fetch, _ = await pipeline.gather(["api"], ["shop"], windows)
            finally:
                await pipeline.close()
    finally:
        prometheus.stop()
    assert [m for m in fetch.missing if m["backend"] in ("prometheus", "jaeger")] == []
    assert set(telemetry.metrics["signal"]) >= {"throughput_rps", "error_ratio"}
    assert set(telemetry.metrics["service"]) == {"api"}
    assert list(telemetry.spans["trace_id"]) == ["d" * 32]
    # Both sources' answers were read in the pool, not on the serving loop.
    assert sorted(pool.ran) == ["metric_frames", "span_frames"]


class _BusyPool(AnalysisPool):
    """Threads that say every slot is taken (a storm), and count what they are handed."""

    def __init__(self) -> None:
        super().__init__("thread", 1)
        self.ran: list[str] = []

    def saturated(self) -> bool:
        return True

    async def run(self, function: Any, *args: object) -> Any:
        self.ran.append(function.__name__)
        return await super().run(function, *args)


async def test_with_every_analysis_process_busy_the_traces_are_read_on_the_loop() -> None:
    """In a storm every process is busy with whole analyses: a correlation's trace answers
    would wait behind them, so they are read where the time is (the serving loop)."""
    now = datetime.now(UTC).replace(microsecond=0)
    jaeger = FakeJaeger()
    ns = int((now - timedelta(minutes=1)).timestamp()) * 10**9
    jaeger.add(FakeSpan("e" * 32, "1" * 16, "api", "GET /orders", ns, 20 * 10**6))
    async with served(jaeger.app) as jaeger_url:
        pipeline = Pipeline(
            load_settings(jaeger={"url": jaeger_url}, queue={"analysis_pool": "thread"})
        )
        pipeline._analysis.close()
        pipeline._analysis = pool = _BusyPool()
        try:
            windows = incident_windows(now - timedelta(minutes=3), now, pipeline.policy)
            telemetry, fetch, _ = await pipeline.gather(["api"], ["shop"], windows)
        finally:
            await pipeline.close()
    assert [m for m in fetch.missing if m["backend"] == "jaeger"] == []
    assert list(telemetry.spans["trace_id"]) == ["e" * 32]
    assert "span_frames" not in pool.ran


async def test_among_other_correlations_the_traces_are_read_on_the_loop() -> None:
    """Only a correlation that has the pool to itself hands its trace answers over: among
    others (a storm), the answers and the frame crossing both ways cost more than reading."""
    pool = _SlowPool(delay_s=0)
    answers = [TraceAnswer("incident traces of api", SearchBody(_otlp(OTHER)))]
    try:
        fetch = Fetch()
        among = await read_traces(answers, {}, pool, fetch, alone=False)
        assert pool.ran == [] and list(among["trace_id"]) == ["b" * 32]
        alone = await read_traces(answers, {}, pool, fetch, alone=True)
        assert pool.ran == ["span_frames"] and alone.equals(among)
        assert fetch.missing == []
    finally:
        pool.close()


async def _shop(
    tmp_path: Path, now: datetime, correlating: int, pool: _SlowPool | None = None
) -> tuple[Any, list[str], Any]:
    """One correlation of `api` (its metrics in real Prometheus, a slow call in Jaeger) by a
    pipeline already running `correlating` others (with `pool`): its analysis, what its pool
    was handed, and the telemetry it gathered."""
    lines = ["# TYPE istio_requests counter"]
    for step in range(240, -1, -1):
        t = (now - timedelta(seconds=15 * step)).timestamp()
        # A steady rate, then 50 a step from 5 minutes before now.
        count = 1000 + 10 * (240 - step) + (40 * (20 - step) if step < 20 else 0)
        for code in ("200", "500"):
            errors = code == "500" and step < 20
            lines.append(
                'istio_requests_total{reporter="destination",destination_workload="api",'
                f'destination_workload_namespace="shop",response_code="{code}"}} '
                f"{(count if code == '200' else (10 * (20 - step) if errors else 0))} {t:.0f}"
            )
    prometheus = Prometheus(tmp_path, rule_files=[], openmetrics="\n".join(lines) + "\n# EOF\n")
    prometheus.start()
    jaeger = FakeJaeger()
    for minute in range(50, 0, -1):
        ns = int((now - timedelta(minutes=minute)).timestamp()) * 10**9
        slow = minute <= 5
        jaeger.add(
            FakeSpan(f"{minute:032x}", "1" * 16, "api", "GET /orders", ns,
                     (400 if slow else 20) * 10**6, error=slow)
        )  # fmt: skip
    try:
        async with served(jaeger.app) as jaeger_url:
            pipeline = Pipeline(
                load_settings(
                    prometheus={"url": prometheus.url, "cache_s": 0},
                    jaeger={"url": jaeger_url, "cache_s": 0},
                    correlation={"lead_min": 10, "baseline_min": 40},
                    queue={"analysis_pool": "thread"},
                )
            )
            pipeline._analysis.close()
            pipeline._analysis = pool = pool or _SlowPool(delay_s=0)
            pipeline._correlating = correlating
            try:
                windows = incident_windows(now - timedelta(minutes=4), now, pipeline.policy)
                analysis, telemetry, fetch, _ = await pipeline.analysed(["api"], ["shop"], windows)
            finally:
                await pipeline.close()
    finally:
        prometheus.stop()
    assert [m for m in fetch.missing if m["backend"] in ("prometheus", "jaeger")] == []
    return analysis, pool.ran, (telemetry, windows)


async def test_a_correlation_alone_reads_each_source_with_its_own_evidence(
    tmp_path: Path,
) -> None:
    """Alone, a correlation's metric answers and trace answers are each read in one call with
    the evidence of the producers that read that source alone: the frames cross to the pool
    once, and the ranking is the one analysis of everything at once gives."""
    now = datetime.now(UTC).replace(microsecond=0)
    analysis, ran, (telemetry, windows) = await _shop(tmp_path, now, correlating=0)
    # Besides: the log paths (logs and traces: no logs here, but spans) and the ranking.
    assert sorted(ran) == [
        "analyse_collected",
        "collect_some",
        "metric_evidence",
        "trace_evidence",
    ]
    assert {f.kind for s in analysis.suspects for f in s.evidence} >= {"metric", "trace"}
    assert analysis == analyse(telemetry, windows)


async def test_among_other_correlations_each_source_is_read_apart_from_its_evidence(
    tmp_path: Path,
) -> None:
    """Among others (a storm) the sources are read as before (the metrics in the pool, the
    traces on the loop) and their producers run in parts of their own, to the same ranking."""
    now = datetime.now(UTC).replace(microsecond=0)
    analysis, ran, (telemetry, windows) = await _shop(tmp_path, now, correlating=1)
    assert "metric_evidence" not in ran and "trace_evidence" not in ran
    assert "metric_frames" in ran
    assert analysis.suspects and analysis == analyse(telemetry, windows)


class _FailingEvidence(_SlowPool):
    """Threads on which reading a source with its evidence fails (a producer's bug)."""

    async def run(self, function: Any, *args: object) -> Any:
        if function.__name__.endswith("_evidence"):
            self.ran.append(function.__name__)
            raise ValueError("a producer's bug")
        return await super().run(function, *args)


async def test_when_reading_with_evidence_fails_the_answers_are_read_without(
    tmp_path: Path,
) -> None:
    """Reading a source with its evidence fails: its answers are read again without it, its
    producers run in a part of their own, and nothing fetched is lost."""
    now = datetime.now(UTC).replace(microsecond=0)
    pool = _FailingEvidence(delay_s=0)
    analysis, ran, (telemetry, windows) = await _shop(tmp_path, now, correlating=0, pool=pool)
    assert {"metric_evidence", "trace_evidence", "metric_frames", "span_frames"} <= set(ran)
    assert not telemetry.metrics.empty and not telemetry.spans.empty
    assert {f.kind for s in analysis.suspects for f in s.evidence} >= {"metric", "trace"}
    assert analysis == analyse(telemetry, windows)
