"""The Nezha adapter and `correlator bench rca`: nothing of the answers reaches the ranking, dirty
rows are skipped and counted, the alert comes from the front-end rule, and the benchmark
reports the figures that say whether the ranking generalises.

Cases are laid out in a temporary tree whose data files are links to the data beside a fault
list the test writes: the adapter's behaviour is tested on the real extract the repository
carries (tests/contracts/nezha-extract: one day, its two faults of 11:00, trimmed); only the
test of the benchmark's figures on whole cases reads the development dataset in `../shared/`
(tests/support/optional.py).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from correlator.cli import main
from correlator.rca import benchmark, nezha
from correlator.rca.tables import Problems
from tests.support import optional

EXTRACT = Path(__file__).resolve().parents[1] / "contracts" / "nezha-extract"
DAY = "2023-01-30"
# Two faults of the day (a network delay and a CPU contention), as the dataset lists them.
FAULTS = [
    {"inject_time": f"{DAY} 11:51:46", "inject_pod": "ts-contacts-service-866bd68c97-dzqgd",
     "inject_type": "network_delay"},
    {"inject_time": f"{DAY} 11:59:21", "inject_pod": "ts-basic-service-5dc8d4f9fd-llznp",
     "inject_type": "cpu_contention"},
]  # fmt: skip


def layout(
    root: Path, faults: list[dict[str, str]], *, source: Path = EXTRACT, copy: tuple[str, ...] = ()
) -> Path:
    """A dataset tree over the real day in `source`: its folders linked, the fault list
    written, and the folders in `copy` copied so that a test may dirty their files."""
    day = root / "rca_data" / DAY
    day.mkdir(parents=True)
    for folder in ("metric", "log", "trace", "traceid"):
        origin = source / "rca_data" / DAY / folder
        if folder in copy:
            shutil.copytree(origin, day / folder)
        else:
            (day / folder).symlink_to(origin)
    (root / "construct_data").mkdir()
    (root / "construct_data" / DAY).symlink_to(source / "construct_data" / DAY)
    (day / f"{DAY}-fault_list.json").write_text(json.dumps({"11": faults}))
    return root


def span_rows(*minutes: str) -> int:
    """The extract's spans of these minutes and of the day's fault-free minute."""
    paths = [EXTRACT / "rca_data" / DAY / "trace" / f"{m}_trace.csv" for m in minutes]
    paths += sorted((EXTRACT / "construct_data" / DAY / "trace").glob("*.csv"))
    return sum(len(path.read_text().splitlines()) - 1 for path in paths)


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> list[list[str]]:
    """The rankings of the extract's two faults as the dataset lists them (computed once)."""
    return rankings(layout(tmp_path_factory.mktemp("honest"), FAULTS))


def rankings(root: Path) -> list[list[str]]:
    return [o.ranking for o in benchmark.run(root)]


@pytest.mark.parametrize(
    "moved",
    [
        timedelta(seconds=7),
        timedelta(minutes=-2),
        timedelta(minutes=1),
        timedelta(minutes=2, seconds=-50),
    ],
)
def test_scrambled_answers_do_not_change_the_rankings(
    tmp_path: Path, moved: timedelta, honest: list[list[str]]
) -> None:
    """Pods, fault types and the injection time are the answers (the time only chooses the
    recording nearest it): changing them, the time by seconds or by whole minutes, changes
    no ranking."""

    def later(text: str) -> str:
        return f"{datetime.strptime(text, '%Y-%m-%d %H:%M:%S') + moved:%Y-%m-%d %H:%M:%S}"

    scrambled = [
        {
            "inject_time": later(fault["inject_time"]),
            "inject_pod": other["inject_pod"],
            "inject_type": "exception",
        }
        for fault, other in zip(FAULTS, reversed(FAULTS), strict=True)
    ]
    assert rankings(layout(tmp_path / "scrambled", scrambled)) == honest
    assert all(len(r) >= 2 for r in honest)  # a real ranking, not an empty one


