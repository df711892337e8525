"""The outbox's two ends: `Notifier.enqueue` records what each sink should show after a
report is stored; `Deliverer` sends it, retries with exponential backoff and jitter, honours
Retry-After, and gives up on permanent refusals (recorded with the incident and counted).

The guarantee, precisely:
- an incident's message reaches each sink at least once, and is edited rather than repeated
  for every later version: the sink's handle on its message (a Slack ts, a comment id) is
  stored the moment the platform returns it, before anything else can fail;
- if the process dies after the platform accepted a *first* message but before that handle
  was stored (a window of one database write), the delivery is retried after its lease expires
  and the platform shows a second message. Edits and the generic webhook's retries (which
  carry the same X-Correlator-Delivery id) never duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from correlator.analysis.scope import ScopeRules
from correlator.backoff import Backoff
from correlator.catalogue import Catalogue
from correlator.errors import StoreUnavailable
from correlator.metrics import Metrics
from correlator.models.incidents import IncidentDetail
from correlator.provisioning.naming import Links
from correlator.redaction import mask_text
from correlator.settings import NotifySettings, TenancySettings
from correlator.sinks.base import Sink, SinkRejected, SinkRetry
from correlator.sinks.message import incident_message, material
from correlator.store import Store, outbox
from correlator.tenancy import app_of_alerts
from correlator.worker import worker_identity

log = logging.getLogger(__name__)


class Notifier:
    def __init__(
        self,
        store: Store,
        settings: NotifySettings,
        sinks: dict[str, Sink],
        catalogue: Catalogue | None = None,
        links: Links | None = None,
        *,
        rules: ScopeRules | None = None,
        tenancy: TenancySettings | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sinks = sinks
        self.catalogue = catalogue or Catalogue()
        self.links = links or Links()
        self.rules = rules or ScopeRules()
        self.tenancy = tenancy or TenancySettings()
        self.wake = asyncio.Event()

    async def enqueue(self, incident: IncidentDetail, report: dict[str, Any] | None) -> int:
        """Record the incident's message for every sink routed to it; returns how many are news."""
        if not self.sinks:
            return 0
        # The app the alerts' namespace owns, which every alert of the group must agree on:
        # a label naming another namespace's app does not reach that app's channel or repo.
        alerts = [{**a.labels, **incident.common_labels} for a in incident.alerts]
        app = app_of_alerts(
            alerts or [incident.common_labels], self.catalogue.apps(), self.rules, self.tenancy
        )
        message = incident_message(
            incident,
            report,
            public_url=self.links.correlator_url,
            app=app,
            dashboard_url=self.links.dashboard_url(app) if app else None,
            kiali_url=self.links.kiali_url,
        )
        key = material(message)
        now = self.store.clock()
        severity = message["severity"]
        team = app.spec.team if app is not None else None
        routed = [
            name
            for name, sink in self.sinks.items()
            if (not sink.severities or severity in sink.severities)
            and (not sink.teams or team in sink.teams)
        ]
        # Every sink's row in one transaction: one write, not one per sink.
        news = await self.store.write(
            lambda c: sum(
                outbox.want(
                    c, incident_id=incident.id, sink=name, message=message, material=key, now=now
                )
                for name in routed
            )
        )
        if news:
            self.wake.set()
        return news


