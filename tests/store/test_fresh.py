"""New alert groups written in one statement on PostgreSQL (`store/fresh.py`) leave exactly
the rows the usual path leaves: the same bodies recorded with and without it, into two real
databases, give the same incidents, alerts, timeline entries and work items."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from correlator.models.alerts import WebhookPayload
from correlator.models.incidents import IntakeResult, ReceivedNotification
from correlator.settings import load_settings
from correlator.store import Store, recording
from correlator.store.schema import alerts, incidents, notifications, work_items
from tests.support.databases import postgres_database
from tests.web.test_bad_input import body_strategy

# Each example records into real databases: few, and the fixture's stores reused by them all.
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _opened(url: str) -> Store:
    return await Store.open(load_settings(database={"url": url}).database)


@pytest.fixture
async def stores() -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on two databases of the real PostgreSQL."""
    async with postgres_database() as one, postgres_database() as other:
        fresh, usual = await _opened(one), await _opened(other)
        try:
            yield fresh, usual
        finally:
            await fresh.close()
            await usual.close()


def _received(body: dict[str, Any], at: datetime) -> ReceivedNotification:
    raw = json.dumps(body).encode()
    return ReceivedNotification(
        payload=WebhookPayload.model_validate_json(raw),
        received_at=at,
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )


async def _dump(store: Store) -> dict[str, Any]:
    """Every row by its incident's key, ids replaced by positions."""

    def read(connection: Any) -> dict[str, Any]:
        keys = {r.id: r.key for r in connection.execute(select(incidents))}
        dumped: dict[str, Any] = {}
        for table in (incidents, alerts, notifications, work_items):
            rows = connection.execute(select(table).order_by(table.c.id)).mappings().all()
            dumped[table.name] = [
                {
                    **{k: v for k, v in row.items() if k not in ("id", "incident_id")},
                    "incident": keys.get(row.get("incident_id", row["id"])),
                    **({"notification_id": None} if "notification_id" in row else {}),
                }
                for row in rows
            ]
        notification_of = [
            r.id for r in connection.execute(select(notifications).order_by(notifications.c.id))
        ]
        queued = list(connection.execute(select(work_items).order_by(work_items.c.id)))
        dumped["queued for"] = [notification_of.index(r.notification_id) for r in queued]
        # The same within each incident: the position of its notification among the incident's.
        of_incident = [
            (r.id, r.incident_id)
            for r in connection.execute(select(notifications).order_by(notifications.c.id))
        ]
        dumped["queued within incident"] = sorted(
            (
                str(keys[r.incident_id]),
                [n for n, i in of_incident if i == r.incident_id].index(r.notification_id),
            )
            for r in queued
        )
        return dumped

    result: dict[str, Any] = await store.read(read)
    return result


async def _record(
    store: Store, batches: Sequence[Sequence[ReceivedNotification]]
) -> list[list[Any]]:
    answers = []
    for batch in batches:
        results = await store.record_batch(batch)
        answers.append(
            [
                (r.new_incident, r.changed, r.incident_status, r.work_item_id is not None)
                if isinstance(r, IntakeResult)
                else type(r).__name__
                for r in results
            ]
        )
    return answers


@EXAMPLES
@given(
    bodies=st.lists(body_strategy, min_size=1, max_size=4),
    again=st.lists(st.integers(0, 3), max_size=3),
)
async def test_new_groups_in_one_statement_leave_the_rows_the_usual_path_leaves(
    stores: tuple[Store, Store],
    monkeypatch: pytest.MonkeyPatch,
    bodies: list[dict[str, Any]],
    again: list[int],
) -> None:
    """A batch of new groups (some twice in it: the second is a re-notification of an incident
    the first created), then some of them again in another batch."""
    fresh, usual = stores
    at = datetime.now(UTC)
    first = [_received(body, at) for body in bodies] + [
        _received(bodies[i], at) for i in again if i < len(bodies)
    ]
    later = [_received(bodies[i], at) for i in again if i < len(bodies)]
    taken: list[int] = []
    real = recording.record_fresh

    def counted(*args: Any, **kwargs: Any) -> Any:
        taken.append(1)
        return real(*args, **kwargs)

    with monkeypatch.context() as patched:  # each example its own (hypothesis runs many)
        patched.setattr(recording, "record_fresh", counted)
        answered_fresh = await _record(fresh, [first, later])
        assert taken, "the one-statement path was not taken"
        patched.setattr(recording, "MAX_FRESH_ALERTS", -1)  # the usual path only
        taken.clear()
        answered_usual = await _record(usual, [first, later])
        assert not taken
    assert answered_fresh == answered_usual
    assert await _dump(fresh) == await _dump(usual)
    for store in stores:  # the next example starts from empty databases
        await store.write(
            lambda c: [
                c.execute(t.delete()) for t in (work_items, notifications, alerts, incidents)
            ]
        )


def _by_incident(dumped: dict[str, Any]) -> dict[str, Any]:
    """`_dump` with each table's rows grouped by incident (in order within one): the order
    of rows of different incidents written in one batch is not part of what is stored."""
    grouped: dict[str, Any] = {}
    for table in ("incidents", "alerts", "notifications", "work_items"):
        rows: dict[str, list[Any]] = {}
        for row in dumped[table]:
            rows.setdefault(str(row["incident"]), []).append(row)
        grouped[table] = dict(sorted(rows.items()))
    grouped["queued within incident"] = dumped["queued within incident"]
    return grouped


