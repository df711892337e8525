"""The kept inputs of analyses (incident bundles) and the confirmed causes in the store, on
SQLite and PostgreSQL: a bundle over the cap is recorded without its body, bundles past
`keep_inputs.retention_days` are deleted by the loop every replica runs (even with incident
retention off), an incident's deletion takes its bundle and cause along, and an older
analysis never replaces the inputs of a newer one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from correlator.analysis.telemetry import Telemetry, metric_frame
from correlator.analysis.windows import WindowPolicy, incident_windows
from correlator.backoff import Backoff
from correlator.metrics import Metrics
from correlator.pipeline.analysis_pool import AnalysisPool
from correlator.pipeline.keep import InputKeeper
from correlator.runtime.correlations import inputs_saver
from correlator.settings import KeepInputsSettings, load_settings
from correlator.store import Store
from correlator.store.replay import get_bundle, get_cause, save_bundle, set_cause
from correlator.store.retention import Pruner, prune, prune_inputs
from correlator.store.schema import bundles, incidents, work_items
from tests.support.deliveries import incident

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def _kept(store: Store, incident_id: int, *, analysed_at: datetime = NOW) -> bool:
    now = store.clock()
    return await store.write(
        lambda c: save_bundle(
            c,
            incident_id=incident_id,
            state="kept",
            body=b"\x1f\x8b" + bytes(range(256)),  # bytes of any value survive
            size_bytes=258,
            kinds=["metrics"],
            app="shop/payments",
            team="payments",
            analysed_at=analysed_at,
            now=now,
        )
    )


async def _confirmed(store: Store, incident_id: int) -> None:
    now = store.clock()
    await store.write(
        lambda c: set_cause(
            c,
            incident_id=incident_id,
            service="payments",
            text=None,
            answered_by="ana",
            principal=None,
            rank=1,
            app="shop/payments",
            team="payments",
            now=now,
        )
    )


async def _age_bundle(store: Store, incident_id: int, days: float) -> None:
    moment = store.clock() - timedelta(days=days)
    await store.write(
        lambda c: c.execute(
            update(bundles).where(bundles.c.incident_id == incident_id).values(created_at=moment)
        )
    )


async def test_bundles_past_their_retention_go_and_their_incidents_stay(store: Store) -> None:
    old = await incident(store, group='{}:{alertname="Old"}')
    recent = await incident(store, group='{}:{alertname="Recent"}')
    for incident_id in (old, recent):
        assert await _kept(store, incident_id)
    await _age_bundle(store, old, 31)
    await _age_bundle(store, recent, 29)
    assert await prune_inputs(store, retention_days=30) == 1
    assert await store.read(get_bundle, old) is None
    kept = await store.read(get_bundle, recent)
    assert kept is not None and kept.body == b"\x1f\x8b" + bytes(range(256))
    assert await store.get_incident(old) is not None  # the incident has its own retention


async def test_an_incident_past_retention_takes_its_bundle_and_cause_along(store: Store) -> None:
    old = await incident(store, group='{}:{alertname="Old"}')
    await _kept(store, old)
    await _confirmed(store, old)
    moment = store.clock() - timedelta(days=40)

    def backdate(connection: Any) -> None:  # quiet since: no notification, no work
        connection.execute(update(incidents).where(incidents.c.id == old).values(updated_at=moment))
        connection.execute(
            update(work_items).where(work_items.c.incident_id == old).values(updated_at=moment)
        )

    await store.write(backdate)
    assert await prune(store, retention_days=30) == 1
    assert await store.read(get_bundle, old) is None
    assert await store.read(get_cause, old) is None


async def test_the_loop_prunes_inputs_with_incident_retention_off(store: Store) -> None:
    old = await incident(store, group='{}:{alertname="Old"}')
    await _kept(store, old)
    await _age_bundle(store, old, 3)
    pruner = Pruner(
        store, retention_days=0, inputs_retention_days=2, backoff=Backoff(base_s=0.01, max_s=0.05)
    )
    task = asyncio.create_task(pruner.run())
    try:
        for _ in range(200):
            if await store.read(get_bundle, old) is None:
                break
            await asyncio.sleep(0.02)
        assert await store.read(get_bundle, old) is None
        assert await store.get_incident(old) is not None
    finally:
        task.cancel()


async def test_an_older_analysis_does_not_replace_a_newer_ones_inputs(store: Store) -> None:
    incident_id = await incident(store)
    assert await _kept(store, incident_id, analysed_at=NOW)
    assert not await _kept(store, incident_id, analysed_at=NOW - timedelta(minutes=1))
    assert await _kept(store, incident_id, analysed_at=NOW + timedelta(minutes=1))
    stored = await store.read(get_bundle, incident_id)
    assert stored is not None and stored.analysed_at == NOW + timedelta(minutes=1)


def _telemetry(points: int) -> Telemetry:
    rows = [
        (NOW - timedelta(seconds=15 * i), f"svc-{i % 7}", "error_ratio", (i * 7919) % 1000 / 997)
        for i in range(points)
    ]
    return Telemetry(metrics=metric_frame(rows))


async def test_inputs_over_the_cap_are_recorded_without_their_body(store: Store) -> None:
    small, large = await incident(store, group="small"), await incident(store, group="large")
    pool = AnalysisPool("thread", 1)
    metrics = Metrics()
    keeper = InputKeeper(
        KeepInputsSettings(max_bytes=16 * 1024), inputs_saver(store), pool, metrics
    )
    windows = incident_windows(NOW - timedelta(minutes=5), NOW, WindowPolicy())
    try:
        for incident_id, points in ((small, 10), (large, 20_000)):
            detail = await store.get_incident(incident_id)
            assert detail is not None
            keeper.keep(
                detail,
                _telemetry(points),
                windows,
                analysed_at=NOW,
                app="shop/x",
                team=None,
                policy=WindowPolicy(),
            )
        await keeper.close()
    finally:
        pool.close()
    kept, over = await store.read(get_bundle, small), await store.read(get_bundle, large)
    assert kept is not None and kept.state == "kept" and kept.body
    assert over is not None and over.state == "over_cap" and over.body is None
    assert over.size_bytes > 16 * 1024
    assert metrics.kept_inputs.labels("over_cap")._value.get() == 1


async def test_serve_keeps_to_the_inputs_retention(app_client: Any, database_url: str) -> None:
    seeded = await Store.open(load_settings(database={"url": database_url}).database)
    try:
        old = await incident(seeded, group="old")
        await _kept(seeded, old)
        await _age_bundle(seeded, old, 8)
    finally:
        await seeded.close()
    client = await app_client(
        database={"retention_days": 0},
        correlation={"keep_inputs": {"retention_days": 7}},
        queue={"workers": 0},
    )
    for _ in range(200):
        if (await client.get(f"/api/v1/incidents/{old}/bundle")).status == 404:
            break
        await asyncio.sleep(0.05)
    answer = await client.get(f"/api/v1/incidents/{old}/bundle")
    assert answer.status == 404
    assert (await client.get(f"/api/v1/incidents/{old}")).status == 200
