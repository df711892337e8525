"""The Kubernetes API's failures (kubernetes_asyncio's `ApiException`, and aiohttp's when no
answer came) translated, once, into the error tree; nobody else catches `ApiException`.

The statuses every HTTP remote shares keep the one mapping (`status.py`): no answer, 408, 425,
429 and 5xx are `KubeUnavailable` with the API server's Retry-After as `delay_s` (it sends one
with 429 under API Priority and Fairness); any other 4xx is `KubeRefused`. Four say more here:

- 401 and 403: `KubeDenied`, permanent, saying what to change (the credentials; the RBAC the
  chart renders from its `rbac` values);
- 404: `KubeNotFound` (a Lease not made yet, an object deleted meanwhile);
- 409: `KubeConflict`, temporary: written (or created) by someone else since it was read; read
  again and retry;
- 410: `KubeGone`: the resourceVersion to watch from is no longer kept; list again.

Every one is a `KubeError`, for the callers that treat them all alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from correlator.errors import CorrelatorError, RemoteRefused, RemoteUnavailable, TemporaryError
from correlator.outbound.status import Errors, error_for_status, message_of, unreachable

API = "the Kubernetes API"
Result = TypeVar("Result")


class KubeError(CorrelatorError):
    """Any failure of a Kubernetes API call (each is also temporary or permanent)."""


class KubeUnavailable(RemoteUnavailable, KubeError):
    """No answer, or 408, 425, 429, 5xx: ask again later (not sooner than `delay_s`)."""


class KubeRefused(RemoteRefused, KubeError):
    """The API server refused the request for good (4xx); its message says why."""


class KubeDenied(KubeRefused):
    """401 (credentials refused) or 403 (RBAC forbids it): nothing changes until the operator
    does."""


class KubeNotFound(KubeRefused):
    """404: no such object (yet, or any more)."""


class KubeGone(KubeRefused):
    """410: the resourceVersion asked for is no longer retained: list again."""


class KubeConflict(TemporaryError, KubeError):
    """409: the object changed (or was created) since it was read: read again, then retry."""

    def __init__(self, message: str, *, reason: str = "Conflict") -> None:
        super().__init__(message)
        self.status = 409
        self.reason = reason


ERRORS = Errors(KubeUnavailable, KubeRefused, KubeRefused)
_HINTS = {
    401: "the credentials are refused; check the kubeconfig or the service account's token",
    403: "the RBAC forbids it; the chart grants what correlator needs from its `rbac` values",
}


def translate(exc: ApiException) -> CorrelatorError:
    """The error an `ApiException` means."""
    status = int(exc.status or 0)
    reason = str(exc.reason or "")
    headers: Any = exc.headers or {}
    body: bytes | str = exc.body or reason
    said = f"{API} answered {status} {reason}".rstrip()
    if status in _HINTS:
        said = f"{said}: {message_of(body)}" if exc.body else said
        return KubeDenied(f"{said} ({_HINTS[status]})", status=status, body=message_of(body))
    if status == 404:
        return KubeNotFound(f"{said}: {message_of(body)}", status=404)
    if status == 409:
        return KubeConflict(f"{said}: {message_of(body)}", reason=reason or "Conflict")
    if status == 410:
        return KubeGone(f"{said}: the resourceVersion is no longer kept", status=410)
    if status == 0:  # kubernetes_asyncio's own, with no status: a malformed answer
        return KubeUnavailable(f"{API} failed: {reason or exc}")
    error = error_for_status(API, status, headers, body, errors=ERRORS)
    return error if error is not None else KubeRefused(f"{said}: {message_of(body)}", status=status)


@contextmanager
def kube_errors() -> Iterator[None]:
    """Translate the failures of the Kubernetes API calls (and watches) in the block."""
    try:
        yield
    except ApiException as exc:
        raise translate(exc) from exc
    except aiohttp.ClientError as exc:
        raise unreachable(API, exc, timeout_s=None, errors=ERRORS) from exc


async def kube_call(call: Awaitable[Result]) -> Result:
    """Await one Kubernetes API call, its failures translated."""
    with kube_errors():
        return await call
