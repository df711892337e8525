"""Kubernetes discovery against the Kubernetes API test server: list, watch, 410, bookmarks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from kubernetes_asyncio import client

from correlator.discovery.kubernetes import KubernetesSource, Snapshot
from tests.fakes.kubernetes import FakeKubernetes
from tests.support.servers import served


def webapp(name: str, namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "platform.correlator.dev/v1alpha1",
        "kind": "WebApplication",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": "registry/app:1", "team": "payments", **spec},
    }


class Running:
    """A KubernetesSource running against the fake, with its change notifications queued."""

    def __init__(self, fake: FakeKubernetes, api: client.ApiClient, namespaces: list[str]) -> None:
        self.fake = fake
        self.changes: asyncio.Queue[Snapshot] = asyncio.Queue()

        async def on_change(snapshot: Snapshot) -> None:
            await self.changes.put(snapshot)

        self.source = KubernetesSource(
            api,
            group="platform.correlator.dev",
            version="v1alpha1",
            namespaces=namespaces,
            on_change=on_change,
            watch_timeout_s=30,
        )
        self.task: asyncio.Task[None] | None = None

    async def next_change(self, timeout_s: float = 5) -> Snapshot:
        return await asyncio.wait_for(self.changes.get(), timeout_s)

    async def quiet_for(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.changes.get(), seconds)
        except TimeoutError:
            return True
        return False


@pytest.fixture
async def kube() -> AsyncIterator[tuple[FakeKubernetes, str]]:
    fake = FakeKubernetes()
    async with served(fake.app) as url:
        try:
            yield fake, url
        finally:
            fake.break_watches()


@contextlib.asynccontextmanager
async def running(
    kube: tuple[FakeKubernetes, str],
    *,
    token: str | None = None,
    namespaces: list[str] | None = None,
) -> AsyncIterator[Running]:
    fake, url = kube
    configuration = client.Configuration(host=url)
    configuration.api_key = {"BearerToken": token or fake.token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    async with client.ApiClient(configuration) as api:
        run = Running(fake, api, namespaces or [])
        run.task = asyncio.create_task(run.source.run())
        try:
            yield run
        finally:
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task


def keys(snapshot: Snapshot) -> list[str]:
    return [app.key for app in snapshot.apps]


async def test_lists_then_follows_additions_changes_and_deletions(kube: Any) -> None:
    fake, _ = kube
    fake.apply(webapp("checkout"))
    async with running(kube) as run:
        assert keys(await run.next_change()) == ["shop/checkout"]
        fake.apply(webapp("catalog"))
        assert keys(await run.next_change()) == ["shop/catalog", "shop/checkout"]
        fake.apply(webapp("checkout", slo={"availability": 99.9}))
        changed = await run.next_change()
        assert next(
            a for a in changed.apps if a.name == "checkout"
        ).spec.slo.availability == Decimal("99.9")
        fake.delete("shop", "catalog")
        assert keys(await run.next_change()) == ["shop/checkout"]


async def test_status_updates_are_not_changes(kube: Any) -> None:
    fake, _ = kube
    fake.apply(webapp("checkout"))
    async with running(kube) as run:
        snapshot = await run.next_change()
        await run.source.write_condition(snapshot.apps[0].key, ok=True, message="2 dashboards")
        assert await run.quiet_for(0.8)
        assert len(fake.status_writes) == 1
        status = fake.webapps()[0]["status"]
        assert status["conditions"][0]["type"] == "Provisioned"
        assert status["conditions"][0]["status"] == "True"
        assert status["observedGeneration"] == 1


async def test_the_same_condition_is_written_once(kube: Any) -> None:
    fake, _ = kube
    fake.apply(webapp("checkout"))
    async with running(kube) as run:
        app = (await run.next_change()).apps[0]
        await run.source.write_condition(app.key, ok=False, message="Grafana answered 412")
        await asyncio.sleep(0.3)  # the MODIFIED event of the status write reaches the source
        await run.source.write_condition(app.key, ok=False, message="Grafana answered 412")
        assert len(fake.status_writes) == 1


async def test_bookmarks_keep_the_resource_version_current(kube: Any) -> None:
    fake, _ = kube
    fake.apply(webapp("checkout"))
    async with running(kube) as run:
        await run.next_change()
        listed = run.source.resource_versions[None]
        fake.apply(webapp("other", namespace="elsewhere"))
        await run.next_change()
        fake.compact()  # the API server forgets; a bookmark carries the newest version anyway
        await asyncio.sleep(0.5)
        assert int(run.source.resource_versions[None]) > int(listed)


async def test_gone_watch_lists_again_and_notices_deletions_made_meanwhile(kube: Any) -> None:
    fake, _ = kube
    fake.bookmark_every_s = 30  # no bookmark rescues the stale version in this test
    for name in ("checkout", "catalog"):
        fake.apply(webapp(name))
    async with running(kube) as run:
        assert keys(await run.next_change()) == ["shop/catalog", "shop/checkout"]
        await asyncio.sleep(0.2)
        fake.break_watches()
        fake.delete("shop", "catalog")  # happens while no watch is open...
        fake.compact()  # ...and the event is gone from the API server's history
        assert keys(await run.next_change()) == ["shop/checkout"]
        assert run.source.relists == 1


async def test_a_dropped_watch_resumes_without_listing_again(kube: Any) -> None:
    fake, _ = kube
    fake.apply(webapp("checkout"))
    async with running(kube) as run:
        await run.next_change()
        await asyncio.sleep(0.2)
        fake.break_watches()
        fake.apply(webapp("catalog"))
        assert keys(await run.next_change(timeout_s=10)) == ["shop/catalog", "shop/checkout"]
        assert run.source.relists == 0


async def test_an_invalid_resource_is_reported_and_the_others_kept(kube: Any) -> None:
    fake, _ = kube
    fake.apply(webapp("checkout"))
    bad = webapp("broken")
    del bad["spec"]["team"]
    fake.apply(bad)
    async with running(kube) as run:
        snapshot = await run.next_change()
        assert keys(snapshot) == ["shop/checkout"]
        assert [str(e) for e in snapshot.errors] == [
            "webapplications/shop/broken: spec.team: Field required"
        ]


async def test_only_the_configured_namespaces_are_followed(kube: Any) -> None:
    fake, _ = kube
    fake.apply(webapp("checkout", namespace="shop"))
    fake.apply(webapp("ledger", namespace="finance"))
    async with running(kube, namespaces=["finance"]) as run:
        assert keys(await run.next_change()) == ["finance/ledger"]
        fake.apply(webapp("catalog", namespace="shop"))
        assert await run.quiet_for(0.6)


async def test_a_refused_token_is_retried_without_ending_the_loop(kube: Any) -> None:
    fake, _ = kube
    fake.apply(webapp("checkout"))
    async with running(kube, token="wrong") as run:
        assert await run.quiet_for(1.0)
        assert run.task is not None and not run.task.done()
