"""The Kubernetes API's failures, translated once: a real kubernetes_asyncio client against a
local server that answers as the API server does (a Status object, Retry-After on 429)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from correlator.errors import PermanentError, TemporaryError
from correlator.outbound.kube import (
    KubeConflict,
    KubeDenied,
    KubeError,
    KubeGone,
    KubeNotFound,
    KubeRefused,
    KubeUnavailable,
    kube_call,
)
from tests.support.processes import free_port
from tests.support.servers import served


def status_app(code: int, reason: str, headers: dict[str, str]) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": f'leases.coordination.k8s.io "a" says {reason}',
                "reason": reason,
                "code": code,
            },
            status=code,
            headers=headers,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@asynccontextmanager
async def api_at(url: str) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration(host=url)
    configuration.retries = 0
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        await api.close()


@pytest.mark.parametrize(
    ("code", "reason", "error", "temporary"),
    [
        (401, "Unauthorized", KubeDenied, False),
        (403, "Forbidden", KubeDenied, False),
        (404, "NotFound", KubeNotFound, False),
        (409, "Conflict", KubeConflict, True),
        (410, "Gone", KubeGone, False),
        (422, "Invalid", KubeRefused, False),
        (429, "TooManyRequests", KubeUnavailable, True),
        (500, "InternalError", KubeUnavailable, True),
        (503, "ServiceUnavailable", KubeUnavailable, True),
    ],
)
async def test_each_status_is_one_of_ours(
    code: int, reason: str, error: type[Exception], temporary: bool
) -> None:
    async with served(status_app(code, reason, {"Retry-After": "3"})) as url, api_at(url) as api:
        with pytest.raises(error) as raised:
            await kube_call(client.CoordinationV1Api(api).read_namespaced_lease("a", "ns"))
    assert isinstance(raised.value, KubeError)
    assert isinstance(raised.value, TemporaryError if temporary else PermanentError)
    assert f"the Kubernetes API answered {code}" in str(raised.value)
    if code in (429, 500, 503):
        assert isinstance(raised.value, TemporaryError) and raised.value.delay_s == 3
    if code in (401, 403):
        assert "says" in str(raised.value)  # the API server's own message, then what to do


async def test_no_answer_is_temporary() -> None:
    async with api_at(f"http://127.0.0.1:{free_port()}") as api:
        with pytest.raises(KubeUnavailable, match="unreachable"):
            await kube_call(client.CoordinationV1Api(api).read_namespaced_lease("a", "ns"))
