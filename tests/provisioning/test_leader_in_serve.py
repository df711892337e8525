"""Two `correlator serve` replicas provisioning one manifests directory into the Grafana test
server: exactly one (the leader) writes; when it dies the other takes over and finishes the
work; a leader that was paused past its lease does not write when it wakes up.

Elections: a PostgreSQL advisory lock (both replicas on one database), and a Lease through the
Kubernetes API test server. Short timings (lease 3 s, renew deadline 2 s, retry 0.3 s) keep it
quick. Every wait is for a signal (a metric, a log line); its bound is a multiple of what the
configured timings allow, there to end a hang, not to measure speed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from correlator.provisioning.naming import dashboard_uid
from tests.fakes.grafana import VERSIONS, FakeGrafana
from tests.fakes.kubernetes import FakeKubernetes
from tests.provisioning.conftest import ROOT
from tests.support.databases import postgres_database
from tests.support.processes import Service
from tests.support.servers import eventually, served

LEASE_S, RENEW_S, RETRY_S = 3.0, 2.0, 0.3
RESYNC_S = 1.0
# A follower takes over once it has seen the lease unrenewed for LEASE_S; its next try comes
# within RETRY_S and takes at most RENEW_S. Ten times that leaves a loaded CI machine room.
TAKEOVER_BOUND_S = 10 * (LEASE_S + RETRY_S + RENEW_S)
# A replica passes at least every RESYNC_S; ten resyncs bound a wait for its next pass.
PASS_BOUND_S = 10 * RESYNC_S + TAKEOVER_BOUND_S
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


def metric(service: Service, name: str) -> float:
    """A sample of the replica's /metrics (0 when absent)."""
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


LEADER = 'correlator_leader{role="provisioning"}'
WRITES = "correlator_provisioning_writes_total"
PASSES_OK = 'correlator_provisioning_runs_total{outcome="ok"}'
PASSES_FOLLOWING = 'correlator_provisioning_runs_total{outcome="following"}'


def passes_logged(service: Service) -> int:
    """Provisioning passes the replica has run (and logged) so far."""
    return service.log().count('"message": "provisioning pass"')


def new_app(source: Path, name: str) -> str:
    app = yaml.safe_load((source / "checkout.yaml").read_text())
    app["metadata"]["name"] = name
    # Its own tracing name and log stream: an app cannot claim another app's.
    app["spec"]["observability"]["traceService"] = f"{name}.shop"
    app["spec"]["observability"]["logSelector"] = f'{{namespace="shop", app="{name}"}}'
    (source / f"{name}.yaml").write_text(yaml.safe_dump(app))
    return dashboard_uid("shop", name)


@asynccontextmanager
async def replicas(
    tmp_path: Path, grafana_url: str, token: str, env: dict[str, str]
) -> AsyncIterator[tuple[Path, list[Service]]]:
    source = tmp_path / "manifests"
    shutil.copytree(ROOT / "examples", source)
    common = {
        "CORRELATOR_PROVISIONING_SOURCE_DIR": str(source),
        "CORRELATOR_PROVISIONING_GRAFANA_URL": grafana_url,
        "CORRELATOR_PROVISIONING_GRAFANA_TOKEN": token,
        "CORRELATOR_PROVISIONING_WATCH_INTERVAL_S": "0.2",
        "CORRELATOR_PROVISIONING_RESYNC_INTERVAL_S": str(RESYNC_S),
        "CORRELATOR_LEADER_LEASE_DURATION_S": str(LEASE_S),
        "CORRELATOR_LEADER_RENEW_DEADLINE_S": str(RENEW_S),
        "CORRELATOR_LEADER_RETRY_PERIOD_S": str(RETRY_S),
        **env,
    }
    services = []
    for identity in ("replica-a", "replica-b"):
        workdir = tmp_path / identity
        workdir.mkdir()
        services.append(Service(workdir, env={**common, "CORRELATOR_LEADER_IDENTITY": identity}))
    try:
        for service in services:
            await asyncio.to_thread(service.start)
        yield source, services
    finally:
        for service in services:
            if service.process is not None and service.process.poll() is None:
                os.kill(service.process.pid, signal.SIGCONT)
            await asyncio.to_thread(service.stop)


async def leader_and_follower(services: list[Service]) -> tuple[Service, Service]:
    await eventually(
        lambda: sum(metric(s, LEADER) for s in services) == 1, "one leader", timeout_s=20
    )
    leader = next(s for s in services if metric(s, LEADER) == 1)
    return leader, next(s for s in services if s is not leader)


