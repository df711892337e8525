"""The pure analysis: table-driven, on synthetic telemetry, with an injected `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from correlator.analysis.evidence import analyse
from correlator.analysis.findings import poisson_surge, sustained_change
from correlator.analysis.logs import log_findings, normalise
from correlator.analysis.metric_evidence import metric_findings
from correlator.analysis.rank import rank
from correlator.analysis.telemetry import SignalMeta, Telemetry, log_frame, metric_frame, span_frame
from correlator.analysis.traces import call_edges, exclusive_ms, trace_findings
from correlator.analysis.windows import incident_windows

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ONSET = NOW - timedelta(minutes=5)
WINDOWS = incident_windows(ONSET, NOW)
RNG = np.random.default_rng(7)


def series(
    service: str,
    signal: str,
    level: float,
    *,
    jump: float = 0.0,
    at: datetime = ONSET,
    rng: np.random.Generator = RNG,
) -> list[tuple[datetime, str, str, float]]:
    """15 s samples from the baseline start to now: `level` with noise, plus `jump` from `at`."""
    rows = []
    moment = WINDOWS.baseline_start
    while moment <= NOW:
        value = level * (1 + 0.05 * rng.standard_normal()) + (jump if moment >= at else 0.0)
        rows.append((moment, service, signal, value))
        moment += timedelta(seconds=15)
    return rows


SIGNALS = {
    "error_ratio": SignalMeta("ratio", "higher"),
    "throughput_rps": SignalMeta("req/s", "lower"),
    "cpu_cores": SignalMeta("cores", "higher", floor=0.01),
}


@pytest.mark.parametrize(
    ("name", "rows", "expected"),
    [
        ("steady", series("a", "error_ratio", 0.01), set()),
        ("error jump", series("a", "error_ratio", 0.01, jump=0.2), {("a", "error_ratio")}),
        (
            "drop in throughput",
            series("a", "throughput_rps", 100, jump=-60),
            {("a", "throughput_rps")},
        ),
        ("rise in throughput is not worse", series("a", "throughput_rps", 100, jump=60), set()),
        (
            "one spike is not a change",
            [
                (t, s, g, v + (5.0 if t == ONSET else 0.0))
                for t, s, g, v in series("a", "cpu_cores", 0.5)
            ],
            set(),
        ),
        (
            "a jump before the incident window is the baseline's, not news",
            series("a", "cpu_cores", 0.5, jump=2.0, at=WINDOWS.baseline_start),
            set(),
        ),
    ],
)
def test_metric_findings(name: str, rows: list, expected: set) -> None:
    found = metric_findings(metric_frame(rows), SIGNALS, WINDOWS)
    assert {(f.service, f.signal) for f in found} == expected, name


def test_metric_change_time_and_values() -> None:
    changed = ONSET - timedelta(minutes=2)
    (finding,) = metric_findings(
        metric_frame(series("a", "error_ratio", 0.01, jump=0.3, at=changed)), SIGNALS, WINDOWS
    )
    assert abs((finding.change_time - changed).total_seconds()) <= 15
    assert finding.before == pytest.approx(0.01, rel=0.2)
    assert finding.after == pytest.approx(0.31, rel=0.1)
    assert finding.detail.startswith("error_ratio rose from") and finding.detail.endswith("to 31%")


@pytest.mark.parametrize(
    ("z", "expected_start"),
    [
        ([0, 0, 0, 0], None),
        ([0, 9, 0, 0, 0, 0], None),  # a spike
        ([0, 0, 5, 6, 7, 6], 2),
        ([0, 5, 0, 5, 6, 7], 1),  # holds for most of the rest
    ],
)
def test_sustained_change(z: list[float], expected_start: int | None) -> None:
    start, _ = sustained_change(np.array(z, dtype=float), 3.0)
    assert start == expected_start


@pytest.mark.parametrize(
    ("line", "message", "is_error"),
    [
        ('{"level":"error","msg":"db timeout"}', "db timeout", True),
        ('{"level":"info","msg":"an error page was served"}', "an error page was served", False),
        ("19:19:08.554 ERROR o.s.Impl#37 failed", "ERROR o.s.Impl#37 failed", True),
        ("2026-11-26T12:00:00Z INFO ok", "INFO ok", False),
        ("{not json", "{not json", False),
    ],
)
def test_normalise(line: str, message: str, is_error: bool) -> None:
    assert normalise(line) == (message, is_error)


def _log_rows(service: str, template: str, count: int, start: datetime, span_s: float) -> list:
    step = span_s / max(count, 1)
    return [
        (start + timedelta(seconds=i * step), service, template.format(i=i), f"{i:032x}")
        for i in range(count)
    ]


def test_new_error_template_is_evidence_and_steady_info_is_not() -> None:
    baseline_start = WINDOWS.baseline_start
    rows = _log_rows("api", "INFO served request {i} in 12 ms", 600, baseline_start, 3000)
    rows += _log_rows("api", "INFO served request {i} in 12 ms", 200, WINDOWS.incident_start, 1000)
    rows += _log_rows(
        "db", "ERROR connection {i} refused by 10.0.0.{i}", 40, WINDOWS.incident_start, 1000
    )
    found = log_findings(log_frame(rows), WINDOWS)
    assert {f.service for f in found} == {"db"}
    (finding,) = [f for f in found if f.signal != "error-level lines"]
    assert "new error template" in finding.detail and "<NUM>" in finding.signal
    assert finding.samples and finding.trace_ids and finding.before == 0
    (rate,) = [f for f in found if f.signal == "error-level lines"]
    assert rate.before == 0 and rate.after == pytest.approx(40 / 20, rel=0.01)


def test_poisson_surge_grows_with_the_surprise() -> None:
    assert poisson_surge(10, 10, 1.0) == 0
    assert 0 < poisson_surge(20, 10, 1.0) < poisson_surge(40, 10, 1.0) < poisson_surge(40, 0, 1.0)


def _spans(trace: str, start: datetime, db_ms: float, *, error: bool = False) -> list[dict]:
    return [
        {"trace_id": trace, "span_id": "1", "parent_id": "", "service": "api",
         "operation": "GET /", "start": start, "duration_ms": db_ms + 10, "error": error},
        {"trace_id": trace, "span_id": "2", "parent_id": "1", "service": "db",
         "operation": "SELECT", "start": start + timedelta(milliseconds=5),
         "duration_ms": db_ms, "error": error},
    ]  # fmt: skip


def test_exclusive_time_removes_children_and_their_overlap() -> None:
    start = NOW
    frame = span_frame(
        [
            {"trace_id": "t", "span_id": "p", "parent_id": "", "service": "a", "operation": "x",
             "start": start, "duration_ms": 100, "error": False},
            {"trace_id": "t", "span_id": "c1", "parent_id": "p", "service": "b", "operation": "y",
             "start": start + timedelta(milliseconds=10), "duration_ms": 50, "error": False},
            {"trace_id": "t", "span_id": "c2", "parent_id": "p", "service": "c", "operation": "z",
             "start": start + timedelta(milliseconds=40), "duration_ms": 40, "error": False},
        ]
    )  # fmt: skip
    assert list(exclusive_ms(frame).round(6)) == [30.0, 50.0, 40.0]  # 10..80 covered
    assert call_edges(frame) == {("a", "b"), ("a", "c")}


def test_slow_callee_is_blamed_not_its_caller() -> None:
    rows = []
    for i in range(30):
        rows += _spans(f"b{i}", WINDOWS.baseline_start + timedelta(minutes=i), 5 + i % 3)
        rows += _spans(f"i{i}", WINDOWS.incident_start + timedelta(seconds=20 * i), 200 + i % 5)
    found = trace_findings(span_frame(rows), WINDOWS)
    assert {f.service for f in found if f.signal.startswith("own time")} == {"db"}


def test_failure_origin_is_the_deepest_failing_span() -> None:
    rows = []
    for i in range(30):
        rows += _spans(f"i{i}", WINDOWS.incident_start + timedelta(seconds=20 * i), 5, error=True)
    found = [f for f in trace_findings(span_frame(rows), WINDOWS) if f.signal == "error spans"]
    assert [f.service for f in found] == ["db"]


def _finding(service: str, score: float, minutes_after_onset: float, kind: str = "metric") -> Any:
    from correlator.analysis.findings import Finding

    return Finding(
        service, kind, "s", score, 1.0, 2.0, "", ONSET + timedelta(minutes=minutes_after_onset), "d"
    )


@pytest.mark.parametrize(
    ("name", "findings", "edges", "first"),
    [
        # The callee changed first and its callers after it: the callee is the cause, even
        # when a caller's own signal is louder.
        ("cause below victims", [("db", 8, 0), ("api", 12, 1), ("web", 12, 2)],
         {("web", "api"), ("api", "db")}, "db"),
        # A callee that changed only after its caller did not cause it.
        ("callee degraded later", [("db", 8, 3), ("api", 12, 0)], {("api", "db")}, "api"),
        # Unrelated services: the strongest evidence wins.
        ("no graph", [("a", 5, 0), ("b", 9, 0)], set(), "b"),
    ],
)  # fmt: skip
def test_rank_uses_the_call_graph(name: str, findings: list, edges: set, first: str) -> None:
    suspects = rank([_finding(*f) for f in findings], edges)
    assert suspects[0].service == first, name
    assert suspects[0].reason


def test_agreeing_kinds_outweigh_one_loud_signal() -> None:
    findings = [_finding("a", 9, 0), _finding("b", 6, 0, "log"), _finding("b", 6, 0, "trace")]
    assert rank(findings, set())[0].service == "b"


def test_analyse_names_missing_kinds_and_ranks() -> None:
    telemetry = Telemetry(
        metrics=metric_frame(series("db", "error_ratio", 0.01, jump=0.2)), signals=SIGNALS
    )
    result = analyse(telemetry, WINDOWS)
    assert result.ranking() == ["db"]
    assert result.notes == ["no logs in the analysed windows", "no traces in the analysed windows"]


def test_analyse_of_nothing_is_an_empty_report() -> None:
    result = analyse(Telemetry(), WINDOWS)
    assert result.suspects == [] and len(result.notes) == 3


def test_trace_evidence_carries_the_log_lines_of_its_traces() -> None:
    rows = []
    for i in range(30):
        rows += _spans(f"b{i}", WINDOWS.baseline_start + timedelta(minutes=i), 5 + i % 3)
        rows += _spans(f"i{i}", WINDOWS.incident_start + timedelta(seconds=20 * i), 200 + i % 5)
    logs = [
        (WINDOWS.incident_start + timedelta(seconds=20 * i), "db", f"slow query {i}", f"i{i}")
        for i in range(30)
    ]
    result = analyse(Telemetry(logs=log_frame(logs), spans=span_frame(rows)), WINDOWS)
    db = next(s for s in result.suspects if s.service == "db")
    trace = next(f for f in db.evidence if f.kind == "trace" and f.signal.startswith("own time"))
    assert trace.samples and all(line.startswith("slow query") for line in trace.samples)
    assert {f"slow query {t[1:]}" for t in trace.trace_ids} >= set(trace.samples)


def test_evidence_every_service_shows_weighs_less_than_evidence_that_singles_one_out() -> None:
    """Ten services all a little slower (a baseline from a calmer hour) and one with failing
    spans: the rare evidence ranks first. In a small scope rarity is not used."""
    from correlator.analysis.findings import Finding

    def found(service: str, signal: str, score: float) -> Finding:
        return Finding(service, "trace", signal, score, 1.0, 2.0, "ms", ONSET, "d")

    crowd = [found(f"svc{i}", f"own time of GET /{i}", 8.0) for i in range(10)]
    rare = found("payments", "error spans", 6.0)
    services = [f"svc{i}" for i in range(10)] + ["payments"]
    assert rank([*crowd, rare], set(), services=services)[0].service == "payments"
    small = [found("a", "own time of GET /", 8.0), found("b", "error spans", 6.0)]
    assert rank(small, set(), services=["a", "b"])[0].service == "a"


def test_a_small_deviation_is_listed_after_the_evidence_and_nothing_that_did_not_move() -> None:
    """Metrics only (no logs, no traces): the service with evidence first, then one whose
    error ratio moved only a little, marked weak; a service that did not move is not listed."""
    rng = np.random.default_rng(11)  # its own draws: the same data however the tests run
    rows = (
        series("loud", "error_ratio", 0.01, jump=0.3, rng=rng)
        + series("faint", "cpu_cores", 0.5, jump=0.06, rng=rng)  # about 2.4 robust deviations
        + series("calm", "cpu_cores", 0.5, rng=rng)
    )
    result = analyse(Telemetry(metrics=metric_frame(rows), signals=SIGNALS), WINDOWS)
    assert [(s.service, s.weak) for s in result.suspects] == [("loud", False), ("faint", True)]
    faint = result.suspects[1]
    assert 0.0 < faint.confidence < result.suspects[0].confidence
    assert faint.reason.startswith("only a small deviation, below every threshold")


def test_evidence_this_systems_history_also_shows_counts_for_less() -> None:
    """Calibration: a score the fault-free windows also reached counts for less, by how often
    they reached it; a score they never reached keeps its producer's value."""
    from correlator.analysis.calibrate import Calibration, Null, calibrated, prior
    from correlator.analysis.findings import z_of_p

    history = Null(np.sort(np.array([0.0] * 36 + [4.0, 5.0, 6.0, 7.0])))
    loud, rare = _finding("a", 5.0, 1), _finding("b", 9.0, 1)
    calibrated({"metrics": [loud, rare]}, Calibration({"metrics": history}))
    assert loud.p == pytest.approx((3 + prior(5.0)) / 41)
    assert loud.raw_score == 5.0
    assert loud.score == pytest.approx(5.0 * z_of_p(loud.p) / z_of_p(prior(5.0)))
    assert loud.score < 0.6 * 5.0
    assert rare.p == pytest.approx(prior(9.0) / 41) and rare.score == rare.raw_score == 9.0
    # Without any history, a producer's own scale is all there is.
    alone = _finding("c", 5.0, 1)
    calibrated({"spans": [alone]}, Calibration())
    assert alone.p == pytest.approx(prior(5.0)) and alone.score == 5.0


