"""The process's background loops, watched: one that ends before shutdown is fatal.

Each loop (work-queue consumers, outbox deliverers, provisioning) survives refusals of the
store and of the network on its own. If one ends anyway (a bug), the process cannot do its
whole job any more: `/readyz` says which loop died, and `correlator serve` exits
non-zero so that the orchestrator restarts it. `/readyz`, which answers without credentials,
names the loop only; why it died (an exception's text may hold hosts or users) is in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Loops:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []
        self.died: list[str] = []  # "name: why", for the log and the exit message
        self.dead: list[str] = []  # names only: /readyz is unauthenticated
        self.fatal = asyncio.Event()
        self.stopping = False
        # When the shutdown budget runs out (event-loop time), once shutdown has begun: every
        # step after it (requests, intake, workers, store) shares what is left.
        self.shutdown_deadline: float | None = None

    def start(self, name: str, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(loop, name=name)
        task.add_done_callback(self._ended)
        self.tasks.append(task)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self.stopping or task.cancelled():  # only shutdown cancels a loop
            return
        error = task.exception()
        why = repr(error) if error else "returned"
        log.critical(
            "background loop %s ended: %s; the process must restart",
            task.get_name(),
            why,
            exc_info=error,
        )
        self.died.append(f"{task.get_name()}: {why}")
        self.dead.append(task.get_name())
        self.fatal.set()
