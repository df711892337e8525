"""Where the analysis runs: off the event loop, at most N at a time.

The analysis is CPU-bound pandas/numpy/Python and holds the GIL most of the time: measured on
2 cores, four analyses took as long on two threads as one after another (1.0x), and 1.8x less
on two processes, pickling the telemetry included. So by default it runs in a pool of worker
processes (spawned, not forked: the server has threads). A pool that breaks (a worker killed,
out of memory) costs the analyses in it one run on a thread, and is started again.
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


class AnalysisPool:
    def __init__(self, kind: Literal["process", "thread"], workers: int) -> None:
        self.kind = kind
        self.workers = workers
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
        loop = asyncio.get_running_loop()
        if self.kind == "thread":
            return await loop.run_in_executor(self._thread_pool(), function, *args)
        try:
            return await loop.run_in_executor(self._process_pool(), function, *args)
        except BrokenProcessPool:
            log.warning("the analysis process pool broke; this analysis runs on a thread")
            broken, self._processes = self._processes, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            return await loop.run_in_executor(self._thread_pool(), function, *args)

    def close(self) -> None:
        pools: list[Executor | None] = [self._processes, self._threads]
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._processes = self._threads = None
