"""The HTTP API: webhook intake, incidents, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from correlator.errors import StoreRefused, StoreUnavailable
from correlator.models.alerts import AlertStatus, parse_webhook
from correlator.models.incidents import (
    IncidentDetail,
    IncidentFilter,
    IncidentPage,
    ReceivedNotification,
)
from correlator.web.problems import Problem
from correlator.web.state import INTAKE, LARGE_BODIES, LOOPS, METRICS, SETTINGS, STORE

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

JSON_TYPES = ("application/json",)
RETRY_AFTER_S = "5"
# /readyz waits this long for the store, inside the readiness probe's 3 s timeout: a store
# that hangs is reported unavailable, not a probe that fails.
STORE_CHECK_S = 2.0
MAX_ERRORS_SHOWN = 20
LIMIT_MAX = 500
ID_MAX = 2**63 - 1


def json_response(model: BaseModel | dict[str, Any], status: int = 200) -> web.Response:
    body = (
        model.model_dump_json().encode()
        if isinstance(model, BaseModel)
        else json.dumps(model).encode()
    )
    return web.Response(status=status, body=body, content_type="application/json")


# The version tags the payload is told apart by: what a field's location starts with once
# the version has chosen the payload's kind.
_PAYLOAD_TAGS = {"4": "Alertmanager", "1": "Grafana Alerting"}
PAYLOAD_KINDS = 'an Alertmanager (version "4") or Grafana Alerting (version "1", with orgId)'


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    if loc and loc[0] in _PAYLOAD_TAGS:
        loc = loc[1:]
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def _validation_problem(exc: ValidationError) -> Problem:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(error["type"] == "json_invalid" for error in errors):
        return Problem(400, f"the body is not valid JSON: {errors[0]['msg']}")
    shown = [
        {
            "field": "version"
            if error["type"].startswith("union_tag")
            else _location(error["loc"]),
            "message": error["msg"],
        }
        for error in errors
    ]
    first = shown[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    tag = errors[0]["loc"][0] if errors[0]["loc"] else None
    kind = (
        f"not a valid {_PAYLOAD_TAGS[tag]} webhook payload"
        if isinstance(tag, str) and tag in _PAYLOAD_TAGS
        else f"not {PAYLOAD_KINDS} webhook payload"
    )
    return Problem(
        422,
        f"{kind}: {first['field']}: {first['message']}{more}",
        errors=shown[:MAX_ERRORS_SHOWN],
    )


# Why a notification was refused, by status, unless the handler names a finer reason.
_REJECTION_REASONS = {
    400: "malformed",
    401: "unauthorized",
    413: "too_large",
    415: "content_type",
    422: "invalid",
}
REJECTION = web.RequestKey("rejection", str)
INTAKE_ROUTE = "/api/v1/alerts"
# Bodies above this (decompressed) are read, parsed and stored one at a time, so that memory
# stays bounded by one big group however many arrive at once.
LARGE_BODY_BYTES = 1024 * 1024


@web.middleware
async def rejections_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count and log every refused notification once, whoever refused it (authentication,
    the body limit, validation): Alertmanager never retries a 4xx, so each is a lost group."""
    response: web.StreamResponse = await handler(request)
    refused = request.method in ("POST", "PUT") and 400 <= response.status < 500
    if not refused or request.path.rstrip("/") != INTAKE_ROUTE:
        return response
    reason = request.get(REJECTION) or _REJECTION_REASONS.get(response.status, str(response.status))
    request.app[METRICS].notifications.labels("rejected", reason).inc()
    detail = None
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(response.body).get("detail")
    log.warning(
        "webhook notification rejected",
        extra={
            "status": response.status,
            "reason": reason,
            "detail": detail,
            "remote": request.remote,
            "content_length": request.content_length,
        },
    )
    return response


def _reject(request: web.Request, reason: str, status: int, detail: str) -> Problem:
    request[REJECTION] = reason
    return Problem(status, detail)


@routes.post("/api/v1/alerts")
@routes.put("/api/v1/alerts")  # Grafana's webhook contact point may be set to PUT
async def receive_alerts(request: web.Request) -> web.Response:
    """Alertmanager or Grafana Alerting webhook: validated, durably stored, then
    acknowledged."""
    if request.content_type not in JSON_TYPES:
        raise _reject(
            request,
            "content_type",
            415,
            f"Content-Type must be application/json, got {request.content_type or 'none'}",
        )
    # Background work yields the event loop while a notification is received.
    with request.app[INTAKE].serving_first.receiving():
        async with contextlib.AsyncExitStack() as gate:
            body = await _read_body(request, gate)
            return await _receive(request, body)


