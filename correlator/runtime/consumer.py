"""One consumer of a leased queue: claim, run, renew the lease meanwhile, record the outcome.

The work queue (correlations) and the outbox (deliveries to sinks) are both durable queues
whose rows are claimed under a lease. What differs between them is what running an item
means and which rows record the outcome: that is a `LeasedQueue` (see `runtime/queues.py`).
What they share is here, once:

- **Claiming.** An idle consumer waits for its wake event (set by whatever stored new
  items) or the queue's poll interval (items of other replicas). A store that refuses a
  claim is waited out with backoff: the loop never ends on a refusal.
- **The lease.** While an item runs, its lease is renewed every third of its length, so no
  other replica takes it over; a consumer that dies holding it is replaced after the lease.
- **Errors.** One tree (`correlator.errors`): a `PermanentError` gives the item up, any
  other error retries it after the one backoff (`backoff.retry_delay_s`), never sooner than
  a `TemporaryError`'s `delay_s` (a platform's Retry-After). So does a bug, logged with its
  traceback. After `max_attempts` the item is given up. Error text is masked before it is
  stored or logged: an error may quote a URL with its credentials.
- **Recording.** An outcome that the store refuses to record is retried with backoff for as
  long as the lease would have lasted; after that the lease lapses and the item runs again
  (at least once: running an item is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry import trace

from correlator.backoff import Backoff, retry_delay_s
from correlator.errors import CorrelatorError, PermanentError, StoreUnavailable, TemporaryError
from correlator.priority import mark_background
from correlator.redaction import mask_text

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
ItemT = TypeVar("ItemT", contravariant=True)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    lease_s: float
    poll_interval_s: float
    max_attempts: int
    retry_base_s: float
    retry_max_s: float


class LeasedQueue(Protocol[Item, Result]):
    """A durable queue claimed under leases; see `runtime/queues.py` for the two there are."""

    kind: str  # what an item is called in logs and spans: "work item", "delivery"
    policy: RetryPolicy

    def now(self) -> datetime: ...

    def attempts(self, item: Item) -> int: ...

    def describe(self, item: Item) -> dict[str, Any]:
        """Attributes of the item for its span and log lines."""
        ...

    async def claim(self, owner: str) -> Item | None: ...

    async def renew(self, item: Item, owner: str) -> None: ...

    async def run(self, item: Item, owner: str) -> Result:
        """Do the item's work; raise to fail it (see the module docstring)."""
        ...

    async def complete(self, item: Item, owner: str, result: Result) -> None: ...

    async def fail(self, item: Item, owner: str, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt: due again at `retry_at`, or given up (None)."""
        ...

    def count(self, item: Item, outcome: str) -> None:
        """Count an outcome: "done", "retried" or "given_up"."""
        ...


def consumer_identity() -> str:
    """Who holds a lease: host, process and a per-consumer suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def record_durably(
    what: str,
    write: Callable[[], Awaitable[object]],
    *,
    lease_s: float,
    stopping: asyncio.Event | None = None,
) -> None:
    """Write an outcome, retrying a refusing store with backoff for as long as the lease would
    have lasted, or until `stopping` is set (shutdown: the process is about to go); after that
    the lease lapses and the item is tried again."""
    stopping = stopping or asyncio.Event()  # never set: the whole lease
    backoff = Backoff(base_s=min(0.5, lease_s / 8))
    deadline = time.monotonic() + lease_s
    while True:
        try:
            await write()
            return
        except StoreUnavailable as exc:
            delay_s = backoff.next_delay_s()
            if time.monotonic() + delay_s > deadline or stopping.is_set():
                log.error("cannot record %s; it will be retried", what, extra={"error": str(exc)})
                return
            log.warning("cannot record %s yet", what, extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay_s)


class Consumer(Generic[Item, Result]):
    """One consumer loop over a leased queue; run several for concurrency."""

    def __init__(
        self,
        queue: LeasedQueue[Item, Result],
        *,
        owner: str | None = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.queue = queue
        self.owner = owner or consumer_identity()
        self.wake = wake or asyncio.Event()
        self._stopped = asyncio.Event()  # also cuts a retried record short at shutdown

    def stop(self) -> None:
        """Finish the current item, then return from run(). Cancelling instead could cut a
        database operation in half and leave its connection unusable."""
        self._stopped.set()
        self.wake.set()

    async def run(self) -> None:
        """Claim and process until stopped."""
        mark_background()  # its store calls yield to notifications being received
        backoff = Backoff()
        while not self._stopped.is_set():
            try:
                item = await self.queue.claim(self.owner)
            except StoreUnavailable as exc:
                log.warning("cannot claim a %s", self.queue.kind, extra={"error": str(exc)})
                await self._idle(backoff.next_delay_s())
                continue
            backoff.reset()
            if item is None:
                await self._idle(self.queue.policy.poll_interval_s)
                continue
            await self.process(item)

    async def _idle(self, seconds: float) -> None:
        if self._stopped.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        self.wake.clear()

    async def process(self, item: Item) -> None:
        """Run a claimed item and record done, retry or give-up."""
        queue = self.queue
        attributes = queue.describe(item)
        with tracer.start_as_current_span(
            queue.kind.replace(" ", "_"), attributes=attributes
        ) as span:
            keep_alive = asyncio.create_task(self._renew(item), name=f"{queue.kind} lease")
            try:
                result = await queue.run(item, self.owner)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                span.record_exception(exc)
                await self._failed(item, exc)
            else:
                await record_durably(
                    f"the {queue.kind}",
                    lambda: queue.complete(item, self.owner, result),
                    lease_s=queue.policy.lease_s,
                    stopping=self._stopped,
                )
                queue.count(item, "done")
            finally:
                keep_alive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keep_alive

    async def _renew(self, item: Item) -> None:
        while True:
            await asyncio.sleep(self.queue.policy.lease_s / 3)
            try:
                await self.queue.renew(item, self.owner)
            except Exception as exc:  # the item runs on; a lease that lapses is taken over
                log.warning("cannot renew a %s's lease", self.queue.kind, extra={"error": str(exc)})

    async def _failed(self, item: Item, exc: Exception) -> None:
        queue, policy = self.queue, self.queue.policy
        attempts = queue.attempts(item)
        give_up = isinstance(exc, PermanentError) or attempts >= policy.max_attempts
        error = mask_text(str(exc) if isinstance(exc, CorrelatorError) else _named(exc))
        retry_at = None
        if not give_up:
            delay_s = retry_delay_s(attempts, policy.retry_base_s, policy.retry_max_s)
            if isinstance(exc, TemporaryError) and exc.delay_s is not None:
                delay_s = max(delay_s, exc.delay_s)  # never sooner than the other side asked
            retry_at = queue.now() + timedelta(seconds=delay_s)
        bug = not isinstance(exc, CorrelatorError)  # logged as an error, with its traceback
        log.log(
            logging.ERROR if bug else logging.WARNING,
            "%s failed",
            queue.kind,
            extra={**attributes_for_log(queue.describe(item)), "attempt": attempts,
                   "give_up": give_up, "error": error},
            exc_info=exc if bug else None,
        )  # fmt: skip
        await record_durably(
            f"a failed {queue.kind}",
            lambda: queue.fail(item, self.owner, error, retry_at),
            lease_s=policy.lease_s,
            stopping=self._stopped,
        )
        queue.count(item, "given_up" if give_up else "retried")


def _named(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def attributes_for_log(attributes: dict[str, Any]) -> dict[str, Any]:
    """Span attributes as log fields: `correlator.work_item.id` becomes `work_item_id`."""
    return {
        key.removeprefix("correlator.").replace(".", "_"): value
        for key, value in attributes.items()
    }
