"""The two leased queues the consumer runs: correlations (work items) and deliveries (outbox).

Each says what running an item means and which rows record its outcome; claiming, leases,
errors, backoff and recording are the consumer's (`runtime/consumer.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from correlator.metrics import Metrics
from correlator.runtime.consumer import RetryPolicy, record_durably
from correlator.settings import NotifySettings, QueueSettings
from correlator.sinks.base import Sink, SinkRejected
from correlator.store import Store, WorkItem, outbox

log = logging.getLogger(__name__)

WorkHandler = Callable[[WorkItem], Awaitable[None]]


def _policy(settings: QueueSettings | NotifySettings, poll_interval_s: float) -> RetryPolicy:
    return RetryPolicy(
        lease_s=settings.lease_s,
        poll_interval_s=poll_interval_s,
        max_attempts=settings.max_attempts,
        retry_base_s=settings.retry_base_s,
        retry_max_s=settings.retry_max_s,
    )


class WorkQueue:
    """Work items: each runs the handler (the correlation pipeline) once it succeeds."""

    kind = "work item"

    def __init__(
        self, store: Store, settings: QueueSettings, metrics: Metrics, handler: WorkHandler
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.handler = handler
        self.policy = _policy(settings, settings.poll_interval_s)

    def now(self) -> datetime:
        return self.store.clock()

    def attempts(self, item: WorkItem) -> int:
        return item.attempts

    def describe(self, item: WorkItem) -> dict[str, Any]:
        return {
            "correlator.work_item.id": item.id,
            "correlator.work_item.kind": item.kind,
            "correlator.incident.id": item.incident_id,
            "correlator.work_item.attempt": item.attempts,
        }

    async def claim(self, owner: str) -> WorkItem | None:
        return await self.store.claim_work(owner=owner, lease_s=self.policy.lease_s)

    async def renew(self, item: WorkItem, owner: str) -> None:
        await self.store.heartbeat_work(item_id=item.id, owner=owner, lease_s=self.policy.lease_s)

    async def run(self, item: WorkItem, owner: str) -> None:
        await self.handler(item)

    async def complete(self, item: WorkItem, owner: str, result: None) -> None:
        if not await self.store.complete_work(item_id=item.id, owner=owner):
            log.warning("work item lease was lost before its outcome was recorded")

    async def fail(self, item: WorkItem, owner: str, error: str, retry_at: datetime | None) -> None:
        if not await self.store.fail_work(
            item_id=item.id, owner=owner, error=error, retry_at=retry_at
        ):
            log.warning("work item lease was lost before its outcome was recorded")

    def count(self, item: WorkItem, outcome: str) -> None:
        self.metrics.work_items.labels(outcome).inc()


class Outbox:
    """Deliveries: each shows the incident's message on one sink (create, or edit).

    The sink's handle on its message (a Slack ts, a comment id) is stored the moment the
    platform returns it, so that a failure after that point edits rather than repeats.
    """

    kind = "delivery"
    IDLE_POLL_S = 1.0

    def __init__(
        self, store: Store, settings: NotifySettings, sinks: dict[str, Sink], metrics: Metrics
    ) -> None:
        self.store = store
        self.sinks = sinks
        self.metrics = metrics
        self.policy = _policy(settings, self.IDLE_POLL_S)

    def now(self) -> datetime:
        return self.store.clock()

    def attempts(self, item: outbox.Delivery) -> int:
        return item.attempts

    def describe(self, item: outbox.Delivery) -> dict[str, Any]:
        return {
            "correlator.delivery.id": item.id,
            "correlator.delivery.sink": item.sink,
            "correlator.incident.id": item.incident_id,
            "correlator.delivery.attempt": item.attempts,
        }

    async def claim(self, owner: str) -> outbox.Delivery | None:
        return await self.store.write(outbox.claim, owner, self.policy.lease_s, self.now())

    async def renew(self, item: outbox.Delivery, owner: str) -> None:
        lease_s = self.policy.lease_s
        await self.store.write(
            lambda c: outbox.renew(c, delivery=item, owner=owner, lease_s=lease_s, now=self.now())
        )

    async def run(self, item: outbox.Delivery, owner: str) -> dict[str, Any]:
        sink = self.sinks.get(item.sink)
        if sink is None:
            raise SinkRejected("the sink is no longer configured")

        async def remember(remote: dict[str, Any]) -> None:
            await record_durably(
                "the sink's handle on its message",
                lambda: self.store.write(
                    lambda c: outbox.remember(
                        c, delivery=item, owner=owner, remote=remote, now=self.now()
                    )
                ),
                lease_s=self.policy.lease_s,
            )

        return await sink.send(item.desired, item.remote, remember)

    async def complete(self, item: outbox.Delivery, owner: str, result: dict[str, Any]) -> None:
        await self.store.write(
            lambda c: outbox.delivered(c, delivery=item, owner=owner, remote=result, now=self.now())
        )

    async def fail(
        self, item: outbox.Delivery, owner: str, error: str, retry_at: datetime | None
    ) -> None:
        now = self.now()
        await self.store.write(
            lambda c: outbox.failed(
                c, delivery=item, owner=owner, error=error, now=now, retry_at=retry_at
            )
        )

    def count(self, item: outbox.Delivery, outcome: str) -> None:
        label = "delivered" if outcome == "done" else outcome
        self.metrics.sink_deliveries.labels(item.sink, label).inc()
