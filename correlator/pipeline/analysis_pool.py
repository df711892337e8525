"""Where the analysis runs: off the event loop, at most N at a time, each within a time limit.

The analysis is CPU-bound pandas/numpy/Python and holds the GIL most of the time: measured on
2 cores, four analyses took as long on two threads as one after another (1.0x), and 1.8x less
on two processes, pickling the telemetry included. So by default it runs in a pool of worker
processes (spawned, not forked: the server has threads).

An analysis past its limit is stopped: its worker is killed (a process pool cannot stop one
task, so the pool goes with it) and `AnalysisTimeout` says so; the analyses that shared the
pool run again once in a new one. A pool that breaks otherwise (a worker killed, out of memory)
is started again the same way. The analysis never falls back to a thread inside the server,
where a runaway one would take the event loop's CPU. On threads (`queue.analysis_pool:
thread`) the limit is enforced on the answer only: a thread cannot be killed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Literal, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class AnalysisTimeout(Exception):
    """The analysis ran past its wall-clock limit and was stopped."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"the analysis was stopped after {limit_s:g} s (queue.analysis_timeout_s)")
        self.limit_s = limit_s


class AnalysisPool:
    def __init__(
        self, kind: Literal["process", "thread"], workers: int, *, timeout_s: float = 60.0
    ) -> None:
        self.kind = kind
        self.workers = workers
        self.timeout_s = timeout_s
        self._processes: ProcessPoolExecutor | None = None
        self._threads: ThreadPoolExecutor | None = None

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            context = multiprocessing.get_context("spawn")
            self._processes = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._processes

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="analysis")
        return self._threads

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` in the pool; raises AnalysisTimeout past the limit, and
        BrokenProcessPool if a new pool breaks too."""
        loop = asyncio.get_running_loop()
        if self.kind == "thread":
            work = loop.run_in_executor(self._thread_pool(), function, *args)
            try:
                return await asyncio.wait_for(work, self.timeout_s)
            except TimeoutError:
                raise AnalysisTimeout(self.timeout_s) from None
        for attempt in (1, 2):
            pool = self._process_pool()
            try:
                work = asyncio.wrap_future(pool.submit(function, *args))
                return await asyncio.wait_for(work, self.timeout_s)
            except TimeoutError:
                log.warning("an analysis ran past %g s: its process is killed", self.timeout_s)
                self._kill(pool)
                raise AnalysisTimeout(self.timeout_s) from None
            except BrokenProcessPool:
                self._kill(pool)
                if attempt == 2:
                    raise
                log.warning("the analysis process pool broke; this analysis runs in a new one")
        raise AssertionError("unreachable")

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        """Kill every worker of `pool` (the analyses in it see BrokenProcessPool)."""
        if self._processes is pool:
            self._processes = None
        for process in list((pool._processes or {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        pools: list[Executor | None] = [self._processes, self._threads]
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._processes = self._threads = None
