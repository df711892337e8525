"""SQLite's one writer thread, which takes the intake's transactions before the others.

SQLite has one writer at a time, so the store runs every write transaction on one thread. With
a plain FIFO executor, a notification's group commit queued behind whatever the queue
consumers asked first (claims, reports, outbox rows), and its acknowledgement waited for all of
them. Here an urgent transaction (the intake's) waits at most for the one under way.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

URGENT, NORMAL, STOP = 0, 1, 2


class PriorityWriter(Executor):
    """A one-thread executor: urgent work first, then the rest, each in submission order."""

    def __init__(self, name: str) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(NORMAL, fn, args, kwargs)

    def submit_urgent(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        return self._put(URGENT, fn, args, {})

    def _put(
        self, priority: int, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.put((priority, next(self._order), (future, fn, args, kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Run what was submitted (unless `cancel_futures`), then end the thread."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._queue.put((STOP, next(self._order), None))
        if cancel_futures:
            self._drain()
        if wait:
            self._thread.join()

    def _drain(self) -> None:
        pending = []
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for priority, order, item in pending:
            if item is None:
                self._queue.put((priority, order, item))
            else:
                item[0].cancel()

    def _work(self) -> None:
        while True:
            _, _, item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the waiting caller, as executors do
                future.set_exception(exc)
            else:
                future.set_result(result)
