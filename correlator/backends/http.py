"""A backend's client: GETs of JSON over the shared stack (`correlator.outbound`), which holds
the in-flight budget, the retries, the sharing of identical GETs (in a storm many correlations
ask the same: the call graph of a namespace, the traces of one app), the client span, and the
one translation of failures.

Here only the backend's names for them: no answer, 408, 425, 429 or 5xx (after retries) is
BackendUnavailable (with the backend's Retry-After as `delay_s`), and so is a status the
backend's config names as "overloaded, ask again"; any other 4xx is BackendRefused with the
backend's own message; a body that is too large (BackendTooLarge) or not what the API promises
(not JSON here, the wrong shape in each backend's module) is BackendGarbage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from correlator.errors import PermanentError, RemoteRefused, RemoteUnavailable
from correlator.outbound.client import Limits, OutboundClient
from correlator.outbound.status import Errors, snippet


class BackendUnavailable(RemoteUnavailable):
    """Down, slow or failing: the report says it is missing; a later run may succeed."""


class BackendRefused(RemoteRefused):
    """The backend refused the query (4xx); its message says why."""


class BackendGarbage(PermanentError):
    """The answer is too large or not what the backend's API promises."""


class BackendTooLarge(BackendGarbage):
    """The answer outgrew `max_body_bytes`: a smaller question may fit."""


@dataclass(frozen=True)
class BackendConfig:
    """How to reach one backend."""

    name: str
    url: str
    timeout_s: float = 5.0
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    org_id: str | None = None  # X-Scope-OrgID, for multi-tenant Loki, Mimir, Tempo
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    max_connections: int = 20
    # Requests in flight at once from this process, whatever the number of correlations: the
    # backends are the users' production systems, and a storm must not overload them.
    max_in_flight: int = 8
    max_body_bytes: int = 64 * 1024 * 1024
    retries: int = 2
    # Statuses besides 408, 425, 429 and 5xx that mean "overloaded, ask again later": retried
    # with backoff like a 5xx, then BackendUnavailable.
    overload_statuses: frozenset[int] = frozenset()
    # True: `timeout_s` bounds the whole answer (connect, headers and body), so a server that
    # trickles its answer cannot hold the caller longer; False: it bounds each read.
    timeout_whole_answer: bool = False
    # Identical GETs within this many seconds share one answer; bodies kept within cache_bytes.
    cache_s: float = 0.0
    cache_bytes: int = 32 * 1024 * 1024


class BackendClient:
    """GETs that return parsed JSON, with the translation of every failure."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        headers = dict(config.headers)
        if config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        if config.org_id:
            headers["X-Scope-OrgID"] = config.org_id
        limits = Limits(
            name=config.name,
            timeout_s=config.timeout_s,
            timeout_whole_answer=config.timeout_whole_answer,
            max_in_flight=config.max_in_flight,
            max_connections=config.max_connections,
            max_body_bytes=config.max_body_bytes,
            retries=config.retries,
            extra_temporary=config.overload_statuses,
            cache_s=config.cache_s,
            cache_bytes=config.cache_bytes,
            errors=Errors(BackendUnavailable, BackendRefused, BackendTooLarge),
        )
        self.http = OutboundClient(
            limits,
            base_url=config.url,
            headers=headers,
            basic_auth=config.basic_auth,
            verify=False if config.insecure_skip_verify else (config.ca_file or True),
        )

    @property
    def in_flight(self) -> int:
        return self.http.budget.in_flight

    @property
    def peak_in_flight(self) -> int:
        return self.http.budget.peak_in_flight

    @property
    def requests(self) -> int:
        """Sent to the backend (retries included)."""
        return self.http.budget.calls

    @property
    def shared_answers(self) -> int:
        """Answered from another caller's request."""
        return self.http.shared.answers

    @property
    def clock(self) -> Callable[[], float]:
        return self.http.shared.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.http.shared.clock = clock

    async def close(self) -> None:
        await self.http.close()

    async def get_bytes(self, path: str, params: dict[str, Any] | list[tuple[str, Any]]) -> bytes:
        """GET the answer's body unparsed; retried as `get_json` is."""
        return (await self.http.request("GET", path, params=params)).content

    async def get_json(
        self,
        path: str,
        params: dict[str, Any] | list[tuple[str, Any]],
        *,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """GET and parse JSON; retried on no answer, 408, 425, 429 and 5xx."""
        answer = await self.http.request("GET", path, params=params, headers=headers)
        try:
            return orjson.loads(answer.content)
        except orjson.JSONDecodeError:  # also invalid UTF-8, NaN literals, nesting past 1,024
            raise BackendGarbage(
                f"{self.config.name} answered something that is not JSON: "
                f"{snippet(answer.content, 200)}"
            ) from None
