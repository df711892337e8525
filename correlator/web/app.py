"""The aiohttp application factory and its lifecycle (store, intake writer, workers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from correlator.catalogue import Catalogue
from correlator.intake import IntakeWriter
from correlator.loops import Loops
from correlator.metrics import Metrics
from correlator.settings import Settings
from correlator.store import Store
from correlator.store.retention import Pruner
from correlator.store.work import QueuePolicy
from correlator.web.auth import Authenticator, auth_middleware
from correlator.web.openapi import openapi
from correlator.web.pages import pages
from correlator.web.problems import problems_middleware, route_template
from correlator.web.replay import replay
from correlator.web.routes import rejections_middleware, routes
from correlator.web.state import INTAKE, LARGE_BODIES, LOOPS, METRICS, SETTINGS, STORE
from correlator.worker import Worker, WorkHandler

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@web.middleware
async def observe_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """A server span and the request metrics for every request."""
    route = route_template(request)
    parent = propagate.extract(request.headers)
    started = time.perf_counter()
    status = 500
    token = context.attach(parent)
    try:
        with tracer.start_as_current_span(
            f"{request.method} {route}",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
        ) as span:
            response: web.StreamResponse = await handler(request)
            status = response.status
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response
    finally:
        context.detach(token)
        metrics = request.app[METRICS]
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        metrics.http_request_seconds.labels(route).observe(time.perf_counter() - started)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    metrics: Metrics | None = None,
    handler: WorkHandler | None = None,
) -> web.Application:
    """Build the application; the store is opened (and migrated) at start-up unless given."""
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[
            observe_middleware,
            rejections_middleware,
            problems_middleware,
            auth_middleware(Authenticator(settings.auth)),
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics()
    app[LOOPS] = Loops()
    app[LARGE_BODIES] = asyncio.Semaphore(1)
    app.add_routes(routes)
    app.add_routes(pages)
    app.add_routes(replay)
    app.add_routes(openapi)
    app.cleanup_ctx.append(_lifecycle(store, handler))
    return app


def _lifecycle(given_store: Store | None, given_handler: WorkHandler | None) -> Any:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        store = given_store or await Store.open(settings.database)
        app[STORE] = store
        intake = IntakeWriter(
            store,
            app[METRICS],
            max_batch=settings.intake.max_batch,
            namespaces=settings.correlation.namespace_labels,
            policy=QueuePolicy(
                refresh_age_s=settings.queue.refresh_age_s,
                refresh_delay_s=settings.queue.refresh_delay_s,
            ),
        )
        app[INTAKE] = intake
        intake.start()
        wake = asyncio.Event()
        intake.on_stored.append(wake)
        from correlator.sinks import build_sinks
        from correlator.sinks.deliver import Deliverer, Notifier

        sinks = build_sinks(settings)
        catalogue = Catalogue()
        from correlator.analysis.scope import ScopeRules
        from correlator.provisioning.command import links

        rules = ScopeRules(settings.correlation.namespace_labels, settings.correlation.app_labels)
        notifier = Notifier(
            store,
            settings.notify,
            sinks,
            catalogue,
            links(settings),
            rules=rules,
            tenancy=settings.tenancy,
        )
        pipeline = None
        handler = given_handler
        if handler is None:  # the correlation pipeline consumes the work items
            from correlator.pipeline import Pipeline

            pipeline = Pipeline(
                settings, store=store, notifier=notifier, catalogue=catalogue, metrics=app[METRICS]
            )
            handler = pipeline.handle
        loops = app[LOOPS]
        workers: list[Worker | Deliverer] = [
            Worker(store, settings.queue, app[METRICS], handler, wake=wake)
            for _ in range(settings.queue.workers)
        ]
        tasks = [loops.start(f"worker-{n}", worker.run()) for n, worker in enumerate(workers)]
        deliverers = [
            Deliverer(store, settings.notify, sinks, app[METRICS], wake=notifier.wake)
            for _ in range(settings.notify.deliverers if sinks else 0)
        ]
        tasks += [loops.start(f"deliverer-{n}", d.run()) for n, d in enumerate(deliverers)]
        workers += deliverers
        background: list[asyncio.Task[None]] = []  # loops with nothing to finish: cancelled
        keep = settings.correlation.keep_inputs
        if settings.database.retention_days > 0 or keep.retention_days > 0:
            # On every replica (not the leader only): a replica alone still keeps to retention.
            pruner = Pruner(
                store,
                retention_days=settings.database.retention_days,
                inputs_retention_days=keep.retention_days,
            )
            background.append(loops.start("retention", pruner.run()))
        if settings.provisioning.source_dir is not None or settings.kubernetes.discovery:
            from correlator.provisioning.service import Provisioner

            provisioner = Provisioner(settings, app[METRICS], catalogue)
            background.append(loops.start("provisioning", provisioner.run()))
        try:
            yield
        finally:
            # Every step is bounded, and all share one budget (server.shutdown_timeout_s): a
            # stuck dependency must never keep the process past the grace period the chart
            # derives from it (Kubernetes would SIGKILL it; the durable store makes that safe).
            loops.stopping = True
            clock = asyncio.get_running_loop()
            deadline = loops.shutdown_deadline or clock.time() + settings.server.shutdown_timeout_s

            def left_s() -> float:
                return max(0.0, deadline - clock.time())

            try:
                await asyncio.wait_for(intake.close(), left_s())
            except TimeoutError:
                log.warning("intake did not drain before the shutdown timeout")
            for worker in workers:
                worker.stop()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=left_s())
                for task in pending:  # any worker still busy
                    task.cancel()
                for task in pending:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if pipeline is not None:
                await pipeline.close()
            for sink in sinks.values():
                await sink.close()
            if given_store is None:
                await store.close(timeout_s=left_s())

    return lifecycle
