"""Incidents asking the same question share one analysis: a storm in which one app fires
several alert groups costs one correlation, not one per group."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from correlator.catalogue import Catalogue
from correlator.models.report import Report
from correlator.models.webapp import WebApplication
from correlator.pipeline import Pipeline
from correlator.pipeline.sharing import Question, Shared
from correlator.runtime.correlations import Correlations
from correlator.store import Store, WorkItem
from tests.pipeline.test_pipeline import LABELS, slow_database
from tests.store.test_notifications import record
from tests.support.payloads import alert, payload
from tests.support.servers import served


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_askers_of_one_key_share_one_computation() -> None:
    shared: Shared[int] = Shared(30)
    calls = 0
    release = asyncio.Event()

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    askers = [asyncio.ensure_future(shared.get("k", compute)) for _ in range(3)]
    await asyncio.sleep(0.01)
    release.set()
    answers = await asyncio.gather(*askers)
    assert calls == 1
    assert sorted(answers) == [(42, False), (42, True), (42, True)]
    assert (shared.computed, shared.shared) == (1, 2)


async def test_a_finished_answer_serves_for_ttl_then_is_computed_again() -> None:
    clock = Clock()
    shared: Shared[int] = Shared(30, clock=clock)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await shared.get("k", compute) == (1, False)
    clock.now = 30
    assert await shared.get("k", compute) == (1, True)
    assert await shared.get("other", compute) == (2, False)  # another key is its own question
    clock.now = 30.5
    assert await shared.get("k", compute) == (3, False)


async def test_a_failure_reaches_every_waiter_and_is_not_kept() -> None:
    shared: Shared[int] = Shared(30)
    release = asyncio.Event()
    attempts = 0

    async def compute() -> int:
        nonlocal attempts
        attempts += 1
        await release.wait()
        if attempts == 1:
            raise RuntimeError("backend exploded")
        return 7

    askers = [asyncio.ensure_future(shared.get("k", compute)) for _ in range(2)]
    await asyncio.sleep(0.01)
    release.set()
    outcomes = await asyncio.gather(*askers, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await shared.get("k", compute) == (7, False)  # asked again, not the failure


async def test_a_cancelled_waiter_does_not_cancel_the_computation_of_the_others() -> None:
    shared: Shared[str] = Shared(30)
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        return "report"

    first = asyncio.ensure_future(shared.get("k", compute))
    second = asyncio.ensure_future(shared.get("k", compute))
    await asyncio.sleep(0.01)
    first.cancel()  # the first asker's lease was lost
    await asyncio.sleep(0.01)
    release.set()
    assert await second == ("report", True)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_zero_ttl_computes_every_time_and_entries_are_bounded() -> None:
    never: Shared[int] = Shared(0)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert [await never.get("k", compute) for _ in range(2)] == [(1, False), (2, False)]
    bounded: Shared[int] = Shared(30, max_entries=2)
    for key in "abc":
        await bounded.get(key, compute)
    assert await bounded.get("c", compute) == (5, True)
    assert await bounded.get("a", compute) == (6, False)  # the oldest was let go


async def test_an_answer_at_a_point_near_enough_serves_the_nearest_and_no_farther() -> None:
    clock = Clock()
    shared: Shared[str] = Shared(30, clock=clock)
    release = asyncio.Event()

    async def compute(name: str) -> str:
        await release.wait()
        return name

    def ask(at: float, name: str) -> asyncio.Future[tuple[str, bool]]:
        return asyncio.ensure_future(shared.get("k", lambda: compute(name), at=at, within=15))

    running = [ask(0, "at 0"), ask(12, "at 12"), ask(16, "at 16"), ask(31, "at 31")]
    await asyncio.sleep(0.01)
    release.set()
    # 12 s from 0: shared. 16 s from 0: analysed (it is beyond 15 s); 31 s is 15 s from 16.
    assert await asyncio.gather(*running) == [
        ("at 0", False), ("at 0", True), ("at 16", False), ("at 16", True)
    ]  # fmt: skip
    assert await shared.get("k", lambda: compute("at 9"), at=9, within=15) == ("at 16", True)
    assert await shared.get("other", lambda: compute("x"), at=0, within=15) == ("x", False)
    assert await shared.get("k", lambda: compute("exact"), at=12) == ("exact", False)
    clock.now = 31  # finished at 0: every answer is stale now
    assert await shared.get("k", lambda: compute("again"), at=0, within=15) == ("again", False)
    assert (shared.computed, shared.shared) == (5, 3)


@given(
    onset=st.floats(1.5e9, 2.5e9),
    apart=st.floats(-300, 300),
    within=st.sampled_from([0.0, 0.5, 15.0, 60.0, 300.0]),
)
def test_an_onset_near_enough_is_stored_where_the_other_looks(
    onset: float, apart: float, within: float
) -> None:
    """The store is asked only for `nearby`: every onset at most `within` away must be stored
    under one of them (and with 0, only the same onset)."""
    at, later = datetime.fromtimestamp(onset, UTC), datetime.fromtimestamp(onset + apart, UTC)
    apart = (later - at).total_seconds()  # as datetimes hold it (to the microsecond)
    one = Question.of(["api"], ["shop"], at, "ctx", within)
    other = Question.of(["api"], ["shop"], later, "ctx", within)
    assert one.scope == other.scope
    assert one.digest == one.nearby[0]
    if abs(apart) <= within or apart == 0:
        assert other.digest in one.nearby
    if within == 0 and apart != 0:
        assert other.digest not in one.nearby
    elsewhere = Question.of(["api"], ["shop"], one.onset, "other apps", within)
    assert elsewhere.scope != one.scope and not set(elsewhere.nearby) & set(one.nearby)


def test_the_catalogue_revision_changes_only_when_the_apps_do() -> None:
    app = WebApplication.model_validate(
        {
            "apiVersion": "platform.correlator.dev/v1alpha1",
            "kind": "WebApplication",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"image": "registry.example/api:1.0", "team": "shop"},
        }
    )
    catalogue = Catalogue([app])
    before = catalogue.revision
    catalogue.update([app.model_copy(deep=True)])  # a resync that found the same apps
    assert catalogue.revision == before
    changed = app.model_copy(update={"spec": app.spec.model_copy(update={"port": 9090})})
    catalogue.update([changed])
    assert catalogue.revision != before
    assert Catalogue([app.model_copy(deep=True)]).revision == before  # the same on any replica


def _counting(app: web.Application) -> list[int]:
    count = [0]

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> Any:
        count[0] += 1
        return await handler(request)

    app.middlewares.append(middleware)
    return count


async def _reports(client: Any, group_keys: list[str], starts_at: datetime) -> list[Any]:
    ids = []
    for group_key in group_keys:
        labels = {**LABELS, "alertname": group_key}
        body = payload(
            [alert(group_key, labels=labels, starts_at=starts_at.isoformat())],
            group_key=f'{{}}:{{alertname="{group_key}"}}',
        )
        answer = await client.post("/api/v1/alerts", json=body)
        assert answer.status == 200, await answer.text()
        ids.append((await answer.json())["incident_id"])
    reports: dict[int, Any] = {}
    deadline = time.monotonic() + 30
    while len(reports) < len(ids) and time.monotonic() < deadline:
        for incident_id in ids:
            detail = await (await client.get(f"/api/v1/incidents/{incident_id}")).json()
            if detail.get("report") is not None:
                reports[incident_id] = detail["report"]
        await asyncio.sleep(0.05)
    assert len(reports) == len(ids), f"not every incident was reported: {sorted(reports)}"
    return [reports[i] for i in ids]


@pytest.mark.parametrize("share_s", [30.0, 0.0])
async def test_alert_groups_of_one_app_with_one_onset_cost_one_correlation(
    app_client: Any, share_s: float
) -> None:
    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    asked = _counting(jaeger.app)
    async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
        # Identical requests are not shared here (cache_s 0): what is counted is analyses.
        client = await app_client(
            jaeger={"url": jaeger_url, "cache_s": 0},
            loki={"url": loki_url, "cache_s": 0},
            correlation={"share_s": share_s},
        )
        (alone,) = await _reports(client, ["Alone"], now - timedelta(minutes=2))
        one_correlation = asked[0]
        reports = await _reports(
            client, ["ErrorRate", "Latency", "Saturation"], now - timedelta(minutes=3)
        )
        exposed = await (await client.get("/metrics")).text()
    counted = {
        how: float(line.rsplit(" ", 1)[1])
        for how in ("analysed", "shared")
        for line in exposed.splitlines()
        if line.startswith(f'correlator_correlations_total{{how="{how}"}}')
    }
    assert one_correlation > 0
    expected = 1 if share_s else 3
    assert asked[0] == one_correlation * (1 + expected)
    for report in reports:  # each incident's own report, the same causes
        assert report["suspects"][0]["service"] == "postgres"
    assert len({r["incident_id"] for r in reports}) == 3
    noted = [r for r in reports if any("analysed once for incident" in n for n in r["notes"])]
    assert len(noted) == 3 - expected
    assert counted.get("analysed", 0) == 1 + expected
    assert counted.get("shared", 0) == 3 - expected
    # Another onset is another question: the lone incident was analysed on its own.
    assert not any("analysed once" in n for n in alone["notes"])


async def test_correlations_of_other_apps_within_one_step_ask_the_call_graph_once(
    app_client: Any,
) -> None:
    """Windows end on the step grid and the graph's lookback is whole grid cells, so
    correlations of different apps whose alerts started seconds apart (one fault reaching
    them at slightly different times) ask Jaeger for the same call graph, and the client asks
    it once.

    Whether the two correlations fell within one step is read from their reports (the
    windows' end), not guessed from the clock: a pair that straddled a step boundary asked
    two questions by design, and is tried again (a try takes far less than a step, so the
    next one cannot straddle too)."""
    for attempt in range(2):
        scopes, ends, asked = await _two_apps_seconds_apart(app_client, attempt)
        if len(set(ends)) == 1:
            break
    assert len(set(ends)) == 1, ends  # two tries both straddled a step: a try took > 60 s
    assert sorted(scopes) == [["api"], ["frontend"]]  # two questions, two analyses
    assert asked.count("/api/dependencies") == 1
    assert asked.count("/api/v3/traces") == 4  # each app's traces, both windows


async def _two_apps_seconds_apart(
    app_client: Any, attempt: int
) -> tuple[list[list[str]], list[str], list[str]]:
    """Two apps' incidents with onsets 7 s apart; their reports' scopes and window ends, and
    the paths Jaeger was asked for. The first onset is on a whole minute: the lookbacks (whole
    minutes, then 7 s less) then fall in one grid cell whatever the end."""
    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    asked: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> Any:
        asked.append(request.path)
        return await handler(request)

    jaeger.app.middlewares.append(record)
    async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
        client = await app_client(
            jaeger={"url": jaeger_url}, loki={"url": loki_url}, correlation={"step_s": 60.0}
        )
        onset = (now - timedelta(minutes=2)).replace(second=0, microsecond=0)
        ids = []
        for app, later_s in (("api", 0), ("frontend", 7)):
            labels = {**LABELS, "destination_workload": app, "alertname": f"{app}Down"}
            starts_at = onset + timedelta(seconds=later_s)
            body = payload(
                [alert(app, labels=labels, starts_at=starts_at.isoformat())],
                group_key=f'{{}}:{{alertname="{app}Down",attempt="{attempt}"}}',
            )
            answer = await client.post("/api/v1/alerts", json=body)
            ids.append((await answer.json())["incident_id"])
        reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(reports) < 2 and time.monotonic() < deadline:
            reports = []
            for incident_id in ids:
                detail = await (await client.get(f"/api/v1/incidents/{incident_id}")).json()
                if detail.get("report"):
                    reports.append(detail["report"])
            await asyncio.sleep(0.05)
        await client.close()  # its workers stop: another try's work is not theirs
    assert len(reports) == 2, reports
    scopes = [report["scope"]["alerting"] for report in reports]
    return scopes, [report["windows"]["incident_end"] for report in reports], asked


def _group(name: str, onset: datetime) -> dict[str, Any]:
    labels = {**LABELS, "alertname": name}
    return payload(
        [alert(name, labels=labels, starts_at=onset.isoformat())],
        group_key=f'{{}}:{{alertname="{name}"}}',
    )


async def test_a_report_one_replica_stored_answers_the_same_question_on_another(
    store: Store, make_settings: Any
) -> None:
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=3)
    jaeger, loki = slow_database(now)
    asked = _counting(jaeger.app)
    async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
        settings = make_settings(
            jaeger={"url": jaeger_url, "cache_s": 0}, loki={"url": loki_url, "cache_s": 0}
        )
        replicas = [Correlations(Pipeline(settings, reports=store), store) for _ in range(3)]
        try:
            incidents = []
            for name in ("ErrorRate", "Latency", "Saturation"):
                result = await record(store, _group(name, onset))
                assert result.work_item_id is not None
                incidents.append(
                    WorkItem(result.work_item_id, "correlate", result.incident_id,
                             result.notification_id, 0)
                )  # fmt: skip
            await replicas[0].handle(incidents[0])
            one_correlation = asked[0]
            await replicas[1].handle(incidents[1])  # another replica: nothing in its memory
            reused = asked[0]
            real_clock = store.clock
            store.clock = lambda: real_clock() + timedelta(seconds=61)  # share_s passed
            try:
                await replicas[2].handle(incidents[2])  # a third, after share_s
            finally:
                store.clock = real_clock
            other = Pipeline(make_settings(correlation={"step_s": 30}), reports=store)
            detail = await store.get_incident(incidents[0].incident_id)
            assert detail is not None
            assert other.question(detail).digest != replicas[0].pipeline.question(detail).digest
            await other.close()
        finally:
            for replica in replicas:
                await replica.pipeline.close()
        reports = [await store.get_report(i.incident_id) for i in incidents]
    assert one_correlation > 0 and reused == one_correlation
    assert asked[0] == 2 * one_correlation  # the third came after share_s: analysed again
    first, second, third = reports
    assert first is not None and second is not None and third is not None
    assert second.incident_id == incidents[1].incident_id
    assert second.suspects == first.suspects and second.generated_at == first.generated_at
    assert f"analysed once for incident {incidents[0].incident_id} and this one" in " ".join(
        second.notes
    )
    assert not any("analysed once" in n for n in first.notes + third.notes)


async def test_the_store_finds_shared_reports_by_question_and_age(store: Store) -> None:
    now = datetime.now(UTC)
    ids = [(await record(store, _group(f"G{i}", now))).incident_id for i in range(4)]
    old, mid, new = (now - timedelta(seconds=s) for s in (50, 30, 10))
    reports = [
        Report(incident_id=i, generated_at=now, status="complete", analysed_for=i) for i in ids
    ]
    await store.save_report(ids[0], None, "complete", reports[0], question="q", analysed_at=old)
    await store.save_report(ids[1], None, "complete", reports[1], question="q", analysed_at=new)
    await store.save_report(ids[2], None, "partial", reports[2])  # a failure: no question
    await store.save_report(ids[3], None, "complete", reports[3], question="r", analysed_at=mid)
    since = now - timedelta(seconds=60)
    assert await store.shared_reports(["q"], since) == [reports[1], reports[0]]
    assert await store.shared_reports(["q", "r"], since) == [reports[1], reports[3], reports[0]]
    assert await store.shared_reports(["q"], now - timedelta(seconds=5)) == []
    assert await store.shared_reports(["other"], since) == []
    assert await store.shared_reports([], since) == []


@pytest.mark.parametrize("within_s", [15.0, 0.0])
async def test_onsets_seconds_apart_share_one_analysis_on_any_replica(
    store: Store, make_settings: Any, within_s: float
) -> None:
    """An app's alert rules fire on evaluations seconds apart: with `share_onset_s` 15, a group
    10 s after another is answered by its analysis (from the store, on another replica; the
    onsets straddle a slot boundary), one 12 s before it from memory, and one 40 s after is
    analysed anew. With 0 every onset is its own question."""
    now = datetime.now(UTC)
    slot = (now - timedelta(minutes=3)).timestamp() // 15 * 15
    onset = datetime.fromtimestamp(slot + 10, tz=UTC)  # 10 s later is in the next slot
    jaeger, loki = slow_database(now)
    asked = _counting(jaeger.app)
    async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
        settings = make_settings(
            jaeger={"url": jaeger_url, "cache_s": 0},
            loki={"url": loki_url, "cache_s": 0},
            correlation={"share_onset_s": within_s},
        )
        replicas = [Correlations(Pipeline(settings, reports=store), store) for _ in range(2)]
        try:
            items = {}
            for name, later_s in (("First", 0), ("Later", 10), ("Earlier", -12), ("Far", 40)):
                result = await record(store, _group(name, onset + timedelta(seconds=later_s)))
                assert result.work_item_id is not None
                items[name] = WorkItem(
                    result.work_item_id, "correlate", result.incident_id,
                    result.notification_id, 0,
                )  # fmt: skip
            await replicas[0].handle(items["First"])
            one = asked[0]
            await replicas[1].handle(items["Later"])  # nothing in its memory: the store's
            after_later = asked[0]
            await replicas[0].handle(items["Earlier"])  # in this replica's memory
            after_earlier = asked[0]
            await replicas[1].handle(items["Far"])
        finally:
            for replica in replicas:
                await replica.pipeline.close()
        reports = {n: await store.get_report(i.incident_id) for n, i in items.items()}
    first_id = items["First"].incident_id
    assert one > 0
    notes = {n: " ".join(r.notes) for n, r in reports.items() if r is not None}
    if within_s:
        assert (after_later, after_earlier, asked[0]) == (one, one, 2 * one)
        assert f"analysed once for incident {first_id} and this one" in notes["Later"]
        assert "onsets 10 s apart" in notes["Later"]
        assert "onsets 12 s apart" in notes["Earlier"]
        later = reports["Later"]
        assert later is not None and later.windows is not None
        assert later.windows.onset == onset  # the analysis answered First's onset
    else:
        assert (after_later, after_earlier, asked[0]) == (2 * one, 3 * one, 4 * one)
    assert "analysed once" not in notes["First"] + notes["Far"]
