"""At most `workers` analyses are handed to the process pool at once; the others wait on the
event loop, and an analysis's time limit starts when it runs, not while it waits its turn."""

from __future__ import annotations

import asyncio
import os
import time

from correlator.pipeline.analysis_pool import AnalysisPool


def _slow(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def test_an_analysis_waiting_for_a_worker_is_not_stopped_by_the_limit() -> None:
    # One worker, two analyses of 2 s each under a 3.5 s limit: the second waits 2 s for the
    # worker. Counted from its hand-over it would run past the limit (4 s) and kill the pool.
    # Each has 1.5 s to spare for its niced worker to be scheduled on a loaded machine (with
    # 1 s, a run beside two other CPU-bound jobs on two cores was stopped).
    pool = AnalysisPool("process", 1, timeout_s=3.5)
    try:
        worker = await pool.run(_slow, 0)  # the pool is warm: starting a worker is not timed
        first = asyncio.ensure_future(pool.run(_slow, 2))
        second = asyncio.ensure_future(pool.run(_slow, 2))
        await asyncio.sleep(0.5)
        assert pool._processes is not None
        assert len(pool._processes._pending_work_items) == 1  # the second waits on the loop
        assert await asyncio.gather(first, second) == [worker, worker]  # never killed
    finally:
        pool.close()