async def _read_body(request: web.Request, gate: contextlib.AsyncExitStack) -> bytes:
    """The body, decompressed; once it grows past LARGE_BODY_BYTES the one-at-a-time gate is
    taken (and held by `gate` while it is parsed and stored). The decompressed size counts: a
    small gzip body may expand to the whole limit."""
    limit = request.app[SETTINGS].server.max_body_bytes
    declared = request.content_length or 0
    if declared > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    chunks: list[bytes] = []
    size = 0
    gated = False
    try:
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
            if size > LARGE_BODY_BYTES and not gated:
                semaphore: asyncio.Semaphore = request.app[LARGE_BODIES]
                await gate.enter_async_context(semaphore)
                gated = True
            chunks.append(chunk)
    except (ContentEncodingError, RequestPayloadError):
        encoding = request.headers.get("Content-Encoding", "")
        raise _reject(
            request,
            "malformed",
            400,
            f"the body is not {encoding[:20]!r}-encoded as its Content-Encoding says",
        ) from None
    return b"".join(chunks)


async def _receive(request: web.Request, body: bytes) -> web.Response:
    metrics = request.app[METRICS]
    if not body:
        raise _reject(
            request, "empty", 400, f"the body is empty; expected {PAYLOAD_KINDS} webhook payload"
        )
    try:
        payload = parse_webhook(body)
    except ValidationError as exc:
        problem = _validation_problem(exc)
        request[REJECTION] = "malformed" if problem.status == 400 else "invalid"
        raise problem from None
    digest = hashlib.sha256(body).hexdigest()
    del body  # the parsed payload is all that is needed from here on

    span_context = trace.get_current_span().get_span_context()
    received = ReceivedNotification(
        payload=payload,
        received_at=datetime.now(UTC),
        payload_sha256=digest,
        trace_id=format(span_context.trace_id, "032x") if span_context.is_valid else None,
    )
    try:
        result = await request.app[INTAKE].submit(received)
    except StoreRefused as exc:
        raise _reject(
            request,
            "refused_by_store",
            422,
            f"the store refuses this notification's data, so it can never be stored ({exc})",
        ) from None
    except StoreUnavailable as exc:
        metrics.notifications.labels("unavailable", "store").inc()
        raise Problem(
            503,
            f"the notification could not be stored and was not accepted; retry later ({exc})",
            headers={"Retry-After": RETRY_AFTER_S},
        ) from None

    metrics.notifications.labels("stored", "").inc()
    for alert in payload.alerts:
        metrics.alerts_received.labels(alert.status.value).inc()
    log.info(
        "webhook notification stored",
        extra={
            "incident_id": result.incident_id,
            "receiver": payload.receiver,
            "status": payload.status.value,
            "alerts": len(payload.alerts),
            "truncated_alerts": payload.truncated_alerts,
            "new_incident": result.new_incident,
            "changed": result.changed,
        },
    )
    return json_response(
        {
            "status": "stored",
            "incident_id": result.incident_id,
            "incident_url": f"/api/v1/incidents/{result.incident_id}",
            "incident_status": result.incident_status.value,
            "notification_id": result.notification_id,
            "new_incident": result.new_incident,
            "changed": result.changed,
        }
    )


def _parse_time(name: str, value: str) -> datetime:
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise Problem(400, f"{name}: {value!r} is out of range") from None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(
            400, f"{name}: {value!r} is neither RFC 3339 (2026-01-02T15:04:05Z) nor Unix seconds"
        ) from None
    if parsed.tzinfo is None:
        raise Problem(400, f"{name}: {value!r} has no time zone; add Z or an offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise Problem(400, f"{name}: {value!r} is out of range") from None


_ASCII_NUMBER = re.compile(r"[0-9]{1,19}")


def bounded_int(text: str, low: int, high: int) -> int | None:
    """`text` as an int when it is 1-19 ASCII digits within [low, high], else None. Unicode
    digits ("²") and numbers too long to convert quickly are refused before int()."""
    if not _ASCII_NUMBER.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


CURSOR_MAX_CHARS = 200


def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before_id}).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    """The id a cursor this API returned carries; anything else is a 400 (a cursor is
    untrusted input: it may decode to any JSON at all, nested or not an object)."""
    not_ours = Problem(400, "cursor: not a cursor this API returned")
    if len(cursor) > CURSOR_MAX_CHARS:
        raise not_ours
    try:
        document = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeEncodeError, RecursionError):
        raise not_ours from None
    before = document.get("before") if isinstance(document, dict) else None
    if type(before) is not int or not 0 < before <= ID_MAX:  # bool is an int: not this one
        raise not_ours
    return before


_FILTER_PARAMS = {"status", "namespace", "alertname", "since", "until", "limit", "cursor"}


