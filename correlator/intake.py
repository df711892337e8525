"""Group commit for webhook notifications: many requests, one durable transaction.

Each request hands its validated notification to the writer and waits for the commit that
contains it. The writer drains whatever has queued up since the last commit into the next
transaction, so under load one fsync acknowledges many notifications, and at low load a
notification is committed alone without waiting for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from correlator.analysis.scope import NAMESPACE_LABELS
from correlator.errors import StoreRefused, StoreUnavailable
from correlator.metrics import Metrics
from correlator.models.incidents import IntakeResult, ReceivedNotification
from correlator.priority import ServingFirst
from correlator.store import Store
from correlator.store.work import QueuePolicy

log = logging.getLogger(__name__)

# A batch stops growing past this many alerts, so one huge group is not held up by others.
BATCH_ALERTS_MAX = 5000

_Pending = tuple[ReceivedNotification, "asyncio.Future[IntakeResult]"]


class IntakeWriter:
    """Serialises notification writes into batches; `submit` returns once durable."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        max_batch: int,
        namespaces: Sequence[str] = NAMESPACE_LABELS,
        policy: QueuePolicy | None = None,
    ) -> None:
        self._store = store
        self._namespaces = tuple(namespaces)
        self._policy = policy or QueuePolicy()
        self._metrics = metrics
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._accepting = True
        self.on_stored: list[asyncio.Event] = []
        # Held by the route from a notification's first byte to its answer: background work
        # yields the event loop meanwhile (correlator/priority.py).
        self.serving_first = ServingFirst()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="intake-writer")

    @property
    def waiting(self) -> int:
        """Notifications queued for the next commit (not counting the one being written)."""
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def submit(self, received: ReceivedNotification) -> IntakeResult:
        """Store one notification; raises StoreUnavailable if it is not durably stored (try
        again), StoreRefused if the database refuses its data (it never will store it)."""
        if not self._accepting or not self.alive:
            raise StoreUnavailable("the service is shutting down")
        future: asyncio.Future[IntakeResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((received, future))
        return await future

    async def close(self) -> None:
        """Refuse new notifications, commit the queued ones, then stop."""
        self._accepting = False
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _next_batch(self, first: _Pending) -> list[_Pending]:
        batch = [first]
        alerts = len(first[0].payload.alerts)
        while len(batch) < self._max_batch and alerts < BATCH_ALERTS_MAX:
            try:
                pending = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            batch.append(pending)
            alerts += len(pending[0].payload.alerts)
        return batch

    async def _run(self) -> None:
        while True:
            batch = self._next_batch(await self._queue.get())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        outcomes: list[IntakeResult | StoreUnavailable | StoreRefused]
        try:
            outcomes = list(
                await self._store.record_batch(
                    [received for received, _ in batch],
                    namespaces=self._namespaces,
                    policy=self._policy,
                )
            )
        except StoreUnavailable as exc:
            log.error(
                "could not store notifications", extra={"count": len(batch), "error": str(exc)}
            )
            outcomes = [exc] * len(batch)
        except Exception as exc:  # a bug must not kill the writer and with it all intake
            log.exception("unexpected error while storing notifications")
            outcomes = [StoreUnavailable(f"unexpected error: {type(exc).__name__}")] * len(batch)
        else:
            self._metrics.store_write_seconds.observe(time.perf_counter() - started)
            self._metrics.store_batch_size.observe(len(batch))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the request was cancelled; what was committed stays
                continue
            if isinstance(outcome, StoreUnavailable | StoreRefused):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if any(isinstance(outcome, IntakeResult) for outcome in outcomes):
            for event in self.on_stored:
                event.set()