def test_a_day_without_its_fault_free_traces_is_analysed(tmp_path: Path) -> None:
    """The first abort of the issue: no fault-free trace file made an object-typed `start`."""
    root = layout(tmp_path / "no-normal-traces", FAULTS)
    normal = root / "construct_data" / DAY
    normal.unlink()
    normal.mkdir()
    (normal / "log").symlink_to(EXTRACT / "construct_data" / DAY / "log")
    (normal / "trace").mkdir()
    cases = list(nezha.cases(root))
    assert all(str(c.telemetry.spans["start"].dtype) == "datetime64[ns, UTC]" for c in cases)
    outcomes = benchmark.run(root)
    assert all(len(o.ranking) >= 2 for o in outcomes)


def test_a_case_with_metrics_only_is_ranked_on_its_metrics(tmp_path: Path) -> None:
    """The second abort: no log and no trace file at all. The windows come from the front-end
    rule within the minutes the dataset would have recorded, and the ranking is not empty."""
    root = layout(tmp_path / "metrics-only", FAULTS[:1], copy=("log", "trace"))
    day = root / "rca_data" / DAY
    for path in [*(day / "log").iterdir(), *(day / "trace").iterdir()]:
        path.unlink()
    problems = Problems()
    (case,) = nezha.cases(root, problems)
    # Only the day's fault-free minute remains, as the baseline before the windows.
    assert (case.telemetry.logs["time"] < case.windows.incident_start).all()
    assert (case.telemetry.spans["start"] < case.windows.incident_start).all()
    first = datetime(2023, 1, 30, 11, 51, tzinfo=UTC)
    assert first - timedelta(minutes=2) <= case.windows.onset <= first + timedelta(minutes=3)
    assert any("analysed on metrics only" in r for rs in problems.reasons.values() for r in rs)
    (outcome,) = benchmark.run(root)
    assert outcome.ranking, "a ranking is empty only when nothing deviates"


