"""Keeping each analysis's inputs (`correlation.keep_inputs`): the telemetry it ranked, in the
store's compact form (rca/frames.py, served as an incident bundle), so `correlator analyze` and
`bench rca --incidents` can replay it.

Off the report's path: the frames are encoded and compressed in the analysis pool (a worker
process by default; the serving process only pickles the frames, as it does for the analysis)
by a task of its own once the analysis returned, so the report is stored and sent without
waiting for it. Inputs over `max_bytes` are recorded as such, without their body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from correlator.analysis.telemetry import Telemetry
from correlator.analysis.windows import WindowPolicy, Windows
from correlator.errors import StoreRefused, StoreUnavailable
from correlator.metrics import Metrics
from correlator.models.incidents import IncidentAlerts
from correlator.pipeline.analysis_pool import AnalysisPool
from correlator.rca.bundle_write import alert_payload, policy_document
from correlator.rca.frames import packed_inputs
from correlator.settings import KeepInputsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeptInputs:
    """One analysis's inputs as the store records them (`body` None: over the cap)."""

    incident_id: int
    state: str  # "kept" or "over_cap"
    body: bytes | None
    size_bytes: int
    kinds: Sequence[str]
    app: str | None
    team: str | None
    analysed_at: datetime


# Records kept inputs durably (the runtime gives the store's; raises StoreUnavailable or
# StoreRefused when it cannot).
SaveInputs = Callable[[KeptInputs], Awaitable[None]]


class InputKeeper:
    def __init__(
        self,
        settings: KeepInputsSettings,
        save: SaveInputs,
        pool: AnalysisPool,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.save = save
        self.pool = pool
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    def keep(
        self,
        incident: IncidentAlerts,
        telemetry: Telemetry,
        windows: Windows,
        *,
        analysed_at: datetime,
        app: str | None,
        team: str | None,
        policy: WindowPolicy,
    ) -> None:
        """Pack and store the inputs in the background (`close` waits for what is under way).
        The window `policy` is recorded so a replay under other settings can place its own."""
        about = {
            "incident_id": incident.id,
            "app": app,
            "team": team,
            "analysed_at": analysed_at.isoformat().replace("+00:00", "Z"),
            "policy": policy_document(policy),
        }
        task = asyncio.create_task(
            self._keep(alert_payload(incident), incident.id, telemetry, windows, about, analysed_at)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep(
        self,
        alert: dict[str, Any],
        incident_id: int,
        telemetry: Telemetry,
        windows: Windows,
        about: dict[str, Any],
        analysed_at: datetime,
    ) -> None:
        kinds = list(self.settings.kinds)
        try:
            body: bytes | None = await self.pool.run(
                packed_inputs, alert, telemetry, windows, kinds, about
            )
        except Exception:  # a bundle is never worth failing the work item (nor a timeout)
            log.exception("could not pack the inputs of incident %s", incident_id)
            self._count("failed")
            return
        assert body is not None
        size = len(body)
        state = "kept" if size <= self.settings.max_bytes else "over_cap"
        if state == "over_cap":
            log.warning(
                "the inputs of incident %s are not kept: %d bytes, over keep_inputs.max_bytes",
                incident_id,
                size,
            )
            body = None
        try:
            await self.save(
                KeptInputs(
                    incident_id=incident_id,
                    state=state,
                    body=body,
                    size_bytes=size,
                    kinds=kinds,
                    app=about["app"],
                    team=about["team"],
                    analysed_at=analysed_at,
                )
            )
        except (StoreUnavailable, StoreRefused) as exc:
            log.warning("could not store the inputs of incident %s: %s", incident_id, exc)
            self._count("failed")
            return
        self._count(state)
        if self.metrics is not None and state == "kept":
            self.metrics.kept_input_bytes.observe(size)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.kept_inputs.labels(outcome).inc()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Let the bundles under way finish (then give up on them: the report is stored)."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