def _incident_filter(query: Any) -> IncidentFilter:
    unknown = sorted(set(query) - _FILTER_PARAMS)
    if unknown:
        raise Problem(
            400, f"unknown query parameter {unknown[0]!r}; use {', '.join(sorted(_FILTER_PARAMS))}"
        )
    status = query.get("status")
    if status is not None and status not in {s.value for s in AlertStatus}:
        raise Problem(400, f"status: {status!r} is not one of firing, resolved")
    limit_text = query.get("limit", "50")
    limit = bounded_int(limit_text, 1, LIMIT_MAX)
    if limit is None:
        raise Problem(
            400, f"limit: {limit_text[:40]!r} is not a whole number from 1 to {LIMIT_MAX}"
        )
    since = _parse_time("since", query["since"]) if "since" in query else None
    until = _parse_time("until", query["until"]) if "until" in query else None
    if since and until and until < since:
        raise Problem(400, "until is before since")
    return IncidentFilter(
        status=AlertStatus(status) if status else None,
        namespace=query.get("namespace"),
        alertname=query.get("alertname"),
        since=since,
        until=until,
        limit=limit,
        before_id=_decode_cursor(query["cursor"]) if "cursor" in query else None,
    )


@routes.get("/api/v1/incidents")
async def list_incidents(request: web.Request) -> web.Response:
    """Incidents, newest first, filtered by status, namespace, alertname and time range."""
    incident_filter = _incident_filter(request.query)
    try:
        items, next_before = await request.app[STORE].list_incidents(incident_filter)
    except StoreUnavailable as exc:
        raise Problem(
            503, f"the store is unavailable: {exc}", headers={"Retry-After": RETRY_AFTER_S}
        ) from None
    cursor = encode_cursor(next_before) if next_before is not None else None
    page = IncidentPage(items=items, next_cursor=cursor)
    response = json_response(page)
    if cursor is not None:
        next_url = request.rel_url.update_query({"cursor": cursor})
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


async def incident_of(request: web.Request) -> IncidentDetail:
    """The incident the path's `{incident_id}` names: 400 for a bad id, 404 for an unknown
    one, 503 while the store is unavailable (shared by the API and the pages)."""
    raw_id = request.match_info["incident_id"]
    incident_id = bounded_int(raw_id, 1, ID_MAX)
    if incident_id is None:
        raise Problem(400, f"incident id must be a positive integer, got {raw_id[:40]!r}")
    try:
        incident = await request.app[STORE].get_incident(incident_id)
    except StoreUnavailable as exc:
        raise Problem(
            503, f"the store is unavailable: {exc}", headers={"Retry-After": RETRY_AFTER_S}
        ) from None
    if incident is None:
        raise Problem(404, f"no incident with id {raw_id}")
    return incident


@routes.get("/api/v1/incidents/{incident_id}")
async def get_incident(request: web.Request) -> web.Response:
    """One incident with its alerts and the timeline of notifications received for it."""
    return json_response(await incident_of(request))


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready: the intake writer and every background loop run. A store outage does not make
    the service unready: every replica shares the store, so all would leave the Service and
    Alertmanager would meet connection refused; ready, they answer 503 with Retry-After, which
    it retries. The store's state is in the body and in the `correlator_store_up` gauge."""
    loops = request.app[LOOPS]
    if loops.died:
        raise Problem(503, f"a background loop died: {', '.join(loops.dead)} (see the log)")
    if loops.stopping:
        raise Problem(503, "the service is shutting down")
    if not request.app[INTAKE].alive:
        raise Problem(503, "the intake writer is not running")
    try:
        await asyncio.wait_for(request.app[STORE].ping(), STORE_CHECK_S)
    except (StoreUnavailable, TimeoutError) as exc:
        # /readyz answers anyone: the cause (host, user, driver's words) goes to the log only.
        log.warning("the store is unavailable: %s", str(exc) or f"no answer in {STORE_CHECK_S} s")
        request.app[METRICS].store_up.set(0)
        return json_response({"status": "ready", "store": "unavailable"})
    request.app[METRICS].store_up.set(1)
    return json_response({"status": "ready", "store": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of the service's own metrics."""
    instruments = request.app[METRICS]
    store = request.app[STORE]
    try:
        depth = await store.queue_depth()
        oldest = await store.oldest_pending()
    except StoreUnavailable:
        instruments.store_up.set(0)  # the queue's gauges keep their last value
    else:
        instruments.store_up.set(1)
        for state, count in depth.items():
            instruments.work_queue_depth.labels(state).set(count)
        age = (store.clock() - oldest).total_seconds() if oldest is not None else 0.0
        instruments.work_queue_oldest_age.set(max(age, 0.0))
    return web.Response(
        body=generate_latest(instruments.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