def test_a_case_the_analysis_cannot_handle_is_a_miss_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever a case does to the analysis, the run goes on: that case scores as a miss and
    says why (the failure is forced here, as no known input still causes one)."""
    root = layout(tmp_path / "failing", FAULTS)
    real = benchmark.collect

    def failing(telemetry: object, windows: object) -> object:
        if failing.calls == 0:  # type: ignore[attr-defined]
            failing.calls += 1  # type: ignore[attr-defined]
            raise OverflowError("date value out of range")
        return real(telemetry, windows)  # type: ignore[arg-type]

    failing.calls = 0  # type: ignore[attr-defined]
    monkeypatch.setattr(benchmark, "collect", failing)
    assert main(["bench", "rca", "--json", str(root)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["per_case"][0]["rank"] is None
    reasons = [r for p in result["data_problems"].values() for r in p["reasons"]]
    assert any("scored as a miss" in r and "OverflowError" in r for r in reasons)


def test_dirty_rows_are_skipped_counted_and_named(tmp_path: Path) -> None:
    root = layout(tmp_path / "dirty", FAULTS, copy=("trace", "log", "metric"))
    day = root / "rca_data" / DAY
    trace = day / "trace" / "11_52_trace.csv"
    lines = trace.read_text().splitlines(keepends=True)
    # Two rows run together, a row cut short, a row with a non-numeric start.
    lines[5] = lines[5].rstrip("\n") + lines[6]
    lines[10] = ",".join(lines[10].split(",")[:3]) + "\n"
    parts = lines[20].split(",")
    parts[5] = "soon"
    lines[20] = ",".join(parts)
    trace.write_text("".join(lines))
    log = day / "log" / "11_53_log.csv"
    log.write_bytes(log.read_bytes() + b"\xff\xfe,not,a,row\n")
    (day / "log" / "11_52_log.csv").write_text("")
    (day / "metric" / "ts-config-service-xyz-abcde_metric.csv").write_text("nonsense\n1\n")
    problems = Problems()
    cases = list(nezha.cases(root, problems))
    assert [c.truth for c in cases] == ["ts-contacts-service", "ts-basic-service"]
    report = problems.json()
    assert report[str(trace)]["skipped_rows"] == 3
    reasons = report[str(trace)]["reasons"]
    assert any("Skipping line 6: expected 8 fields, saw 15" in r for r in reasons)
    assert report[str(log)]["skipped_rows"] == 1
    assert report[str(day / "log" / "11_52_log.csv")]["reasons"] == ["empty file"]
    metric = str(day / "metric" / "ts-config-service-xyz-abcde_metric.csv")
    assert "no column TimeStamp" in report[metric]["reasons"][0]
    # The ranking still runs on what could be read: the extract's spans, but for three rows.
    assert [len(c.telemetry.spans) for c in cases] == [
        span_rows("11_51", "11_52", "11_53") - 3,
        span_rows("11_59", "12_00", "12_01"),
    ]


def test_a_malformed_fault_list_skips_its_day_and_says_why(tmp_path: Path) -> None:
    root = layout(tmp_path / "bad-list", FAULTS)
    listing = root / "rca_data" / DAY / f"{DAY}-fault_list.json"
    listing.write_text('{"11": [{"inject_time": ')
    problems = Problems()
    assert list(nezha.cases(root, problems)) == []
    assert "unreadable fault list" in problems.json()[str(listing)]["reasons"][0]
    listing.write_text(json.dumps({"11": [{"inject_pod": "x-1-2"}, FAULTS[0]]}))
    problems = Problems()
    assert [c.truth for c in nezha.cases(root, problems)] == ["ts-contacts-service"]
    assert "fault 11[0] skipped" in problems.json()[str(listing)]["reasons"][0]


def _front(values: list[float]) -> pd.DataFrame:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return pd.DataFrame(
        {
            "TimeStamp": [(start + timedelta(minutes=i)).timestamp() for i in range(len(values))],
            "LatencyP90(s)": values,
            "SuccessRate(%)": [100.0] * len(values),
        }
    )


def test_the_front_end_rule_fires_at_the_first_breach_within_the_recording() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    values = [0.10, 0.11, 0.09, 0.10] * 15 + [0.10, 0.35, 0.40, 0.40]
    front = _front(values)
    recorded = (start + timedelta(minutes=59), start + timedelta(minutes=63))
    assert nezha.alert_onset(front, *recorded) == (
        start + timedelta(minutes=61),
        "FrontendLatencyHigh",
    )
    # The same breach outside the recording fires nothing: the search does not reach past it.
    assert (
        nezha.alert_onset(front, start + timedelta(minutes=50), start + timedelta(minutes=60))
        is None
    )
    # An hour of the same level: nothing breaches its own history.
    assert nezha.alert_onset(_front([0.4] * 64), *recorded) is None


def test_bench_rca_reports_intervals_telemetry_onsets_ablation_and_alerts_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = layout(tmp_path / "bench", FAULTS)
    assert main(["bench", "rca", "--json", str(root)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["cases"] == 2
    assert result["alerted"]["cases"] + result["no_alert"]["cases"] == 2
    assert set(result["telemetry"]) == {
        "metrics only",
        "metrics + traces",
        "metrics + logs",
        "all three",
    }
    assert set(result["onset_shift"]) == {"-2 min", "-1 min", "+1 min", "+2 min"}
    low, high = result["overall"]["interval"]["AC@1"]
    assert 0.0 <= low <= result["overall"]["AC@1"] <= high <= 100.0
    assert "cross_validated" not in result  # nothing is chosen on the cases: no grid to fit
    assert set(result["ablation"]) == {
        "metrics",
        "replicas",
        "log templates",
        "log paths",
        "spans",
        "edges",
    }
    assert [c["truth"] for c in result["per_case"]] == ["ts-contacts-service", "ts-basic-service"]
    assert main(["bench", "rca", str(root)]) == 0
    text = capsys.readouterr().out
    assert "telemetry a team has" in text and "metrics only" in text and "without edges" in text
    assert "onset moved" in text and "+2 min" in text


def test_bootstrap_intervals_resample_service_and_fault_groups() -> None:
    outcomes = [
        benchmark.Outcome("a", "delay", "x", ["x", "y"]),
        benchmark.Outcome("b", "delay", "x", ["x", "y"]),
        benchmark.Outcome("c", "cpu", "y", ["x", "y"]),
    ]
    interval = benchmark.intervals(outcomes)
    # Two groups: resamples hold {x,x}, {y} or both, so AC@1 spans 0 to 100 and AC@3 is 100.
    assert interval["AC@1"] == [0.0, 100.0]
    assert interval["AC@3"] == [100.0, 100.0]
    assert benchmark.intervals(outcomes) == interval  # seeded: the same run, the same figures


def test_bench_rca_finds_both_faults_first_on_the_whole_cases(tmp_path: Path) -> None:
    """The ranking on the whole cases (the command's report is tested on the extract above;
    here only the defaults' rankings, without the re-analyses of the matrix and the shifts)."""
    dataset = optional.require(optional.NEZHA_DATASET)
    outcomes = benchmark.run(layout(tmp_path / "bench", FAULTS, source=dataset))
    assert [o.truth for o in outcomes] == ["ts-contacts-service", "ts-basic-service"]
    # Both are found first: a delayed pod by its edges, a starved one by its edges and CPU.
    assert [o.ranking.index(o.truth) + 1 for o in outcomes] == [1, 1]


def test_bench_rca_on_a_folder_that_is_not_the_layout_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "rca", str(tmp_path)]) == 1
    assert "no rca_data/ directory" in capsys.readouterr().err


