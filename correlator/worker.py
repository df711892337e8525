"""Consumers of the durable work queue: claim, run the handler, record the outcome.

The handler is what the work is (the correlation pipeline plugs in here). A temporary failure
is retried with exponential backoff; a permanent one, or too many attempts, gives the item up
with its error recorded. While the handler runs, the lease is renewed so that no other
replica takes the item over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from opentelemetry import trace

from correlator.backoff import Backoff
from correlator.errors import PermanentError, StoreUnavailable
from correlator.metrics import Metrics
from correlator.settings import QueueSettings
from correlator.store import Store, WorkItem

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

WorkHandler = Callable[[WorkItem], Awaitable[None]]


async def acknowledge(item: WorkItem) -> None:
    """The handler until the correlation pipeline exists: the item is simply done."""


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """One consumer loop; run several for concurrency."""

    def __init__(
        self,
        store: Store,
        settings: QueueSettings,
        metrics: Metrics,
        handler: WorkHandler = acknowledge,
        *,
        owner: str | None = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._handler = handler
        self.owner = owner or worker_identity()
        self.wake = wake or asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        """Finish the current step, then return from run(). Cancelling instead could cut a
        database operation in half and leave its connection unusable."""
        self._stopping = True
        self.wake.set()

    async def run(self) -> None:
        """Claim and process until stopped. A store that refuses is waited out with backoff
        (cut short by a notification stored meanwhile): the loop never ends on a refusal."""
        backoff = Backoff()
        while not self._stopping:
            try:
                item = await self._store.claim_work(
                    owner=self.owner, lease_s=self._settings.lease_s
                )
            except StoreUnavailable as exc:
                log.warning("cannot claim work", extra={"error": str(exc)})
                await self._idle(backoff.next_delay_s())
                continue
            backoff.reset()
            if item is None:
                await self._idle(self._settings.poll_interval_s)
                continue
            await self.process(item)

    async def _idle(self, seconds: float) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        self.wake.clear()

    async def process(self, item: WorkItem) -> None:
        """Run the handler for a claimed item and record done, retry or give-up."""
        with tracer.start_as_current_span(
            "work_item",
            attributes={
                "correlator.work_item.id": item.id,
                "correlator.work_item.kind": item.kind,
                "correlator.incident.id": item.incident_id,
                "correlator.work_item.attempt": item.attempts,
            },
        ) as span:
            keep_alive = asyncio.create_task(self._heartbeat(item))
            try:
                await self._handler(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                span.record_exception(exc)
                await self._failed(item, exc)
            else:
                await self._record(self._store.complete_work(item_id=item.id, owner=self.owner))
                self._metrics.work_items.labels("done").inc()
            finally:
                keep_alive.cancel()

    async def _failed(self, item: WorkItem, exc: Exception) -> None:
        give_up = isinstance(exc, PermanentError) or item.attempts >= self._settings.max_attempts
        delay_s = min(
            self._settings.retry_max_s, self._settings.retry_base_s * 2 ** (item.attempts - 1)
        )
        retry_at = None if give_up else self._store.clock() + timedelta(seconds=delay_s)
        error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "work item failed",
            extra={
                "work_item": item.id,
                "attempt": item.attempts,
                "give_up": give_up,
                "error": error,
            },
        )
        await self._record(
            self._store.fail_work(item_id=item.id, owner=self.owner, error=error, retry_at=retry_at)
        )
        self._metrics.work_items.labels("given_up" if give_up else "retried").inc()

    async def _record(self, outcome: Awaitable[bool]) -> None:
        # If the outcome cannot be written the lease expires and the item runs again:
        # at-least-once, which is why handlers are idempotent.
        try:
            if not await outcome:
                log.warning("work item lease was lost before its outcome was recorded")
        except StoreUnavailable as exc:
            log.error("cannot record work item outcome", extra={"error": str(exc)})

    async def _heartbeat(self, item: WorkItem) -> None:
        interval_s = self._settings.lease_s / 3
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._store.heartbeat_work(
                    item_id=item.id, owner=self.owner, lease_s=self._settings.lease_s
                )
            except StoreUnavailable as exc:
                log.warning("cannot renew work item lease", extra={"error": str(exc)})
