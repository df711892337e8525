"""The process's background loops, watched: one that ends before shutdown is fatal.

Each loop (work-queue consumers, outbox deliverers, provisioning) survives refusals of the
store and of the network on its own. If one ends anyway (a bug), the process cannot do its
whole job any more: `/readyz` says which loop died and why, and `correlator serve` exits
non-zero so that the orchestrator restarts it.
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
        self.died: list[str] = []
        self.fatal = asyncio.Event()
        self.stopping = False

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
        self.fatal.set()