def test_an_onset_shift_moves_every_window_and_keeps_the_fault_free_minute_before_them(
    tmp_path: Path,
) -> None:
    root = layout(tmp_path / "shift", FAULTS[:1])
    (plain,) = nezha.cases(root)
    for minutes in (-2, 2):
        (moved,) = nezha.cases(root, onset_shift=timedelta(minutes=minutes))
        assert moved.windows.onset - plain.windows.onset == timedelta(minutes=minutes)
        assert moved.windows.incident_start - plain.windows.incident_start == timedelta(
            minutes=minutes
        )
        # The day's fault-free minute is baseline, never inside the incident window.
        normal = span_rows()
        before = moved.telemetry.spans["start"] < moved.windows.baseline_end
        # Earlier: only the fault-free minute is baseline. Later: the baseline also takes in
        # the first of the recording, as a late onset would.
        assert (before.sum() == normal > 0) if minutes < 0 else (before.sum() > normal > 0)


@pytest.mark.parametrize(
    "removed",
    [
        "rca_data/{day}/metric",
        "rca_data/{day}/metric/front_service.csv",
        "rca_data/{day}/log",
        "rca_data/{day}/trace",
        "construct_data/{day}/log",
        "construct_data/{day}/trace",
    ],
)
def test_any_part_of_a_day_may_be_missing(tmp_path: Path, removed: str) -> None:
    """Whatever part of a day's recording is absent, the case is analysed on the rest and
    ranked; the ranking is empty only when nothing deviated."""
    root = layout(tmp_path / "cut", FAULTS[:1], copy=("metric", "log", "trace"))
    normal = root / "construct_data" / DAY
    normal.unlink()
    shutil.copytree(EXTRACT / "construct_data" / DAY, normal)
    target = root / removed.format(day=DAY)
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    problems = Problems()
    (case,) = nezha.cases(root, problems)
    evidence = benchmark._safe_collect(case, problems)
    assert not any("scored as a miss" in r for rs in problems.reasons.values() for r in rs)
    outcome = benchmark.Collected(case, evidence).outcome(benchmark.DEFAULT)
    # Empty only when nothing deviated (the extract's few spans, without metrics, show none).
    assert bool(outcome.ranking) == any(evidence.values())
    assert outcome.ranking or removed == "rca_data/{day}/metric"
