"""Storing notifications: identities, re-notifications, resolve and re-open, hostile labels."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from correlator.models.alerts import AlertStatus, WebhookPayload
from correlator.models.incidents import IncidentFilter, IntakeResult, ReceivedNotification
from correlator.store import Store
from correlator.store.schema import alerts, incidents, metadata, notifications, work_items
from tests.support.payloads import alert, payload, recorded


def received(body: dict[str, Any]) -> ReceivedNotification:
    raw = json.dumps(body).encode()
    return ReceivedNotification(
        payload=WebhookPayload.model_validate_json(raw),
        received_at=datetime.now(UTC),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )


async def record(store: Store, body: dict[str, Any]) -> IntakeResult:
    (result,) = await store.record_batch([received(body)])
    assert isinstance(result, IntakeResult), result
    return result


async def count(store: Store, table: Any) -> int:
    return int(
        await store.read(lambda c: c.execute(select(func.count()).select_from(table)).scalar_one())
    )


async def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    diff = await store.read(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    assert diff == []


async def test_recorded_firing_group_is_stored_whole(store: Store) -> None:
    result = await record(store, recorded("webhook-v4-firing-am0.25.json"))
    detail = await store.get_incident(result.incident_id)
    assert detail is not None
    assert result.new_incident and result.changed
    assert detail.status is AlertStatus.FIRING
    assert detail.receiver == "ok" and detail.group_key == '{}:{alertname="HighCPU"}'
    assert detail.truncated_alerts == 1
    assert [a.fingerprint for a in detail.alerts] == ["047fd0cb6ff36a62", "78c1238b3673d91b"]
    assert detail.alerts[0].annotations["runbook_url"] == "https://runbooks.example/cpu"
    assert detail.alerts[0].ends_at is None  # the zero time means unset
    assert [w.state for w in detail.work_items] == ["pending"]


async def test_renotification_updates_the_incident_without_duplicates(store: Store) -> None:
    body = recorded("webhook-v4-firing-am0.25.json")
    first = await record(store, body)
    again = await record(store, body)
    assert again.incident_id == first.incident_id
    assert not again.new_incident and not again.changed
    assert await count(store, incidents) == 1
    assert await count(store, alerts) == 2
    detail = await store.get_incident(first.incident_id)
    assert detail is not None
    assert detail.notification_count == 2
    assert [entry.changed for entry in detail.timeline] == [True, False]
    # Nothing new while the first is still queued: recorded in the timeline, no second work.
    assert again.work_item_id is None
    assert await count(store, work_items) == 1


async def test_same_group_key_on_another_receiver_is_another_incident(store: Store) -> None:
    body = recorded("webhook-v4-firing-am0.25.json")
    first = await record(store, body)
    other = await record(store, {**body, "receiver": "another"})
    assert other.incident_id != first.incident_id


async def test_resolved_notification_resolves_alerts_and_incident(store: Store) -> None:
    first = await record(store, recorded("webhook-v4-firing-am0.25.json"))
    resolved = await record(store, recorded("webhook-v4-resolved-am0.25.json"))
    assert resolved.incident_status is AlertStatus.RESOLVED and resolved.changed
    detail = await store.get_incident(first.incident_id)
    assert detail is not None
    assert detail.status is AlertStatus.RESOLVED
    assert detail.resolved_at is not None
    assert {a.status for a in detail.alerts} == {AlertStatus.RESOLVED}
    assert all(a.ends_at is not None for a in detail.alerts)


async def test_incident_reopens_when_an_alert_fires_again(store: Store) -> None:
    start = "2026-11-26T03:00:00Z"
    await record(store, payload([alert("a", starts_at=start)]))
    await record(
        store,
        payload([alert("a", status="resolved", starts_at=start, ends_at="2026-11-26T03:10:00Z")]),
    )
    again = await record(store, payload([alert("a", starts_at="2026-11-26T04:00:00Z")]))
    assert again.incident_status is AlertStatus.FIRING and again.changed
    detail = await store.get_incident(again.incident_id)
    assert detail is not None
    assert detail.resolved_at is None
    # A new firing (new startsAt) is a new alert; the old one keeps its history.
    assert [(a.starts_at.hour, a.status) for a in detail.alerts] == [
        (3, AlertStatus.RESOLVED),
        (4, AlertStatus.FIRING),
    ]


async def test_alert_missing_from_a_complete_group_has_ended(store: Store) -> None:
    first = await record(store, payload([alert("a"), alert("b")]))
    later = await record(store, payload([alert("a")]))
    assert later.changed
    detail = await store.get_incident(first.incident_id)
    assert detail is not None
    assert {a.fingerprint: a.status for a in detail.alerts} == {
        "a": AlertStatus.FIRING,
        "b": AlertStatus.RESOLVED,
    }


async def test_alert_missing_from_a_truncated_group_is_still_firing(store: Store) -> None:
    first = await record(store, payload([alert("a"), alert("b")]))
    await record(store, payload([alert("a")], truncated=1))
    detail = await store.get_incident(first.incident_id)
    assert detail is not None
    assert {a.status for a in detail.alerts} == {AlertStatus.FIRING}
    assert detail.truncated_alerts == 1
    assert detail.timeline[-1].truncated_alerts == 1


async def test_repeated_alert_in_one_payload_is_stored_once(store: Store) -> None:
    body = payload([alert("a", annotations={"v": "1"}), alert("a", annotations={"v": "2"})])
    result = await record(store, body)
    detail = await store.get_incident(result.incident_id)
    assert detail is not None
    assert [(a.fingerprint, a.annotations) for a in detail.alerts] == [("a", {"v": "2"})]


async def test_hostile_label_content_is_stored_exactly(store: Store) -> None:
    labels = {
        "alertname": "Evil\x00Name",
        "namespace": "ns-" + "ß" * 3000,  # far past a btree entry's limit
        "emoji": "🔥 \u202e reversed",
        "control": "\x01\x1b[31mred\x7f",
        "quote": "\"'}{|=`",
    }
    result = await record(store, payload([alert("x", labels=labels)]))
    detail = await store.get_incident(result.incident_id)
    assert detail is not None
    assert detail.alerts[0].labels == labels
    # The label is findable by the value that was sent.
    items, _ = await store.list_incidents(IncidentFilter(namespace=labels["namespace"]))
    assert [i.id for i in items] == [result.incident_id]


async def test_ten_thousand_alerts_in_one_group_are_stored_whole(store: Store) -> None:
    many = [alert(f"{i:016x}", labels={"alertname": "Flood", "i": str(i)}) for i in range(10_000)]
    result = await record(store, payload(many))
    assert await count(store, alerts) == 10_000
    again = await record(store, payload(many))
    assert not again.changed
    assert await count(store, alerts) == 10_000
    assert (await store.get_incident(result.incident_id)).alerts_firing == 10_000  # type: ignore[union-attr]


async def test_batch_commits_every_notification_of_the_batch(store: Store) -> None:
    batch = [received(payload([alert("a")], group_key=f"g{i}")) for i in range(20)]
    results = await store.record_batch(batch)
    assert all(isinstance(r, IntakeResult) for r in results)
    assert await count(store, incidents) == 20
    assert await count(store, notifications) == 20


async def test_batch_with_the_same_group_twice_keeps_their_order(store: Store) -> None:
    firing = received(payload([alert("a")]))
    resolved = received(payload([alert("a", status="resolved", ends_at="2026-11-26T04:00:00Z")]))
    results = await store.record_batch([firing, resolved])
    assert [r.incident_status for r in results if isinstance(r, IntakeResult)] == [
        AlertStatus.FIRING,
        AlertStatus.RESOLVED,
    ]
    assert await count(store, incidents) == 1


@pytest.mark.parametrize(
    "statuses",
    [
        [("firing", None)],
        [("resolved", "2026-11-26T04:10:00Z"), ("resolved", "2026-11-26T04:30:00Z")],
        [("resolved", "2026-11-26T04:30:00Z"), ("firing", None)],
    ],
    ids=["firing", "all resolved", "mixed"],
)
async def test_a_new_incident_is_written_whole_as_its_alerts_say(
    store: Store, statuses: list[tuple[str, str | None]]
) -> None:
    """A new incident's status, start and resolution are written with it from its alerts
    (no read-back of the alerts just written), as a later notification recomputes them."""
    group = [
        alert(
            f"f{i}",
            status=status,
            starts_at=f"2026-11-26T0{3 + i}:00:00Z",
            ends_at=ends or "0001-01-01T00:00:00Z",
        )
        for i, (status, ends) in enumerate(statuses)
    ]
    result = await record(store, payload(group))
    firing = any(status == "firing" for status, _ in statuses)
    assert result.incident_status is (AlertStatus.FIRING if firing else AlertStatus.RESOLVED)
    detail = await store.get_incident(result.incident_id)
    assert detail is not None
    assert detail.status is result.incident_status
    assert detail.started_at == min(a.starts_at for a in detail.alerts)
    ends = [a.ends_at for a in detail.alerts if a.ends_at is not None]
    assert detail.resolved_at == (None if firing else max(ends))
    # The same alerts reaching another incident in two notifications: its state is recomputed
    # from its stored alerts (`_refresh_incidents`), and comes out the same.
    await record(store, payload(group[:1], group_key="two-steps"))
    stepped = await record(store, payload(group, group_key="two-steps"))
    other = await store.get_incident(stepped.incident_id)
    assert other is not None and other.id != detail.id
    assert sorted(a.fingerprint for a in other.alerts) == sorted(
        a.fingerprint for a in detail.alerts
    )
    assert (other.status, other.started_at, other.resolved_at) == (
        detail.status,
        detail.started_at,
        detail.resolved_at,
    )
