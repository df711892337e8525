"""What one correlation gathered and what it could not, and the two ways a fetch is bounded:
by its backend's errors (named, never raised) and by the correlation's deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from correlator.backends.http import BackendGarbage, BackendRefused, BackendUnavailable
from correlator.pipeline.targets import Target

T = TypeVar("T")
BACKEND_OF_PART = {
    "metrics": "prometheus",
    "logs": "loki",
    "traces": "jaeger",
    "changes": "prometheus",
}


@dataclass(slots=True)
class Fetch:
    """What one correlation gathered, and what it could not."""

    missing: list[dict[str, str]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Deploys of services in scope: service, revision, deployed_at, source.
    changes: list[dict[str, Any]] = field(default_factory=list)
    # The PromQL of each signal for each service (services with other labels have their own).
    queries: dict[str, dict[str, str]] = field(default_factory=dict)
    # How each service in scope was queried (its WebApplication, else the heuristics).
    targets: dict[str, Target] = field(default_factory=dict)

    def miss(self, backend: str, what: str, reason: str) -> None:
        self.missing.append({"backend": backend, "what": what, "reason": reason})


async def call(
    fetch: Fetch, backend: str, what: str, request: Callable[[], Awaitable[T]]
) -> T | None:
    """One backend request: its failure is named in `fetch.missing` and gives None; the
    slowest request per backend is timed."""
    started = time.perf_counter()
    try:
        return await request()
    except BackendUnavailable as exc:
        fetch.miss(backend, what, f"unavailable: {exc}")
    except BackendRefused as exc:
        fetch.miss(backend, what, f"refused: {exc}")
    except BackendGarbage as exc:
        fetch.miss(backend, what, f"unusable answer: {exc}")
    finally:
        elapsed = (time.perf_counter() - started) * 1e3
        key = f"slowest_query_{backend}"
        fetch.timings_ms[key] = max(fetch.timings_ms.get(key, 0.0), elapsed)
    return None


async def bounded(deadline: float, fetch: Fetch, part: str, work: Awaitable[T]) -> T | None:
    """Run one part until the overall deadline; on timeout, name what it was waiting for."""
    started = time.perf_counter()
    try:
        return await asyncio.wait_for(work, max(deadline - time.monotonic(), 0.001))
    except TimeoutError:
        fetch.miss(BACKEND_OF_PART[part], part, "the correlation deadline passed first")
        return None
    finally:
        fetch.timings_ms[part] = (time.perf_counter() - started) * 1e3
