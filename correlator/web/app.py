"""The web application: routes and middleware (its resources are `runtime/service.py`'s)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from correlator.loops import Loops
from correlator.metrics import Metrics
from correlator.settings import Settings
from correlator.web.auth import Authenticator, auth_middleware
from correlator.web.openapi import openapi
from correlator.web.pages import pages
from correlator.web.problems import problems_middleware, route_template
from correlator.web.replay import replay
from correlator.web.routes import rejections_middleware, routes
from correlator.web.state import LARGE_BODIES, LOOPS, METRICS, SETTINGS

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


def web_app(settings: Settings, metrics: Metrics) -> web.Application:
    """The routes and middleware; `runtime/service.create_app` gives it its resources."""
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
    app[METRICS] = metrics
    app[LOOPS] = Loops()
    app[LARGE_BODIES] = asyncio.Semaphore(1)
    app.add_routes(routes)
    app.add_routes(pages)
    app.add_routes(replay)
    app.add_routes(openapi)
    return app
