"""Where the analysis runs: off the event loop, at most N at a time, each within a time limit.

The analysis is CPU-bound pandas/numpy/Python and holds the GIL most of the time: measured on
2 cores, four analyses took as long on two threads as one after another (1.0x), and 1.8x less
on two processes, pickling the telemetry included. So by default it runs in a pool of worker
processes (spawned, not forked: the server has threads), started with the service (`warm`).
Reading Prometheus' answers into frames runs there too (`pipeline/frames.py`).

An analysis past its limit is stopped: its worker is killed (a process pool cannot stop one
task, so the pool goes with it) and `AnalysisTimeout` says so; the analyses that shared the
pool run again once in a new one. A pool that breaks otherwise (a worker killed, out of memory)
is started again the same way. The analysis never falls back to a thread inside the server,
where a runaway one would take the event loop's CPU. On threads (`queue.analysis_pool:
thread`) the limit is enforced on the answer only: a thread cannot be killed.

The serving loop comes first: the workers run at a lower CPU priority, at most N analyses are
handed to the pool at a time (the others wait on the event loop, not pickled, and their time
limit starts when they run), and a worker ends when the server dies, even by SIGKILL
(`correlator/lifetime.py`), rather than idling on as an orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess
from typing import Literal, TypeVar

from correlator.lifetime import die_with_parent

log = logging.getLogger(__name__)
T = TypeVar("T")

# Nice 10 over the server's: on a busy machine an analysis gets about a tenth of the CPU the
# serving loop gets, so acknowledging a notification stays fast while reports wait a little.
WORKER_NICENESS = 10
# What the workers' tasks run: the analysis, reading metric answers, packing kept inputs. None
# of them imports the service's HTTP clients or its store (tests/pipeline/test_analysis_pool.py).
WORKER_MODULES = (
    "correlator.analysis.evidence",
    "correlator.pipeline.frames",
    "correlator.rca.frames",
)


def _start_worker(server_pid: int) -> None:
    """Each worker's initializer: a lower priority, an end with its server, and what every
    task imports loaded once and kept out of the collector (`gc.freeze`): an analysis makes
    many objects, and each full collection walked every module's too."""
    _lower_priority(WORKER_NICENESS)
    # SIGKILL: a worker holds nothing to flush, and no handler a library sets can keep it.
    die_with_parent(server_pid, signum=signal.SIGKILL)
    for module in WORKER_MODULES:
        importlib.import_module(module)
    gc.freeze()


def _lower_priority(niceness: int) -> None:
    """Nice this process by `niceness`, every thread of it: on Linux niceness is per thread, and
    the threads numpy's BLAS started on import (before this initializer) would keep the old."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no os.nice (Windows)
        target = os.nice(niceness)
        threads = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []
        for thread in threads:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.setpriority(os.PRIO_PROCESS, int(thread), target)


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
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            context = multiprocessing.get_context("spawn")
            self._processes = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        return self._processes

    def warm(self) -> None:
        """Start every worker process now, without waiting for them: spawning one and its
        imports takes seconds, which the first analysis (and reading its metric answers, within
        its correlation) would otherwise wait for."""
        if self.kind == "process":
            pool = self._process_pool()
            for _ in range(self.workers):  # each submit spawns a worker while none is idle
                pool.submit(os.getpid)

    def _in_flight(self) -> asyncio.Semaphore:
        """At most `workers` analyses handed to the pool at once (one semaphore per loop)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.workers))
        return self._slots[1]

    def saturated(self) -> bool:
        """Every slot is taken: an analysis handed over now would wait for one."""
        return self._in_flight().locked()

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="analysis")
        return self._threads

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` in the pool once a slot is free; raises AnalysisTimeout past the
        limit, and BrokenProcessPool if a new pool breaks too."""
        async with self._in_flight():
            return await self._run(function, *args)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
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
                # The workers as they are now (submit spawned any it needed): the executor
                # may drop one from its own table before a timeout, and it must die too.
                workers = list((pool._processes or {}).values())
                return await asyncio.wait_for(work, self.timeout_s)
            except TimeoutError:
                log.warning("an analysis ran past %g s: its process is killed", self.timeout_s)
                self._kill(pool, also=workers)
                raise AnalysisTimeout(self.timeout_s) from None
            except BrokenProcessPool:
                self._kill(pool)
                if attempt == 2:
                    raise
                log.warning("the analysis process pool broke; this analysis runs in a new one")
        raise AssertionError("unreachable")

    def _kill(self, pool: ProcessPoolExecutor, *, also: Sequence[BaseProcess] = ()) -> None:
        """Kill every worker of `pool`, and `also` (the analyses in it see BrokenProcessPool)."""
        if self._processes is pool:
            self._processes = None
        for process in {*list((pool._processes or {}).values()), *also}:
            if process.is_alive():
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        pools: list[Executor | None] = [self._processes, self._threads]
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._processes = self._threads = None
