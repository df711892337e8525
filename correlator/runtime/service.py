"""The composition root: settings in, the running service out.

`create_app` takes the web application (routes and middleware, `web/app.py`) and gives it one
aiohttp cleanup context per resource, in the order they start: the store, the sinks, the
correlation pipeline, the background loops, the queue consumers, the intake writer. They stop
in the reverse order: the intake drains every acknowledged notification into the store first,
then the consumers finish the item each has under way and claim no more, then the background
loops are cancelled, and the store closes last. A start-up that fails half-way stops what had
started the same way.

Shutdown is bounded as a whole: every step shares one budget (`server.shutdown_timeout_s`),
so a stuck dependency never keeps the process past the grace period the chart derives from
it (Kubernetes would SIGKILL it; the durable store makes that safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from correlator.analysis.scope import ScopeRules
from correlator.catalogue import Catalogue
from correlator.intake import IntakeWriter
from correlator.metrics import Metrics
from correlator.pipeline.core import Pipeline
from correlator.provisioning.command import links
from correlator.provisioning.service import Provisioner
from correlator.runtime.consumer import Consumer
from correlator.runtime.correlations import Correlations, inputs_saver
from correlator.runtime.notifier import Notifier
from correlator.runtime.queues import Outbox, WorkHandler, WorkQueue
from correlator.settings import Settings
from correlator.sinks import Sink, build_sinks
from correlator.store import Store
from correlator.store.retention import Pruner
from correlator.store.work import QueuePolicy
from correlator.web.app import web_app
from correlator.web.state import INTAKE, LOOPS, METRICS, STORE

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    metrics: Metrics | None = None,
    handler: WorkHandler | None = None,
) -> web.Application:
    """The service. The store is opened (and migrated) at start-up unless given; the work
    items run the correlation pipeline unless another `handler` is given."""
    app = web_app(settings, metrics or Metrics())
    parts = _Parts(settings, given_store=store, given_handler=handler)
    app.cleanup_ctx.extend(
        [
            parts.store,
            parts.sinks,
            parts.pipeline,
            parts.background,
            parts.consumers,
            parts.intake,
        ]
    )
    return app


@dataclass
class _Parts:
    """What the cleanup contexts build, for the contexts after them."""

    settings: Settings
    given_store: Store | None
    given_handler: WorkHandler | None
    catalogue: Catalogue = field(default_factory=Catalogue)
    wake_work: asyncio.Event = field(default_factory=asyncio.Event)
    deadline: float | None = None
    _store: Store | None = None
    _sinks: dict[str, Sink] = field(default_factory=dict)
    _notifier: Notifier | None = None
    _handler: WorkHandler | None = None

    def left_s(self) -> float:
        clock = asyncio.get_running_loop()
        if self.deadline is None:  # the first step of shutdown starts the budget
            self.deadline = clock.time() + self.settings.server.shutdown_timeout_s
        return max(0.0, self.deadline - clock.time())

    @property
    def opened(self) -> Store:
        assert self._store is not None, "the store context comes first"
        return self._store

    async def store(self, app: web.Application) -> AsyncIterator[None]:
        self._store = self.given_store or await Store.open(self.settings.database)
        app[STORE] = self._store
        yield
        if self.given_store is None:
            await self._store.close(timeout_s=self.left_s())

    async def sinks(self, app: web.Application) -> AsyncIterator[None]:
        settings = self.settings
        self._sinks = build_sinks(settings)
        self._notifier = Notifier(
            self.opened,
            settings.notify,
            self._sinks,
            self.catalogue,
            links(settings),
            rules=ScopeRules(
                settings.correlation.namespace_labels, settings.correlation.app_labels
            ),
            tenancy=settings.tenancy,
        )
        yield
        for sink in self._sinks.values():
            await sink.close()

    async def pipeline(self, app: web.Application) -> AsyncIterator[None]:
        if self.given_handler is not None:
            self._handler = self.given_handler
            yield
            return
        assert self._notifier is not None
        pipeline = Pipeline(
            self.settings,
            reports=self.opened,
            save_inputs=inputs_saver(self.opened),
            catalogue=self.catalogue,
            metrics=app[METRICS],
        )
        self._handler = Correlations(pipeline, self.opened, self._notifier, app[METRICS]).handle
        # Spawned now, not on the first alert; a replica that only takes notifications
        # (no workers) never analyses.
        if self.settings.queue.workers > 0:
            pipeline.warm()
        yield
        await pipeline.close()

    async def consumers(self, app: web.Application) -> AsyncIterator[None]:
        assert self._handler is not None and self._notifier is not None
        settings, metrics, loops = self.settings, app[METRICS], app[LOOPS]
        work = WorkQueue(self.opened, settings.queue, metrics, self._handler)
        deliveries = Outbox(self.opened, settings.notify, self._sinks, metrics)
        consumers: list[Consumer[Any, Any]] = [
            Consumer(work, wake=self.wake_work) for _ in range(settings.queue.workers)
        ]
        tasks = [loops.start(f"worker-{n}", c.run()) for n, c in enumerate(consumers)]
        senders = [
            Consumer(deliveries, wake=self._notifier.wake)
            for _ in range(settings.notify.deliverers if self._sinks else 0)
        ]
        tasks += [loops.start(f"deliverer-{n}", c.run()) for n, c in enumerate(senders)]
        yield
        self.stopping(app)
        for consumer in consumers + senders:
            consumer.stop()
        if tasks:
            _, busy = await asyncio.wait(tasks, timeout=self.left_s())
            await _cancel(busy)

    async def background(self, app: web.Application) -> AsyncIterator[None]:
        """Loops with nothing to finish: cancelled at shutdown."""
        settings, loops = self.settings, app[LOOPS]
        tasks: list[asyncio.Task[None]] = []
        keep = settings.correlation.keep_inputs
        if settings.database.retention_days > 0 or keep.retention_days > 0:
            # On every replica (not the leader only): a replica alone still keeps to retention.
            pruner = Pruner(
                self.opened,
                retention_days=settings.database.retention_days,
                inputs_retention_days=keep.retention_days,
            )
            tasks.append(loops.start("retention", pruner.run()))
        if settings.provisioning.source_dir is not None or settings.kubernetes.discovery:
            provisioner = Provisioner(settings, app[METRICS], self.catalogue)
            tasks.append(loops.start("provisioning", provisioner.run()))
        yield
        self.stopping(app)
        for task in tasks:
            task.cancel()
        if tasks:  # a loop's own clean-up (a lease given back) gets what is left of the budget
            _, stuck = await asyncio.wait(tasks, timeout=self.left_s())
            if stuck:
                log.warning("background loops still ending at the shutdown timeout")

    async def intake(self, app: web.Application) -> AsyncIterator[None]:
        settings = self.settings
        intake = IntakeWriter(
            self.opened,
            app[METRICS],
            max_batch=settings.intake.max_batch,
            namespaces=settings.correlation.namespace_labels,
            policy=QueuePolicy(
                refresh_age_s=settings.queue.refresh_age_s,
                refresh_delay_s=settings.queue.refresh_delay_s,
            ),
        )
        app[INTAKE] = intake
        # The store's background calls wait while the intake receives a notification.
        self.opened.serving_first = intake.serving_first
        intake.start()
        intake.on_stored.append(self.wake_work)
        yield
        self.stopping(app)
        try:
            await asyncio.wait_for(intake.close(), self.left_s())
        except TimeoutError:
            log.warning("intake did not drain before the shutdown timeout")

    def stopping(self, app: web.Application) -> None:
        """Shutdown has begun (the first teardown to run says so, whichever it is: a start-up
        that failed half-way tears down only what had started): a loop ending from here on is
        shutdown, not a death, and the shutdown budget runs from the server's drain, or now."""
        loops = app[LOOPS]
        if not loops.stopping:
            loops.stopping = True
            if loops.shutdown_deadline is not None:
                self.deadline = loops.shutdown_deadline
        self.left_s()


async def _cancel(tasks: list[asyncio.Task[None]] | set[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
