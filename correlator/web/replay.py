"""The replay loop over HTTP: an incident's kept inputs as a bundle (tar.gz), and the cause a
responder confirms, through the API (JSON) and the incident page (a plain form).

A cause is untrusted text, like an alert label: validated strictly here (a precise 4xx, never a
500), stored as given, escaped wherever it is shown. The page's form is protected from
cross-site posts the way browsers allow without a token: a browser says where a request comes
from (`Sec-Fetch-Site`, else `Origin`), and one from another site is refused; a request that
says neither is no browser's (a script with the credentials, as the API takes).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from correlator.errors import StoreRefused, StoreUnavailable
from correlator.models.incidents import IncidentDetail
from correlator.rca.bundle import BundleError
from correlator.rca.frames import bundle_archive
from correlator.store.replay import Cause, StoredBundle, get_bundle, get_cause, set_cause
from correlator.web.auth import PRINCIPAL
from correlator.web.problems import Problem
from correlator.web.routes import RETRY_AFTER_S, incident_of, json_response
from correlator.web.state import METRICS, SETTINGS, STORE

replay = web.RouteTableDef()
MAX_CAUSE_BODY_BYTES = 16 * 1024
_FIELDS = ("service", "text", "by")


def _printable(value: str | None, name: str, *, newlines: bool = False) -> str | None:
    if value is None:
        return None
    allowed = "\n\r\t" if newlines else ""
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value):
        raise ValueError(f"{name} must not hold control characters")
    if not value.strip():
        raise ValueError(f"{name} must not be blank")
    return value.strip()


class CauseAnswer(BaseModel):
    """What the cause was: a service (in scope or not), free text, or both; and who says so."""

    model_config = ConfigDict(extra="forbid", strict=True)

    service: str | None = Field(None, min_length=1, max_length=253)
    text: str | None = Field(None, min_length=1, max_length=2000)
    by: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("service", "by")
    @classmethod
    def _one_line(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _printable(value, str(info.field_name))

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _printable(value, "text", newlines=True)

    @model_validator(mode="after")
    def _says_something(self) -> CauseAnswer:
        if self.service is None and self.text is None:
            raise ValueError("say what the cause was: service, text or both")
        return self


def _answer(document: Any) -> CauseAnswer:
    if not isinstance(document, dict):
        raise Problem(422, "the body must be a JSON object: {service, text, by}")
    try:
        return CauseAnswer.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        shown = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in errors
        ]
        first = shown[0]
        raise Problem(422, f"{first['field']}: {first['message']}", errors=shown[:20]) from None


def _unavailable(exc: Exception) -> Problem:
    return Problem(503, f"the store is unavailable: {exc}", headers={"Retry-After": RETRY_AFTER_S})


async def _bundle_of(request: web.Request, incident: IncidentDetail) -> StoredBundle | None:
    """The kept inputs behind the incident's report: its own, or those of the incident whose
    analysis it shares."""
    store = request.app[STORE]
    owner = incident.report.owner if incident.report is not None else incident.id
    try:
        stored = await store.read(get_bundle, incident.id)
        if stored is None and owner != incident.id:
            stored = await store.read(get_bundle, owner)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    return stored


@replay.get("/api/v1/incidents/{incident_id}/bundle")
async def get_bundle_archive(request: web.Request) -> web.Response:
    """The inputs of the incident's analysis as an incident bundle (tar.gz) for `correlator
    analyze`."""
    incident = await incident_of(request)
    keep = request.app[SETTINGS].correlation.keep_inputs
    stored = await _bundle_of(request, incident)
    if stored is None:
        why = (
            "correlation.keep_inputs is disabled"
            if not keep.enabled
            else "its analysis has not finished, or its inputs are past retention"
        )
        raise Problem(404, f"incident {incident.id} has no kept inputs: {why}")
    if stored.state != "kept" or stored.body is None:
        raise Problem(
            404,
            f"the inputs of incident {incident.id} were not kept: {stored.size_bytes} bytes "
            f"compressed, over correlation.keep_inputs.max_bytes",
        )
    try:
        # Written from the stored frames in a thread: half a second of CPU for 50 services
        # over an hour (bench/keep_inputs.py), once per download.
        archive = await asyncio.to_thread(bundle_archive, stored.body)
    except BundleError as exc:
        raise Problem(404, f"the inputs of incident {incident.id} cannot be read: {exc}") from None
    return web.Response(
        body=archive,
        content_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="incident-{incident.id}.tar.gz"',
            "Cache-Control": "private, no-store",
        },
    )


async def _record(request: web.Request, incident: IncidentDetail, answer: CauseAnswer) -> Any:
    """Store the answer (the same one again changes nothing); count a new or changed one."""
    report = incident.report
    suspect = report.suspect(answer.service) if report is not None else None
    rank = suspect.rank if suspect is not None else None
    known = report.app if report is not None else None
    app, team = (known.name, known.team) if known is not None else (None, None)
    store = request.app[STORE]
    now = store.clock()
    try:
        cause, changed = await store.write(
            lambda c: set_cause(
                c,
                incident_id=incident.id,
                service=answer.service,
                text=answer.text,
                answered_by=answer.by,
                principal=request.get(PRINCIPAL),
                rank=rank,
                app=app,
                team=team,
                now=now,
            )
        )
    except (StoreUnavailable, StoreRefused) as exc:
        raise _unavailable(exc) from None
    if changed and cause.service is not None:
        request.app[METRICS].rca_confirmed.labels(cause.outcome).inc()
    return cause, changed


@replay.post("/api/v1/incidents/{incident_id}/cause")
async def post_cause(request: web.Request) -> web.Response:
    """What the cause was (idempotent; a later answer replaces an earlier one)."""
    if request.content_type != "application/json":
        raise Problem(
            415, f"Content-Type must be application/json, got {request.content_type or 'none'}"
        )
    body = await _small_body(request)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Problem(400, f"the body is not valid JSON: {str(exc)[:100]}") from None
    answer = _answer(document)
    incident = await incident_of(request)
    cause, changed = await _record(request, incident, answer)
    return json_response({"cause": cause.as_json(), "changed": changed})


@replay.get("/api/v1/incidents/{incident_id}/cause")
async def get_cause_answer(request: web.Request) -> web.Response:
    """The cause confirmed for the incident."""
    incident = await incident_of(request)
    cause = await cause_of(request, incident.id)
    if cause is None:
        raise Problem(404, f"no cause was confirmed for incident {incident.id}")
    return json_response({"cause": cause.as_json()})


async def cause_of(request: web.Request, incident_id: int) -> Cause | None:
    try:
        return await request.app[STORE].read(get_cause, incident_id)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None


async def _small_body(request: web.Request) -> bytes:
    if (request.content_length or 0) > MAX_CAUSE_BODY_BYTES:
        raise Problem(413, f"a cause is at most {MAX_CAUSE_BODY_BYTES} bytes")
    try:
        body = await request.content.read(MAX_CAUSE_BODY_BYTES + 1)
    except (ContentEncodingError, RequestPayloadError):
        encoding = request.headers.get("Content-Encoding", "")
        raise Problem(
            400, f"the body is not {encoding[:20]!r}-encoded as its Content-Encoding says"
        ) from None
    if len(body) > MAX_CAUSE_BODY_BYTES:
        raise Problem(413, f"a cause is at most {MAX_CAUSE_BODY_BYTES} bytes")
    return body


def same_origin(request: web.Request) -> bool:
    """Whether a browser sent this from the page's own origin (or no browser sent it).

    `Sec-Fetch-Site` is what every current browser sends; `Origin` is the older signal (sent
    on a form's POST; "null" where a page's referrer policy hides it, which this page's
    `same-origin` policy does not for its own forms). The approach of Go's
    net/http.CrossOriginProtection."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = urlsplit(origin).netloc
    return bool(host) and host == request.headers.get("Host")


@replay.post("/incidents/{incident_id}/cause")
async def post_cause_form(request: web.Request) -> web.Response:
    """The incident page's forms: "Was this the cause?" and "The cause was: …"."""
    if not same_origin(request):
        raise Problem(403, "a cause is confirmed from the incident page of this site only")
    if request.content_type != "application/x-www-form-urlencoded":
        raise Problem(
            415,
            "Content-Type must be application/x-www-form-urlencoded, got "
            f"{request.content_type or 'none'}",
        )
    body = await _small_body(request)
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=10
        )
    except UnicodeDecodeError:
        raise Problem(400, "the form is not percent-encoded UTF-8") from None
    except ValueError:
        raise Problem(422, "a cause has at most 3 fields: service, text, by") from None
    fields = dict(pairs)
    if len(fields) < len(pairs):
        raise Problem(422, "each field at most once: service, text, by")
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise Problem(422, f"unknown field {unknown[0][:40]!r}; use service, text, by")
    answer = _answer({k: v for k, v in fields.items() if v.strip()})
    incident = await incident_of(request)
    await _record(request, incident, answer)
    location = f"/incidents/{incident.id}#cause"
    return web.Response(status=303, text=f"stored; see {location}", headers={"Location": location})
