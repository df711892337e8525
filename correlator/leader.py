"""One provisioning leader among the replicas: a Kubernetes Lease, a PostgreSQL advisory lock,
or, with SQLite, this process alone.

The Lease follows client-go's leader election: read the Lease; take it when it is free, ours,
or unchanged for its `leaseDurationSeconds` as timed by *this* replica's clock since it last
saw it change (so clocks need not agree across nodes, only run at about the same rate); write
it back with the `resourceVersion` read, so of two candidates the API server lets one win and
answers the other `409 Conflict`. The holder renews every `retry_period_s`.

Fencing: a replica counts itself leader only until `renew_deadline_s` after the start of its
last successful renewal. Another candidate takes over no sooner than `lease_duration_s` after
it saw that renewal, which is later, so a replica that cannot renew (partitioned, paused, its
API calls hanging) has stopped writing before another starts. Writers call `check()` before
each write batch; it raises `NotLeading` when that time has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kubernetes_asyncio import client
from sqlalchemy.engine import make_url

from correlator.errors import TemporaryError
from correlator.outbound.kube import KubeConflict, KubeError, KubeNotFound, kube_call
from correlator.settings import Settings, database_scheme

log = logging.getLogger(__name__)

Clock = Callable[[], float]
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Not a secret: the advisory lock key all replicas of one database agree on ("corrprov").
ADVISORY_LOCK_KEY = 0x636F727270726F76


class NotLeading(TemporaryError):
    """This replica does not hold the leadership (any more): it must not write."""


@dataclass(frozen=True, slots=True)
class Timings:
    """client-go's defaults: a dead leader is replaced within `lease_duration_s` (plus one
    `retry_period_s`); a leader that cannot renew stops after `renew_deadline_s`."""

    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "leader timings need retry_period_s < renew_deadline_s < lease_duration_s"
            )


class Leadership(Protocol):
    """What the provisioning loop needs of an election."""

    identity: str
    timings: Timings

    async def campaign_once(self) -> bool:
        """Try to acquire or renew once; True while this replica leads. Never raises for a
        refusal of the API or the database (that is a failed renewal)."""

    def is_leading(self) -> bool:
        """True while the last successful renewal is younger than the renew deadline."""

    def check(self) -> None:
        """Raise NotLeading unless this replica may write now."""

    async def release(self) -> None:
        """Give the leadership up now (a clean shutdown), so another need not wait it out."""

    async def close(self) -> None:
        """Release, and close what the election opened."""


def default_identity() -> str:
    """The pod name (the hostname in Kubernetes) and a suffix unique to this process."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_namespace() -> str:
    """The namespace of this pod's service account, else `default`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def micro_time(moment: datetime) -> str:
    """A MicroTime as the API server parses it: always six fraction digits, then Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Fenced:
    """The part every election shares: leadership lasts until the renew deadline."""

    identity: str
    timings: Timings

    def __init__(self, identity: str, timings: Timings, clock: Clock) -> None:
        self.identity = identity
        self.timings = timings
        self._clock = clock
        self._renewed_at: float | None = None  # local clock, start of the last good renewal

    def is_leading(self) -> bool:
        return (
            self._renewed_at is not None
            and self._clock() - self._renewed_at < self.timings.renew_deadline_s
        )

    def check(self) -> None:
        """Raise NotLeading unless this replica may write now (call before each write batch)."""
        if not self.is_leading():
            raise NotLeading(f"{self.identity} does not hold the provisioning leadership")


