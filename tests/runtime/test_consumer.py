"""The one queue consumer at shutdown: an outcome the store refuses to record is retried for
as long as the lease lasts, but not past stop(): the process is going, the lease lapses, and
the item runs again elsewhere (at least once)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from correlator.errors import StoreUnavailable
from correlator.runtime.consumer import Consumer, RetryPolicy


class RefusingQueue:
    """A leased queue whose store refuses to record outcomes (a database that went away)."""

    kind = "work item"
    policy = RetryPolicy(
        lease_s=3600.0, poll_interval_s=0.05, max_attempts=3, retry_base_s=1.0, retry_max_s=2.0
    )

    def __init__(self) -> None:
        self.given = [1]
        self.records = 0
        self.refused = asyncio.Event()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def attempts(self, item: int) -> int:
        return 1

    def describe(self, item: int) -> dict[str, Any]:
        return {"correlator.work_item.id": item}

    async def claim(self, owner: str) -> int | None:
        return self.given.pop() if self.given else None

    async def renew(self, item: int, owner: str) -> None:
        return None

    async def run(self, item: int, owner: str) -> None:
        return None

    async def complete(self, item: int, owner: str, result: None) -> None:
        self.records += 1
        self.refused.set()
        raise StoreUnavailable("the database is gone")

    async def fail(self, item: int, owner: str, error: str, retry_at: datetime | None) -> None:
        raise AssertionError("the item did not fail")

    def count(self, item: int, outcome: str) -> None:
        return None


async def test_a_refused_record_is_not_retried_past_stop() -> None:
    queue = RefusingQueue()
    consumer: Consumer[int, None] = Consumer(queue)
    running = asyncio.create_task(consumer.run())
    await asyncio.wait_for(queue.refused.wait(), 10)
    consumer.stop()
    # Without the stop cutting it short, the record would be retried for the lease: an hour.
    await asyncio.wait_for(running, 10)
    assert 1 <= queue.records <= 2
