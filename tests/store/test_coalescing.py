"""An alert storm's queue: per incident at most one item queued and one running, re-notifications
that brought nothing new only refresh an old report, new incidents before refreshes and the
more severe first, refreshes never starved — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from correlator.metrics import Metrics
from correlator.models.report import Report
from correlator.runtime.consumer import Consumer
from correlator.runtime.queues import WorkQueue
from correlator.settings import load_settings
from correlator.store import Store, WorkItem
from correlator.store.work import PENDING, SUPERSEDED, QueuePolicy
from tests.store.test_notifications import received, record
from tests.store.test_work_queue import Clock
from tests.support.payloads import alert, payload
from tests.support.servers import eventually

GROUP = '{}:{alertname="Storm"}'
POLL_S = 0.05
POLLS_BOUND_S = 200 * POLL_S  # a bound for a hang: two polls take 2 * POLL_S


def notification(*fingerprints: str, severity: str = "critical", group: str = GROUP) -> dict:  # type: ignore[type-arg]
    labels = {"alertname": "Storm", "severity": severity}
    return payload([alert(f, labels=labels) for f in fingerprints], group_key=group)


async def work_states(store: Store, incident_id: int) -> list[str]:
    detail = await store.get_incident(incident_id)
    assert detail is not None
    return [w.state for w in detail.work_items]


async def test_notifications_during_a_correlation_give_one_more_with_the_newest(
    store: Store,
) -> None:
    """Three notifications that each change the group, while its correlation runs: one more
    correlation, of the newest, and never two of one incident at once (two workers)."""
    first = await record(store, notification("a"))
    started, release = asyncio.Event(), asyncio.Event()
    handled: list[tuple[int | None, bool]] = []
    running = 0

    async def handler(item: WorkItem) -> None:
        nonlocal running
        running += 1
        handled.append((item.notification_id, running > 1))
        started.set()
        await release.wait()
        running -= 1

    settings = load_settings(queue={"poll_interval_s": POLL_S}).queue
    claims: list[int | None] = []  # what each worker's poll claimed (an item's id, or nothing)
    claim_work = store.claim_work

    async def counted_claim(**kwargs: Any) -> WorkItem | None:
        item = await claim_work(**kwargs)
        claims.append(item.id if item is not None else None)
        return item

    store.claim_work = counted_claim  # type: ignore[method-assign]
    workers = [Consumer(WorkQueue(store, settings, Metrics(), handler)) for _ in range(2)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await asyncio.wait_for(started.wait(), 10)
        later = [await record(store, notification("a", *"bcd"[: n + 1])) for n in range(3)]
        assert await work_states(store, first.incident_id) == [
            "running",
            SUPERSEDED,
            SUPERSEDED,
            PENDING,
        ]
        # The idle worker has polled twice since the newest was queued (a claim that found the
        # queued item and had to leave it, as its incident's correlation runs): still one.
        polls_then = len(claims)
        await eventually(
            lambda: len(claims) >= polls_then + 2 or len(handled) > 1,
            "two polls by the idle worker",
            timeout_s=POLLS_BOUND_S,
        )
        assert len(handled) == 1
        assert claims[polls_then:] == [None] * (len(claims) - polls_then)
        release.set()
        for _ in range(200):
            if await work_states(store, first.incident_id) == ["done", *[SUPERSEDED] * 2, "done"]:
                break
            await asyncio.sleep(0.05)
    finally:
        release.set()  # a failed check must not leave a handler waiting forever
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
    assert handled == [(first.notification_id, False), (later[-1].notification_id, False)]


async def test_a_renotification_with_nothing_new_refreshes_only_an_old_report(
    database_url: str,
) -> None:
    clock = Clock()
    store = await Store.open(load_settings(database={"url": database_url}).database, clock=clock)
    try:
        first = await record(store, notification("a"))
        # Just ahead of the real clock that stamped the item: opening PostgreSQL (migrations)
        # can take longer than the clock's lead on a loaded machine.
        clock.start()
        item = await store.claim_work(owner="w", lease_s=30)
        assert item is not None
        # Nothing new while the first correlation runs: recorded, not queued.
        assert (await record(store, notification("a"))).work_item_id is None
        report = Report(incident_id=first.incident_id, generated_at=clock(), status="complete")
        await store.save_report(first.incident_id, first.notification_id, "complete", report)
        await store.complete_work(item_id=item.id, owner="w")
        # A fresh report: the re-notification is only a timeline entry.
        again = await record(store, notification("a"))
        assert again.work_item_id is None and not again.changed
        # A report older than the refresh age: refreshed, due after new incidents.
        clock.advance(-600)
        await store.save_report(first.incident_id, first.notification_id, "complete", report)
        refresh = await record(store, notification("a"))
        assert refresh.work_item_id is not None
        detail = await store.get_incident(first.incident_id)
        assert detail is not None
        assert [e.changed for e in detail.timeline] == [True, False, False, False]
    finally:
        await store.close()


async def test_claims_take_new_incidents_first_then_severity_and_never_starve_refreshes(
    store: Store,
) -> None:
    policy = QueuePolicy(refresh_delay_s=60)
    now = datetime.now(UTC)

    async def stored(body: dict, at: datetime) -> int:  # type: ignore[type-arg]
        item = replace(received(body), received_at=at)
        (result,) = await store.record_batch([item], policy=policy)
        assert not isinstance(result, Exception) and result.work_item_id is not None
        return result.work_item_id

    # An incident seen before whose group changed 30 s ago: a refresh, due in another 30 s.
    base = await stored(notification("r", group="refresh"), now - timedelta(seconds=40))
    done = await store.claim_work(owner="w", lease_s=30)
    assert done is not None and done.id == base
    await store.complete_work(item_id=base, owner="w")
    refresh = await stored(notification("r", "s", group="refresh"), now - timedelta(seconds=30))
    warning = await stored(notification("w", severity="warning", group="warn"), now)
    critical = await stored(notification("c", severity="critical", group="crit"), now)
    order = []
    while (item := await store.claim_work(owner="w", lease_s=30)) is not None:
        order.append(item.id)
        await store.complete_work(item_id=item.id, owner="w")
    assert order == [critical, warning, refresh]
    # A refresh that has waited its full delay goes before a brand-new incident.
    old = await stored(notification("r", "s", "t", group="refresh"), now - timedelta(seconds=90))
    new = await stored(notification("n", group="new"), now)
    first = await store.claim_work(owner="v", lease_s=30)
    assert first is not None and first.id == old and new != old