class SoleLeader(_Fenced):
    """A single process (SQLite): it always leads."""

    def __init__(self, identity: str | None = None) -> None:
        super().__init__(identity or default_identity(), Timings(), time.monotonic)

    def is_leading(self) -> bool:
        return True

    async def campaign_once(self) -> bool:
        return True

    async def release(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Observed:
    holder: str
    resource_version: str
    duration_s: float
    transitions: int
    acquire_time: str | None


class KubernetesLease(_Fenced):
    """Leader election through a `coordination.k8s.io/v1` Lease."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str | None = None,
        timings: Timings | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owns_api: bool = False,
    ) -> None:
        super().__init__(identity or default_identity(), timings or Timings(), clock)
        self._api, self._owns_api = api, owns_api
        self._leases = client.CoordinationV1Api(api)
        self.namespace, self.name = namespace, name
        self._wall_clock = wall_clock
        self._observed: _Observed | None = None
        self._observed_at = 0.0  # local clock when the observed record last changed

    def _body(self, *, resource_version: str | None, transitions: int, acquired: str) -> Any:
        now = micro_time(self._wall_clock())
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.timings.lease_duration_s)),
                "acquireTime": acquired,
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }

    async def _read(self) -> _Observed | None:
        try:
            lease = await kube_call(self._leases.read_namespaced_lease(self.name, self.namespace))
        except KubeNotFound:
            return None
        spec = lease.spec or client.V1LeaseSpec()
        acquired = spec.acquire_time
        return _Observed(
            holder=spec.holder_identity or "",
            resource_version=lease.metadata.resource_version,
            duration_s=float(spec.lease_duration_seconds or self.timings.lease_duration_s),
            transitions=spec.lease_transitions or 0,
            acquire_time=micro_time(acquired) if isinstance(acquired, datetime) else None,
        )

    async def campaign_once(self) -> bool:
        started = self._clock()
        try:
            return await asyncio.wait_for(
                self._try_acquire_or_renew(started), self.timings.renew_deadline_s
            )
        except (KubeError, OSError, TimeoutError, ValueError) as exc:
            log.warning(
                "leader election: cannot reach the Lease",
                extra={"lease": self.name, "error": f"{type(exc).__name__}: {exc}"},
            )
            return self.is_leading()

    async def _try_acquire_or_renew(self, started: float) -> bool:
        now = micro_time(self._wall_clock())
        observed = await self._read()
        if observed is None:
            body = self._body(resource_version=None, transitions=0, acquired=now)
            try:
                await kube_call(self._leases.create_namespaced_lease(self.namespace, body))
            except KubeConflict:  # another candidate created it first
                return self.is_leading()
            self._won(started, first=True)
            return True
        if observed != self._observed:
            self._observed, self._observed_at = observed, started
        mine = observed.holder == self.identity
        held_by_another = not mine and observed.holder
        if held_by_another and self._observed_at + observed.duration_s > started:
            self._lost(observed.holder)
            return False  # another replica holds a lease that has not expired
        body = self._body(
            resource_version=observed.resource_version,
            transitions=observed.transitions if mine else observed.transitions + 1,
            acquired=(observed.acquire_time or now) if mine else now,
        )
        try:
            await kube_call(self._leases.replace_namespaced_lease(self.name, self.namespace, body))
        except KubeConflict:  # written meanwhile: read again at the next try
            return self.is_leading()
        self._won(started, first=not mine)
        return True

    def _won(self, started: float, *, first: bool) -> None:
        if first or not self.is_leading():
            log.info("leader election: leading", extra={"lease": self.name, "id": self.identity})
        self._renewed_at = started

    def _lost(self, holder: str) -> None:
        if self._renewed_at is not None:
            log.warning(
                "leader election: lost the lease", extra={"lease": self.name, "holder": holder}
            )
        self._renewed_at = None

    async def release(self) -> None:
        """Hand the Lease back (holder empty, as client-go's ReleaseOnCancel does)."""
        if not self.is_leading():
            return
        self._renewed_at = None
        try:
            observed = await self._read()
            if observed is None or observed.holder != self.identity:
                return
            body = self._body(
                resource_version=observed.resource_version,
                transitions=observed.transitions,
                acquired=observed.acquire_time or micro_time(self._wall_clock()),
            )
            body["spec"]["holderIdentity"] = ""
            body["spec"]["leaseDurationSeconds"] = 1
            await kube_call(self._leases.replace_namespaced_lease(self.name, self.namespace, body))
        except (KubeError, OSError) as exc:
            log.warning("leader election: cannot release the Lease", extra={"error": str(exc)})

    async def close(self) -> None:
        await self.release()
        if self._owns_api:
            await self._api.close()


class AdvisoryLock(_Fenced):
    """Leader election through a PostgreSQL session advisory lock, held on its own connection.

    The lock is the session's: it goes when the connection does (the process died, or the
    server noticed the network go). Renewal is a round trip on that connection."""

    def __init__(
        self,
        dsn: str,
        *,
        identity: str | None = None,
        timings: Timings | None = None,
        key: int = ADVISORY_LOCK_KEY,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(identity or default_identity(), timings or Timings(), clock)
        self._dsn, self._key = dsn, key
        self._connection: Any = None

    async def campaign_once(self) -> bool:
        import asyncpg

        started = self._clock()
        try:
            return await asyncio.wait_for(self._try(started), self.timings.renew_deadline_s)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.warning("leader election: cannot reach PostgreSQL", extra={"error": str(exc)})
            await self._drop()
            return False

    def _keepalive_settings(self) -> dict[str, str]:
        """The server notices a vanished leader (host gone, cable cut) within about the lease
        duration, not TCP's default two hours, so its lock, and the leadership, move on."""
        lease_s = self.timings.lease_duration_s
        return {
            "tcp_keepalives_idle": str(max(1, round(lease_s / 3))),
            "tcp_keepalives_interval": str(max(1, round(lease_s / 6))),
            "tcp_keepalives_count": "3",
            "tcp_user_timeout": str(round(lease_s * 1000)),
        }

    async def _try(self, started: float) -> bool:
        import asyncpg

        if self._connection is None or self._connection.is_closed():
            self._renewed_at = None
            self._connection = await asyncpg.connect(
                self._dsn, server_settings=self._keepalive_settings()
            )
        if self.is_leading():
            await self._connection.fetchval("SELECT 1")  # the session, so the lock, is alive
        elif not await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", self._key):
            return False
        if not self.is_leading():
            log.info("leader election: leading (advisory lock)", extra={"id": self.identity})
        self._renewed_at = started
        return True

    async def _drop(self) -> None:
        self._renewed_at = None
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.terminate()

    async def release(self) -> None:
        """Unlock before closing: the server ends a closed session when it gets to it, and the
        next leader should not have to wait for that."""
        connection = self._connection
        self._renewed_at = None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    connection.execute("SELECT pg_advisory_unlock_all()"),
                    self.timings.retry_period_s,
                )
        await self._drop()

    async def close(self) -> None:
        await self._drop()


async def from_settings(settings: Settings) -> Leadership:
    """The election the settings ask for (`leader.election`; auto: a Lease with Kubernetes
    discovery, an advisory lock on PostgreSQL, else this process alone)."""
    options = settings.leader
    kind = options.election
    if kind == "auto":
        if settings.kubernetes.discovery:
            kind = "kubernetes"
        elif database_scheme(settings.database.url) == "postgresql":
            kind = "postgresql"
        else:
            kind = "none"
    timings = Timings(
        lease_duration_s=options.lease_duration_s,
        renew_deadline_s=options.renew_deadline_s,
        retry_period_s=options.retry_period_s,
    )
    if kind == "kubernetes":
        from correlator.discovery.kubernetes import api_client

        api = await api_client(settings.kubernetes.kubeconfig)
        return KubernetesLease(
            api,
            namespace=options.namespace or default_namespace(),
            name=options.lease_name,
            identity=options.identity,
            timings=timings,
            owns_api=True,
        )
    if kind == "postgresql":
        url = make_url(settings.database.url).set(drivername="postgresql")
        return AdvisoryLock(
            url.render_as_string(hide_password=False), identity=options.identity, timings=timings
        )
    return SoleLeader(options.identity)
