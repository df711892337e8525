"""Acknowledging a notification comes first: background work yields the event loop to it.

The intake, the queue consumers and the pipeline share one event loop. A request's way from
its body to its acknowledgement takes several turns of the loop (read, parse, the writer's
transaction, the answer), and on each it waits behind whatever else is ready: under a backlog,
every consumer's next store call and the Python around it. Measured at 200 notifications/s
with the work queue draining a backlog, that made the p99 acknowledgement several times the
intake's own.

So background work asks for its turn before each store call (`Store` does, for work marked
`in_background`): while a notification is being received, it waits until none is, for at most
`max_wait_s`, so that a flood of notifications slows the consumers down but never stops them.
What is already running finishes: a transaction is never held open waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar

_BACKGROUND: ContextVar[bool] = ContextVar("correlator_background", default=False)


def mark_background() -> None:
    """Mark the current task (and the tasks it starts) as background work."""
    _BACKGROUND.set(True)


def in_background() -> bool:
    return _BACKGROUND.get()


class ServingFirst:
    """Counts notifications being received; background work waits for none to be."""

    def __init__(self, *, max_wait_s: float = 0.2, recent_s: float = 1.0) -> None:
        self.max_wait_s = max_wait_s
        self.recent_s = recent_s
        self.serving = 0
        self.waits = 0  # background turns that had to wait (for tests and metrics)
        self._idle: asyncio.Event | None = None
        self._one: asyncio.Lock | None = None
        self._last_served = -float("inf")

    def _event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            self._idle.set()
        return self._idle

    @contextlib.contextmanager
    def receiving(self) -> Iterator[None]:
        """Hold while a notification is received, stored and acknowledged."""
        self.serving += 1
        self._event().clear()
        try:
            yield
        finally:
            self.serving -= 1
            self._last_served = time.monotonic()
            if self.serving == 0:
                self._event().set()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold around one store call of background work: entered once no notification is
        being received (or after `max_wait_s`), and while notifications came in the last
        `recent_s`, one background call at a time; at once for anything else."""
        recently = self.serving or time.monotonic() - self._last_served < self.recent_s
        if not in_background() or not recently:
            yield
            return
        if self._one is None:
            self._one = asyncio.Lock()
        async with self._one:
            await self._quiet()
            yield

    async def _quiet(self) -> None:
        """Until no notification is being received, or `max_wait_s`."""
        if not self.serving:
            return
        self.waits += 1
        deadline = time.monotonic() + self.max_wait_s
        while self.serving and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event().wait(), left)
            await asyncio.sleep(0)  # a request that arrived meanwhile starts first
