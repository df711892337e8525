"""Incident bundles: the offline analysis (`correlator analyze`) and the online pipeline over
the same incident loaded into real Prometheus and the Loki and Jaeger test servers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from correlator.analysis.evidence import analyse
from correlator.pipeline import Pipeline
from correlator.rca.bundle import BundleError, load
from correlator.settings import load_settings
from correlator.signals import RECORDED_LABELS, recorded_signals
from tests.fakes.jaeger import FakeJaeger
from tests.fakes.loki import FakeLoki
from tests.support.bundles import SIGNALS, load_into, write_bundle
from tests.support.processes import Prometheus, run_cli
from tests.support.scenarios import scenarios
from tests.support.servers import served

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("bundles")
    return [write_bundle(s, NOW, root / f"case{i}") for i, s in enumerate(scenarios(NOW))]


@pytest.mark.parametrize("case", [0, 1, 2])
async def test_online_and_offline_agree_on_the_same_incident(
    bundles: list[Path], case: int, tmp_path: Path
) -> None:
    bundle = bundles[case]
    offline = load(bundle)
    truth = json.loads((bundle / "truth.json").read_text())["service"]
    offline_result = analyse(offline.telemetry, offline.windows)
    loki, jaeger = FakeLoki(), FakeJaeger()
    metrics = load_into(bundle, loki, jaeger)
    prometheus = Prometheus(tmp_path, rule_files=[], openmetrics=metrics).start()
    try:
        async with served(loki.app) as loki_url, served(jaeger.app) as jaeger_url:
            settings = load_settings(
                prometheus={"url": prometheus.url},
                loki={"url": loki_url},
                jaeger={"url": jaeger_url, "max_traces": 1500},
            )
            pipeline = Pipeline(settings, signals=recorded_signals(SIGNALS), labels=RECORDED_LABELS)
            alert = offline.alert.alerts[0].labels
            try:
                telemetry, fetch, services = await pipeline.gather(
                    [alert["destination_workload"]],
                    [alert["destination_workload_namespace"]],
                    offline.windows,
                )
            finally:
                await pipeline.close()
    finally:
        prometheus.stop()
    assert fetch.missing == []
    online_result = analyse(telemetry, offline.windows)
    assert offline_result.ranking()[0] == truth
    assert online_result.ranking()[0] == truth
    assert online_result.ranking()[:3] == offline_result.ranking()[:3]
    assert set(services) == set(offline.telemetry.services())


async def test_analyze_prints_the_ranking(bundles: list[Path]) -> None:
    code, out, err = await run_cli("analyze", str(bundles[2]))
    assert code == 0, err
    assert out.splitlines()[1].startswith(" 1. orders-db")
    code, out, err = await run_cli("analyze", "--json", str(bundles[0]))
    assert code == 0, err
    report = json.loads(out)
    assert report["suspects"][0]["service"] == "payments"
    assert report["truth"] == {"service": "payments"}
    assert any(e["trace_ids"] for e in report["suspects"][0]["evidence"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("alert.json", "{", "alert.json: line 1: Expecting property name"),
        ("alert.json", '{"version": "4"}', "alert.json: "),
        ("metrics.om", "error_ratio 1\n# EOF\n", "metrics.om: sample error_ratio has no timestamp"),
        ("metrics.om", "this is not }{ openmetrics", "metrics.om: not OpenMetrics text"),
        ("logs.jsonl", '{"time": 1, "labels": {}}\n', "logs.jsonl: line 1: expected an object"),
        ("logs.jsonl", '{"time": "yesterday", "line": "x"}\n', "logs.jsonl: line 1: 'yesterday'"),
        ("traces.json", '{"spans": []}', "traces.json: neither OTLP JSON nor Jaeger JSON"),
        ("traces.json", '{"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]}', "traces.json"),
        ("bundle.json", '{"signals": {"x": {"worse_when": "sideways"}}}', "worse_when"),
        ("bundle.json", "[]", "bundle.json: expected an object"),
    ],
)
def test_a_malformed_bundle_is_a_precise_error(
    bundles: list[Path], tmp_path: Path, name: str, content: str, message: str
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in bundles[0].iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / name).write_text(content)
    with pytest.raises(BundleError, match=None) as caught:
        load(broken)
    assert message in str(caught.value)


async def test_analyze_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    code, _, err = await run_cli("analyze", str(tmp_path / "missing"))
    assert code == 1 and "not a directory" in err
    code, _, err = await run_cli("analyze", str(tmp_path))
    assert code == 1 and "no alert.json" in err
    (tmp_path / "alert.json").write_bytes(b"\xff\xfe")
    code, _, err = await run_cli("analyze", str(tmp_path))
    assert code == 1 and "alert.json: not UTF-8" in err


@pytest.mark.parametrize(
    "removed",
    [("logs.jsonl", "traces.json"), ("metrics.om",), ("logs.jsonl", "traces.json", "metrics.om")],
)
async def test_analyze_takes_a_bundle_with_sources_missing(
    bundles: list[Path], tmp_path: Path, removed: tuple[str, ...]
) -> None:
    """A team without tracing or logs (or a bundle cut short) is analysed on what there is,
    and the report says what was missing; nothing at all is 'no service left its baseline'."""
    import shutil

    bundle = shutil.copytree(bundles[2], tmp_path / "cut")
    for name in removed:
        (bundle / name).unlink()
    code, out, err = await run_cli("analyze", "--json", str(bundle))
    assert code == 0, err
    report = json.loads(out)
    kinds = {"logs.jsonl": "logs", "traces.json": "traces", "metrics.om": "metrics"}
    assert {f"no {kinds[n]} in the analysed windows" for n in removed} <= set(report["notes"])
    if len(removed) < 3:
        assert report["suspects"] and "orders-db" in [s["service"] for s in report["suspects"]]
    else:
        assert report["suspects"] == []
