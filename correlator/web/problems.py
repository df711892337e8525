"""RFC 9457 problem details: every error the API answers, and the middleware that makes them."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from correlator.web.state import SETTINGS

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise from a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_response(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> web.Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extensions,
    }
    response = web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        response.headers.add(name, value)
    return response


_HTTP_DETAILS = {
    404: "no such resource: {path}",
    405: "method {method} is not allowed on {path}",
}


@web.middleware
async def problems_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every error, ours or aiohttp's, into a problem document; never leak internals."""
    response = await _answered(request, handler)
    if request.content.exception() is not None:
        # A body that could not be read (not encoded as its Content-Encoding says) cannot be
        # drained either: the connection closes after the answer, rather than aiohttp failing
        # on the rest of the body and dropping the connection under the client's next request.
        response.force_close()
    return response


async def _answered(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Problem as problem:
        return problem_response(
            problem.status, problem.detail, headers=problem.headers, **problem.extensions
        )
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].server.max_body_bytes
        return problem_response(
            413,
            f"request body is larger than the limit of {limit} bytes (server.max_body_bytes); "
            "set max_alerts on the Alertmanager receiver or raise the limit",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        template = _HTTP_DETAILS.get(exc.status, "{reason}")
        detail = template.format(path=request.path, method=request.method, reason=exc.reason)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem_response(exc.status, detail, headers=headers)
    except Exception:
        log.exception("unhandled error", extra={"route": route_template(request)})
        return problem_response(500, "internal error; the server log has the details")


def route_template(request: web.Request) -> str:
    """The route's template (`/api/v1/incidents/{id}`): a label of bounded cardinality."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"