@EXAMPLES
@given(
    bodies=st.lists(body_strategy, min_size=1, max_size=4),
    again=st.lists(st.integers(0, 3), max_size=3),
    later=st.lists(body_strategy, max_size=3),
)
async def test_a_batch_of_new_groups_commits_in_one_statement_and_leaves_the_same_rows(
    stores: tuple[Store, Store],
    monkeypatch: pytest.MonkeyPatch,
    bodies: list[dict[str, Any]],
    again: list[int],
    later: list[dict[str, Any]],
) -> None:
    """Batches of distinct groups: the first all new (one statement, no transaction around
    it), the second some of them again beside new ones (the new ones in that statement, the
    others in the usual transaction after it). Recorded with the usual path only, the same
    answers and the same rows of each incident."""
    fresh, usual = stores
    at = datetime.now(UTC)

    def distinct(received: list[ReceivedNotification]) -> list[ReceivedNotification]:
        seen: dict[str, ReceivedNotification] = {}
        for r in received:
            seen.setdefault(r.payload.incident_key, r)
        return list(seen.values())

    first = distinct([_received(body, at) for body in bodies])
    second = distinct(
        [_received(bodies[i], at) for i in again if i < len(bodies)]
        + [_received(body, at) for body in later]
    )
    created: list[int] = []
    real = recording.record_created

    def counted(*args: Any) -> Any:
        answers = real(*args)
        created.append(sum(answer is not None for answer in answers))
        return answers

    fresh._recorded.clear()  # what earlier examples recorded is gone from the database
    with monkeypatch.context() as patched:
        patched.setattr(recording, "record_created", counted)
        answered_fresh = await _record(fresh, [first])
        assert created == [len(first)], "the first batch was not one statement"
        # As if another replica had recorded the first batch: this one tries the statement.
        fresh._recorded.clear()
        answered_fresh += await _record(fresh, [second] if second else [])
        patched.setattr(recording, "MAX_FRESH_ALERTS", -1)  # the usual path only
        created.clear()
        answered_usual = await _record(usual, [first, second] if second else [first])
        assert not created
    assert answered_fresh == answered_usual
    assert _by_incident(await _dump(fresh)) == _by_incident(await _dump(usual))
    for store in stores:
        await store.write(
            lambda c: [
                c.execute(t.delete()) for t in (work_items, notifications, alerts, incidents)
            ]
        )


def _one_alert(group_key: str) -> dict[str, Any]:
    """A body of one firing alert in the group `group_key`."""
    return {
        "version": "4", "receiver": "r", "status": "firing", "groupKey": group_key,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
        "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": {"alertname": "A"}, "annotations": {},
                    "startsAt": "2026-12-07T03:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "f"}],
    }  # fmt: skip


async def test_a_value_the_database_refuses_fails_only_its_own_notification(
    stores: tuple[Store, Store],
) -> None:
    """A fingerprint too long for its column is refused by the statement as by the usual path
    (DataError): the batch is written again one by one, and only that one fails."""
    fresh, _ = stores
    at = datetime.now(UTC)
    good = _one_alert("good")
    bad = _received({**good, "groupKey": "bad"}, at)
    # Past what validation lets in (so past what the intake stores): as a bug upstream might.
    object.__setattr__(bad.payload.alerts[0], "fingerprint", "x" * 129)
    results = await fresh.record_batch([_received(good, at), bad])
    assert isinstance(results[0], IntakeResult) and results[0].new_incident
    assert type(results[1]).__name__ == "StoreRefused"
    dumped = await _dump(fresh)
    assert [r["group_key"] for r in dumped["incidents"]] == ["good"]
    assert len(dumped["alerts"]) == len(dumped["notifications"]) == 1
    assert dumped["queued for"] == [0]


async def test_a_group_another_replica_is_creating_is_waited_for_then_recorded_again() -> None:
    """Two replicas receive the same new group. While the other's transaction that creates
    the incident is open, the one-statement write waits on its row; once it commits, this
    notification is recorded as the incident's second (in the usual transaction), not as a
    second incident and not lost."""
    at = datetime.now(UTC)
    body = _one_alert("raced")
    async with postgres_database() as url:
        this, other = await _opened(url), await _opened(url)
        try:
            assert other._postgres is not None
            async with other._postgres.begin() as connection:  # the other replica, mid-way
                await connection.run_sync(recording.record_notifications, [_received(body, at)])
                racing = asyncio.ensure_future(this.record_batch([_received(body, at)]))
                await asyncio.sleep(0.5)
                assert not racing.done(), "the statement did not wait for the other's row"
            (result,) = await asyncio.wait_for(racing, 10)
            dumped = await _dump(this)
        finally:
            await this.close()
            await other.close()
    assert isinstance(result, IntakeResult) and not result.new_incident
    assert [r["notification_count"] for r in dumped["incidents"]] == [2]
    assert len(dumped["alerts"]) == 1 and len(dumped["notifications"]) == 2


async def test_a_group_this_store_recorded_lately_skips_the_statement(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement would only find that the incident exists: a re-notification of a group
    this store recorded goes straight to the usual transaction; one of a group another
    replica recorded tries the statement first, and is recorded all the same."""
    fresh, _ = stores
    tried: list[int] = []
    real = recording.record_created

    def counted(*args: Any) -> Any:
        tried.append(1)
        return real(*args)

    monkeypatch.setattr(recording, "record_created", counted)
    at = datetime.now(UTC)
    (first,) = await fresh.record_batch([_received(_one_alert("lately"), at)])
    (again,) = await fresh.record_batch([_received(_one_alert("lately"), at)])
    assert len(tried) == 1
    fresh._recorded.clear()  # as if another replica had recorded it
    (third,) = await fresh.record_batch([_received(_one_alert("lately"), at)])
    assert len(tried) == 2
    assert isinstance(first, IntakeResult) and first.new_incident
    for later in (again, third):
        assert isinstance(later, IntakeResult) and not later.new_incident
        assert later.incident_id == first.incident_id
    assert [r["notification_count"] for r in (await _dump(fresh))["incidents"]] == [3]