def test_null_windows_are_shaped_like_the_incident_and_end_before_it() -> None:
    from correlator.analysis.calibrate import null_windows

    rows = metric_frame(series("a", "cpu_cores", 0.5))
    nulls = null_windows(rows["time"], WINDOWS)
    length = WINDOWS.incident_end - WINDOWS.incident_start
    assert len(nulls) == 1  # an hour of baseline holds one 20-minute window in its second half
    assert all(w.incident_end - w.incident_start == length for w in nulls)
    assert all(w.incident_end < WINDOWS.incident_start for w in nulls)
    assert all(w.baseline_end == w.incident_start for w in nulls)
    assert null_windows(rows["time"][:1], WINDOWS) == []  # nothing to split


def test_small_deviations_score_below_every_suspect_with_evidence() -> None:
    """However large a small-deviation finding's own score, it ranks and scores after the
    services with evidence (a page banding suspects by score keeps them last)."""
    suspects = rank([_finding("loud", 3.5, 1)], set(), weak=[_finding("faint", 20.0, 1)])
    assert [(s.service, s.weak) for s in suspects] == [("loud", False), ("faint", True)]
    assert suspects[1].score < suspects[0].score
    assert suspects[1].confidence > suspects[0].confidence  # its own evidence, as it is


def test_a_callee_explains_a_caller_only_when_its_own_anomaly_stands_out_among_the_services() -> (
    None
):
    """Victim discount with many services in scope: a callee whose evidence the history reaches
    one time in forty (p = 0.025) is what forty services show by chance, so it takes nothing
    from its caller's strong evidence; a callee at p = 1e-6 does."""
    services = [f"s{i}" for i in range(40)]
    caller = _finding("api", 6.0, 2, kind="log")
    caller.p = 1e-5
    chance = _finding("db", 3.0, 1)
    chance.p = 0.025
    first = {s.service: s for s in rank([caller, chance], {("api", "db")}, services=services)}
    assert first["api"].caused_by == ["db"]
    assert first["api"].score == pytest.approx(first["api"].own_score)  # nothing taken
    loud = _finding("db", 3.0, 1)
    loud.p = 1e-6
    second = {
        s.service: s for s in rank([replace(caller), loud], {("api", "db")}, services=services)
    }
    assert second["api"].score < 0.9 * second["api"].own_score
