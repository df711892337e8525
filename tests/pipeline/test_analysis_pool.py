"""The analysis runs in a pool of worker processes by default: the same result as in this
process, and a pool that breaks costs one analysis on a thread, then starts again."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from correlator.analysis.report import analyse
from correlator.pipeline.analysis_pool import AnalysisPool
from correlator.rca.bundle import load
from tests.support.bundles import write_bundle
from tests.support.scenarios import scenarios


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    return write_bundle(scenarios(now)[1], now, tmp_path_factory.mktemp("pool") / "case")


async def test_a_process_analyses_as_this_process_does_and_survives_a_broken_pool(
    bundle: Path,
) -> None:
    loaded = load(bundle)
    here = analyse(loaded.telemetry, loaded.windows)
    pool = AnalysisPool("process", 2)
    try:
        there = await pool.run(analyse, loaded.telemetry, loaded.windows)
        assert there.ranking() == here.ranking() and there.ranking()[0] == "search"
        assert [s.reason for s in there.suspects] == [s.reason for s in here.suspects]
        workers = pool._processes._processes  # type: ignore[union-attr]
        assert workers and all(p.pid != os.getpid() for p in workers.values())
        for process in list(workers.values()):
            os.kill(process.pid, signal.SIGKILL)  # out of memory, say
        again = await pool.run(analyse, loaded.telemetry, loaded.windows)
        assert again.ranking() == here.ranking()  # on a thread this once
        assert pool._processes is None
        restarted = await pool.run(analyse, loaded.telemetry, loaded.windows)
        assert restarted.ranking() == here.ranking() and pool._processes is not None
    finally:
        pool.close()


async def test_threads_when_asked(bundle: Path) -> None:
    loaded = load(bundle)
    pool = AnalysisPool("thread", 1)
    try:
        result = await pool.run(analyse, loaded.telemetry, loaded.windows)
        assert result.ranking()[0] == "search" and pool._processes is None
    finally:
        pool.close()