async def exactly_one_writes_then_the_other_takes_over(
    fake: FakeGrafana, source: Path, services: list[Service]
) -> tuple[Service, Service]:
    await eventually(lambda: len(fake.dashboards) == 3, "three dashboards", timeout_s=30)
    leader, follower = await leader_and_follower(services)
    await eventually(lambda: metric(leader, PASSES_OK) >= 3, "resync passes by the leader")
    assert metric(leader, WRITES) > 0
    assert metric(follower, WRITES) == 0
    assert metric(follower, PASSES_OK) == 0  # it followed the apps, and wrote nothing
    assert metric(follower, PASSES_FOLLOWING) > 0
    assert metric(follower, LEADER) == 0

    leader.kill()
    uid = new_app(source, "payments-api")  # work the new leader must do
    await eventually(
        lambda: metric(follower, LEADER) == 1, "the takeover", timeout_s=TAKEOVER_BOUND_S
    )
    await eventually(
        lambda: uid in fake.dashboards, "the new leader's pass", timeout_s=PASS_BOUND_S
    )
    # The pass counts its writes when it ends, a moment after Grafana received them.
    await eventually(lambda: metric(follower, WRITES) > 0, "the new leader's writes counted")
    return leader, follower


# Each election test runs against another of the Grafana versions the test server imitates
# (three replicas per test are too slow to run each against every version).


async def test_advisory_lock_one_writer_and_a_takeover_when_it_is_killed(tmp_path: Path) -> None:
    fake = FakeGrafana(version=VERSIONS[0])
    async with served(fake.app) as grafana, postgres_database() as database:
        env = {"CORRELATOR_DATABASE_URL": database}
        async with replicas(tmp_path, grafana, fake.token, env) as (source, services):
            await exactly_one_writes_then_the_other_takes_over(fake, source, services)


def kubeconfig(path: Path, url: str, token: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": url}}],
                "users": [{"name": "test", "user": {"token": token}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "current-context": "test",
            }
        )
    )
    return path


@asynccontextmanager
async def lease_replicas(
    tmp_path: Path, grafana_version: str
) -> AsyncIterator[tuple[FakeGrafana, FakeKubernetes, Path, list[Service]]]:
    fake, kube = FakeGrafana(version=grafana_version), FakeKubernetes()
    async with served(fake.app) as grafana, served(kube.app) as api:
        env = {
            "CORRELATOR_LEADER_ELECTION": "kubernetes",
            "CORRELATOR_LEADER_NAMESPACE": "correlator",
            "CORRELATOR_KUBERNETES_KUBECONFIG": str(
                kubeconfig(tmp_path / "kubeconfig", api, kube.token)
            ),
        }
        async with replicas(tmp_path, grafana, fake.token, env) as (source, services):
            yield fake, kube, source, services


async def test_lease_one_writer_and_a_takeover_when_it_is_killed(tmp_path: Path) -> None:
    async with lease_replicas(tmp_path, VERSIONS[2]) as (fake, kube, source, services):
        _, follower = await exactly_one_writes_then_the_other_takes_over(fake, source, services)
        lease = kube.lease("correlator", "correlator-provisioning")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == follower.env["CORRELATOR_LEADER_IDENTITY"]
        assert lease["spec"]["leaseTransitions"] == 1


async def test_lease_a_paused_leader_does_not_write_when_it_wakes(tmp_path: Path) -> None:
    async with lease_replicas(tmp_path, VERSIONS[4]) as (fake, kube, source, services):
        await eventually(lambda: len(fake.dashboards) == 3, "three dashboards", timeout_s=30)
        leader, follower = await leader_and_follower(services)
        assert leader.process is not None
        following_at_pause = metric(leader, PASSES_FOLLOWING)
        os.kill(leader.process.pid, signal.SIGSTOP)  # a long GC pause, a frozen node
        passes_at_pause = passes_logged(leader)  # its log cannot grow while it is stopped
        await eventually(
            lambda: metric(follower, LEADER) == 1, "the takeover", timeout_s=TAKEOVER_BOUND_S
        )
        # The old leader wakes with work to do: a new app, and a hand-edited dashboard.
        uid = new_app(source, "wakeup")
        checkout = dashboard_uid("shop", "checkout")
        fake.edit_by_hand(checkout)
        os.kill(leader.process.pid, signal.SIGCONT)
        await eventually(
            lambda: uid in fake.dashboards, "the new leader's pass", timeout_s=PASS_BOUND_S
        )
        await eventually(
            lambda: fake.dashboards[checkout].dashboard["title"] == "shop / checkout",
            "the hand edit reverted",
            timeout_s=PASS_BOUND_S,
        )
        # The woken replica has had its chance: its election read the Lease and found it lost,
        # and its provisioning loop has passed again since it woke (as a follower).
        await eventually(
            lambda: "leader election: lost the lease" in leader.log(),
            "the woken replica seeing the lease lost",
            timeout_s=TAKEOVER_BOUND_S,
        )
        await eventually(
            lambda: metric(leader, PASSES_FOLLOWING) > following_at_pause,
            "a pass by the woken replica",
            timeout_s=PASS_BOUND_S,
        )
        assert metric(leader, LEADER) == 0
        # Its resync was overdue when it woke: without fencing it would pass (and write) now.
        assert passes_logged(leader) == passes_at_pause
        assert metric(follower, WRITES) > 0
        holders = [w["spec"]["holderIdentity"] for w in kube.lease_writes]
        taken_at = holders.index(follower.env["CORRELATOR_LEADER_IDENTITY"])
        assert leader.env["CORRELATOR_LEADER_IDENTITY"] not in holders[taken_at:]  # not taken back
