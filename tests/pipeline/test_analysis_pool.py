"""The analysis runs in a pool of worker processes by default: the same result as in this
process; a pool that breaks is started again (never a thread in the server); an analysis past
its wall-clock limit is killed, and its report says so."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from correlator.analysis.evidence import analyse
from correlator.models.incidents import IncidentDetail
from correlator.pipeline import Pipeline
from correlator.pipeline.analysis_pool import AnalysisPool, AnalysisTimeout
from correlator.pipeline.frames import RangeAnswer, metric_frames
from correlator.rca.bundle import load
from correlator.settings import load_settings
from correlator.signals import ServiceLabels
from tests.pipeline.test_children_die import alive
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
        assert again.ranking() == here.ranking()  # in a new pool of processes
        assert pool._processes is not None and pool._processes._processes is not workers
        assert await pool.run(os.getpid) != os.getpid()  # not on a thread in this process
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


def _stuck(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def test_an_analysis_past_its_limit_is_killed_and_the_others_run_again() -> None:
    pool = AnalysisPool("process", 2, timeout_s=8)
    try:
        assert await pool.run(_stuck, 0) != os.getpid()  # the pool is warm
        workers = dict(pool._processes._processes)  # type: ignore[union-attr]
        stuck = asyncio.ensure_future(pool.run(_stuck, 3600))
        await asyncio.sleep(0.5)
        innocent = asyncio.ensure_future(pool.run(_stuck, 0.5))
        with pytest.raises(AnalysisTimeout, match="stopped after 8 s"):
            await stuck
        # Killed, not left running: every process of that pool is gone. Asked of the system,
        # not of `Process.is_alive()`: that says "alive" for ever once anything else in this
        # process has reaped the child (it cannot tell that from not exited yet).
        for process in workers.values():
            process.join(10)
            deadline = time.monotonic() + 10
            while alive(process.pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not alive(process.pid), process
        # The analysis that shared the pool ran again in a new one, not in this process.
        assert await innocent != os.getpid()
    finally:
        pool.close()


async def test_a_correlation_whose_analysis_is_too_slow_reports_without_a_ranking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("correlator.pipeline.collecting.analyse_collected", lambda *args: _stuck(2))
    settings = load_settings(queue={"analysis_pool": "thread", "analysis_timeout_s": 0.5})
    pipeline = Pipeline(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        incident = IncidentDetail.model_construct(id=7, alerts=[], common_labels={})
        body = await pipeline._correlate(
            incident, ["api"], ["shop"], now - timedelta(minutes=5), now
        )
    finally:
        await pipeline.close()
    (missing,) = [m for m in body.missing if m.backend == "analysis"]
    assert missing.reason == "the analysis was stopped after 0.5 s (queue.analysis_timeout_s)"
    assert body.suspects == []


async def test_warming_starts_every_worker_before_the_first_analysis() -> None:
    """`correlator serve` warms its pool on start: the first alert's analysis (and the reading
    of its metric answers) does not wait seconds for processes to spawn and import."""
    pool = AnalysisPool("process", 2)
    try:
        pool.warm()
        workers = list((pool._processes._processes or {}).values()) if pool._processes else []
        assert len(workers) == 2 and all(w.is_alive() for w in workers)
        pids = {await pool.run(os.getpid) for _ in range(4)}
        assert pids <= {w.pid for w in workers}  # no process spawned for the tasks
    finally:
        pool.close()


# Evaluated in the worker (a function of this module would import this module, and with it
# everything a test imports).
HEAVY_MODULES = (
    "sorted(m for m in ('httpx', 'sqlalchemy', 'aiohttp', 'asyncpg') "
    "if m in __import__('sys').modules)"
)


async def test_a_worker_imports_no_http_client_and_no_store() -> None:
    """The workers run the analysis, read metric answers and pack kept inputs: each of them
    imports what it uses (pure modules), not the serving process's I/O stack, whose imports
    cost every worker's start and memory."""
    pool = AnalysisPool("process", 1)
    try:
        answer = RangeAnswer("cpu", ("api",), ServiceLabels(), b'{"status":"success"}')
        assert (await pool.run(metric_frames, [answer])).unusable
        assert await pool.run(eval, HEAVY_MODULES) == []
    finally:
        pool.close()
