"""Leader election: Leases through the Kubernetes API test server (driven by a fake clock, so
every race is decided by the order of requests, not by timing), and PostgreSQL advisory locks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kubernetes_asyncio import client

from correlator.leader import AdvisoryLock, KubernetesLease, NotLeading, Timings, micro_time
from tests.fakes.kubernetes import FakeKubernetes
from tests.support.databases import postgres_database
from tests.support.servers import served

NAMESPACE, NAME = "correlator", "correlator-provisioning"
TIMINGS = Timings(lease_duration_s=15, renew_deadline_s=10, retry_period_s=2)


class Clock:
    """A local monotonic clock and a wall clock that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 11, 30, 12, 0, tzinfo=UTC) + timedelta(seconds=self.now)


@pytest.fixture
async def kube() -> AsyncIterator[tuple[FakeKubernetes, client.ApiClient]]:
    fake = FakeKubernetes()
    async with served(fake.app) as url:
        configuration = client.Configuration(host=url)
        configuration.api_key = {"BearerToken": fake.token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        async with client.ApiClient(configuration) as api:
            yield fake, api


def candidate(
    api: client.ApiClient, identity: str, clock: Clock, timings: Timings = TIMINGS
) -> KubernetesLease:
    return KubernetesLease(
        api,
        namespace=NAMESPACE,
        name=NAME,
        identity=identity,
        timings=timings,
        clock=clock,
        wall_clock=clock.wall,
    )


def holder(fake: FakeKubernetes) -> str | None:
    lease = fake.lease(NAMESPACE, NAME)
    return None if lease is None else lease["spec"]["holderIdentity"]


async def test_of_two_candidates_exactly_one_leads(kube: Any) -> None:
    fake, api = kube
    clock = Clock()
    a, b = candidate(api, "a", clock), candidate(api, "b", clock)

    assert await a.campaign_once() is True
    assert await b.campaign_once() is False
    clock.now += 2
    assert await a.campaign_once() is True  # a renewal
    assert await b.campaign_once() is False

    lease = fake.lease(NAMESPACE, NAME)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert lease["spec"]["leaseTransitions"] == 0
    assert lease["spec"]["renewTime"] == micro_time(clock.wall())
    assert [w["spec"]["holderIdentity"] for w in fake.lease_writes] == ["a", "a"]
    assert a.is_leading() and not b.is_leading()
    with pytest.raises(NotLeading):
        b.check()


async def test_candidates_racing_for_a_missing_lease_one_creates_it(kube: Any) -> None:
    fake, api = kube
    clock = Clock()
    candidates = [candidate(api, name, clock) for name in ("a", "b", "c")]

    results = await asyncio.gather(*(c.campaign_once() for c in candidates))

    assert sorted(results) == [False, False, True]
    winner = candidates[results.index(True)]
    assert holder(fake) == winner.identity
    assert len(fake.lease_writes) == 1  # the others got 409 AlreadyExists


async def test_candidates_racing_for_an_expired_lease_one_wins_the_others_conflict(
    kube: Any,
) -> None:
    fake, api = kube
    clock = Clock()
    dead = candidate(api, "dead", clock)
    assert await dead.campaign_once()
    candidates = [candidate(api, name, clock) for name in ("a", "b")]
    assert not any(await asyncio.gather(*(c.campaign_once() for c in candidates)))
    clock.now += 15.1  # the dead holder's lease has expired for both observers

    results = await asyncio.gather(*(c.campaign_once() for c in candidates))

    assert sorted(results) == [False, True]
    winner = candidates[results.index(True)]
    lease = fake.lease(NAMESPACE, NAME)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == winner.identity
    assert lease["spec"]["leaseTransitions"] == 1
    assert lease["spec"]["acquireTime"] == micro_time(clock.wall())
    assert [w["spec"]["holderIdentity"] for w in fake.lease_writes] == ["dead", winner.identity]


async def test_a_conflict_on_renew_keeps_the_leader_until_it_reads_again(kube: Any) -> None:
    fake, api = kube
    clock = Clock()
    a = candidate(api, "a", clock)
    assert await a.campaign_once()
    fake.writes_before_next_lease_replace = 1  # someone writes between a's read and write
    clock.now += 2

    assert await a.campaign_once() is True  # 409 Conflict: still within its renew deadline
    assert len(fake.lease_writes) == 1
    clock.now += 2
    assert await a.campaign_once() is True  # read again, renewed
    assert len(fake.lease_writes) == 2
    assert holder(fake) == "a"


async def test_a_leader_whose_renewals_conflict_past_the_deadline_stops_leading(
    kube: Any,
) -> None:
    fake, api = kube
    clock = Clock()
    a = candidate(api, "a", clock)
    assert await a.campaign_once()
    for _ in range(5):
        clock.now += 2
        fake.writes_before_next_lease_replace = 1
        leading = await a.campaign_once()

    assert leading is False  # 10 s since the last renewal that counted
    with pytest.raises(NotLeading):
        a.check()


async def test_a_holder_that_stops_renewing_is_fenced_before_it_is_replaced(kube: Any) -> None:
    fake, api = kube
    clock = Clock()
    a, b = candidate(api, "a", clock), candidate(api, "b", clock)
    assert await a.campaign_once()
    assert not await b.campaign_once()  # b first sees a's renewal now

    # a stops renewing (paused, partitioned). It stops counting itself leader at 10 s ...
    clock.now += 9.9
    a.check()
    clock.now += 0.2
    with pytest.raises(NotLeading):
        a.check()
    # ... and b takes over no sooner than 15 s after it saw a's last renewal.
    clock.now += 4.8  # 14.9 s
    assert not await b.campaign_once()
    clock.now += 0.2  # 15.1 s
    assert await b.campaign_once()

    lease = fake.lease(NAMESPACE, NAME)
    assert lease is not None
    assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseTransitions"]) == ("b", 1)
    # a comes back: it sees b's fresh lease and does not take it back.
    assert not await a.campaign_once()
    assert holder(fake) == "b"


async def test_a_released_lease_is_taken_at_once(kube: Any) -> None:
    fake, api = kube
    clock = Clock()
    a, b = candidate(api, "a", clock), candidate(api, "b", clock)
    assert await a.campaign_once()
    assert not await b.campaign_once()

    await a.release()
    clock.now += 2

    assert not a.is_leading()
    assert await b.campaign_once()
    assert holder(fake) == "b"


async def test_a_refused_api_is_a_failed_renewal_not_a_crash(kube: Any) -> None:
    fake, api = kube
    clock = Clock()
    a = candidate(api, "a", clock)
    assert await a.campaign_once()
    fake.token = "rotated"  # every request is now 401
    clock.now += 2
    assert await a.campaign_once() is True  # within the renew deadline
    clock.now += 9
    assert await a.campaign_once() is False


async def test_the_fake_refuses_what_the_api_server_refuses(kube: Any) -> None:
    fake, api = kube
    base = api.configuration.host + "/apis/coordination.k8s.io/v1/namespaces/correlator/leases"
    headers = {"Authorization": f"Bearer {fake.token}"}

    def lease(**spec: Any) -> dict[str, Any]:
        return {"metadata": {"name": NAME}, "spec": spec}

    async with httpx.AsyncClient(headers=headers) as http:
        no_micros = await http.post(base, json=lease(renewTime="2026-11-30T12:00:00Z"))
        negative = await http.post(base, json=lease(leaseDurationSeconds=0))
        created = await http.post(base, json=lease(holderIdentity="x", leaseDurationSeconds=5))
        again = await http.post(base, json=lease(holderIdentity="y"))
        stale = created.json()
        stale["metadata"]["resourceVersion"] = "1"
        conflict = await http.put(f"{base}/{NAME}", json=stale)
        renamed = await http.put(f"{base}/other", json=created.json())

    assert (no_micros.status_code, no_micros.json()["reason"]) == (400, "BadRequest")
    assert (negative.status_code, negative.json()["reason"]) == (422, "Invalid")
    assert created.status_code == 201
    assert (again.status_code, again.json()["reason"]) == (409, "AlreadyExists")
    assert (conflict.status_code, conflict.json()["reason"]) == (409, "Conflict")
    assert renamed.status_code == 400


def test_micro_time_always_has_six_fraction_digits() -> None:
    assert micro_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"


@pytest.mark.postgres
async def test_advisory_lock_one_holder_and_handover_when_its_session_ends() -> None:
    async with postgres_database() as url:
        quick = Timings(lease_duration_s=3, renew_deadline_s=2, retry_period_s=0.1)
        a = AdvisoryLock(url, identity="a", timings=quick)
        b = AdvisoryLock(url, identity="b", timings=quick)
        try:
            assert await a.campaign_once()
            assert not await b.campaign_once()
            assert await a.campaign_once()  # renewal: its session is alive
            # The server gives up on a vanished leader's session within about the lease.
            assert await a._connection.fetchval("SHOW tcp_user_timeout") == "3000"  # ms
            await a.release()  # a clean shutdown unlocks: the other leads at its next try
            assert await b.campaign_once()
            assert not await a.campaign_once()
        finally:
            await a.release()
            await b.release()


async def test_the_settings_choose_the_election(tmp_path: Any, kube: Any) -> None:
    from correlator.leader import SoleLeader, from_settings
    from correlator.settings import load_settings

    fake, api = kube
    alone = await from_settings(load_settings(database={"url": f"sqlite:///{tmp_path}/c.db"}))
    assert isinstance(alone, SoleLeader) and await alone.campaign_once()
    locked = await from_settings(load_settings(database={"url": "postgresql://u:pw@db/c"}))
    assert isinstance(locked, AdvisoryLock)
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters: [{{name: t, cluster: {{server: '{api.configuration.host}'}}}}]\n"
        f"users: [{{name: t, user: {{token: {fake.token}}}}}]\n"
        "contexts: [{name: t, context: {cluster: t, user: t}}]\n"
    )
    settings = load_settings(
        kubernetes={"kubeconfig": str(config)},
        leader={"election": "kubernetes", "namespace": "ops", "identity": "pod-1"},
    )
    lease = await from_settings(settings)
    try:
        assert isinstance(lease, KubernetesLease)
        assert await lease.campaign_once()
        stored = fake.lease("ops", "correlator-provisioning")
        assert stored is not None and stored["spec"]["holderIdentity"] == "pod-1"
    finally:
        await lease.close()
    released = fake.lease("ops", "correlator-provisioning")
    assert released is not None and released["spec"]["holderIdentity"] == ""