class Deliverer:
    def __init__(
        self,
        store: Store,
        settings: NotifySettings,
        sinks: dict[str, Sink],
        metrics: Metrics,
        *,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sinks = sinks
        self.metrics = metrics
        self.owner = worker_identity()
        self.wake = wake or asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self) -> None:
        """Claim and send until stopped. A store that refuses is waited out with backoff:
        the loop never ends on a refusal."""
        backoff = Backoff()
        while not self._stopping:
            try:
                delivery = await self.store.write(
                    outbox.claim, self.owner, self.settings.lease_s, self.store.clock()
                )
            except StoreUnavailable as exc:
                log.warning("cannot claim a delivery", extra={"error": str(exc)})
                await self._pause(backoff.next_delay_s())
                continue
            backoff.reset()
            if delivery is None:
                await self._pause(1.0)
                continue
            await self.deliver(delivery)

    async def _pause(self, seconds: float) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        self.wake.clear()

    async def deliver(self, delivery: outbox.Delivery) -> None:
        sink = self.sinks.get(delivery.sink)
        if sink is None:
            await self._failed(delivery, "the sink is no longer configured", give_up=True)
            return

        async def remember(remote: dict[str, Any]) -> None:
            await self._record(
                "the sink's handle on its message",
                lambda c, now: outbox.remember(
                    c, delivery=delivery, owner=self.owner, remote=remote, now=now
                ),
            )

        keep_alive = asyncio.create_task(self._renew(delivery), name="delivery-lease")
        try:
            remote = await sink.send(delivery.desired, delivery.remote, remember)
        except SinkRejected as exc:
            await self._failed(delivery, str(exc), give_up=True)
        except SinkRetry as exc:
            await self._failed(delivery, str(exc), give_up=False, at_least_s=exc.retry_after_s)
        except Exception as exc:  # a bug in a sink: retried like a transient failure, logged
            log.exception("sink %s failed", delivery.sink)
            await self._failed(delivery, f"{type(exc).__name__}: {exc}", give_up=False)
        else:
            await self._record(
                "the delivery",
                lambda c, now: outbox.delivered(
                    c, delivery=delivery, owner=self.owner, remote=remote, now=now
                ),
            )
            self.metrics.sink_deliveries.labels(delivery.sink, "delivered").inc()
        finally:
            keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_alive

    async def _renew(self, delivery: outbox.Delivery) -> None:
        """Renew the lease while the send is under way, so no other consumer sends it again."""
        lease_s = self.settings.lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                await self.store.write(
                    lambda c, now: outbox.renew(
                        c, delivery=delivery, owner=self.owner, lease_s=lease_s, now=now
                    ),
                    self.store.clock(),
                )
            except StoreUnavailable as exc:
                log.warning("cannot renew a delivery's lease", extra={"error": str(exc)})

    async def _record(self, what: str, write: Callable[[Connection, datetime], None]) -> None:
        """Write an outcome, retrying a refusing store with backoff for as long as the lease
        would have lasted; after that the lease lapses and the delivery is tried again."""
        backoff = Backoff(base_s=min(0.5, self.settings.lease_s / 8))
        deadline = time.monotonic() + self.settings.lease_s
        while True:
            try:
                await self.store.write(write, self.store.clock())
                return
            except StoreUnavailable as exc:
                delay_s = backoff.next_delay_s()
                if time.monotonic() + delay_s > deadline:
                    log.error("cannot record %s; it will be retried", what,
                              extra={"error": str(exc)})  # fmt: skip
                    return
                log.warning("cannot record %s yet", what, extra={"error": str(exc)})
                await asyncio.sleep(delay_s)

    async def _failed(
        self,
        delivery: outbox.Delivery,
        error: str,
        *,
        give_up: bool,
        at_least_s: float | None = None,
    ) -> None:
        error = mask_text(error)  # a sink's error may quote a URL with its credentials
        give_up = give_up or delivery.attempts >= self.settings.max_attempts
        # Exponential backoff with full jitter, never sooner than the platform asked.
        ceiling = min(
            self.settings.retry_max_s, self.settings.retry_base_s * 2 ** (delivery.attempts - 1)
        )
        delay = max(random.uniform(ceiling / 2, ceiling), at_least_s or 0.0)  # noqa: S311
        now = self.store.clock()
        retry_at = None if give_up else now + timedelta(seconds=delay)
        log.warning(
            "delivery failed",
            extra={"sink": delivery.sink, "incident": delivery.incident_id, "give_up": give_up,
                   "attempt": delivery.attempts, "error": error},
        )  # fmt: skip
        await self._record(
            "a failed attempt",
            lambda c, _: outbox.failed(
                c, delivery=delivery, owner=self.owner, error=error, now=now, retry_at=retry_at
            ),
        )
        self.metrics.sink_deliveries.labels(
            delivery.sink, "given_up" if give_up else "retried"
        ).inc()
