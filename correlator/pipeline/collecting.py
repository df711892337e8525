"""One correlation's analysis in parts, started as its sources come in.

Fetching a correlation's telemetry takes as long as its slowest backend. The producers of
evidence that read the other sources need not wait for it: each starts in the analysis pool
once the frames it reads are in (`analysis/evidence.READS`), while the rest is fetched, and
only the ranking (cheap) waits for the last source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from correlator.analysis.evidence import (
    READING_ONLY,
    READS,
    Analysis,
    Collected,
    analyse,
    analyse_collected,
    collect_some,
    context_of,
)
from correlator.analysis.telemetry import (
    LOG_COLUMNS,
    METRIC_COLUMNS,
    REPLICA_COLUMNS,
    SPAN_COLUMNS,
    SignalMeta,
    Telemetry,
    conform,
    empty,
    log_frame,
    span_frame,
)
from correlator.analysis.windows import Windows
from correlator.pipeline.analysis_pool import AnalysisPool, AnalysisTimeout
from correlator.pipeline.frames import WithEvidence

log = logging.getLogger(__name__)
F = TypeVar("F")


def telemetry_of(
    sources: dict[str, Any],
    kinds: frozenset[str],
    signals: dict[str, SignalMeta],
    edges: set[tuple[str, str]],
) -> Telemetry:
    """The telemetry of the sources `kinds` among those in (`sources`); every other frame
    empty."""
    metrics, replicas = (sources.get("metrics") if "metrics" in kinds else None) or (None, None)
    logs = sources.get("logs") if "logs" in kinds else None
    spans = sources.get("traces") if "traces" in kinds else None
    return Telemetry(
        metrics=metrics if metrics is not None else empty(METRIC_COLUMNS),
        replicas=replicas if replicas is not None else empty(REPLICA_COLUMNS),
        logs=logs if logs is not None else log_frame([]),
        spans=spans if spans is not None else span_frame([]),
        signals=signals,
        edges=edges,
    )


def only(telemetry: Telemetry, kinds: frozenset[str]) -> Telemetry:
    """`telemetry` with the frames of the sources `kinds`, every other frame empty."""
    sources: dict[str, Any] = {
        "metrics": (telemetry.metrics, telemetry.replicas),
        "logs": telemetry.logs,
        "traces": telemetry.spans,
    }
    return telemetry_of(sources, kinds, telemetry.signals, telemetry.edges)


def conformed(kind: str, value: Any) -> Any:
    """A source's frames as it came in, typed once (`analysis/telemetry.conform`), so the
    telemetry built of them for each part, and at the end, takes them as they are."""
    if value is None:
        return None
    if kind == "metrics":
        metrics, replicas = value
        return conform(metrics, METRIC_COLUMNS), conform(replicas, REPLICA_COLUMNS)
    return conform(value, LOG_COLUMNS if kind == "logs" else SPAN_COLUMNS)


class Collecting:
    """One correlation's analysis, run in parts as its sources come in: each producer of
    evidence starts in the analysis pool once the frames it reads are in
    (`analysis/evidence.READS`), while the other sources are still being fetched; ranking
    them waits for the last.

    A correlation running `alone` (`alone()`: no other is fetching or analysing on this replica
    now) reads a source with the evidence of the producers that read it alone (`read`), and
    starts its parts even while its own work fills the pool: they queue behind that work. Once
    others run (a storm began), it does neither."""

    def __init__(
        self, pool: AnalysisPool, windows: Windows, *, alone: Callable[[], bool] = lambda: False
    ) -> None:
        self.pool = pool
        self.windows = windows
        self.alone = alone
        self.started: set[str] = set()
        self.parts: list[asyncio.Future[Collected]] = []
        self.cancelled = False

    async def read(
        self,
        source: str,
        reader: Callable[..., WithEvidence[F]],
        *args: object,
    ) -> F | None:
        """A source's answers read in the pool by `reader(*args, windows)`, which also runs the
        producers that read that source alone (`frames.metric_evidence`, `trace_evidence`):
        their part is then collected, and the frames cross to the pool once. None when that is
        not for this correlation now (others run) or it failed (a producer's bug, the time
        limit, a broken pool): the caller then reads the answers alone, and the producers run
        in a part of their own, which fails as it would have without this."""
        if not self.alone():
            return None
        try:
            done = await self.pool.run(reader, *args, self.windows)
        except (AnalysisTimeout, BrokenProcessPool) as exc:
            log.warning("reading %s with its evidence: %s; read again without", source, exc)
            return None
        except Exception:
            log.exception("reading %s with its evidence failed; read again without", source)
            return None
        if not self.cancelled:
            self.started |= READING_ONLY[source]
            self.parts.append(_done(done.part))
        return done.frames

    def arrived(
        self, kinds: frozenset[str], telemetry: Callable[[frozenset[str]], Telemetry]
    ) -> None:
        """Start the producers whose frames are all in (`kinds`): one part per set of frames
        read, so that the producers of the last source run on all the analysis processes."""
        if self.cancelled or (self.pool.saturated() and not self.alone()):
            # Other analyses hold every process (a storm): starting parts early would only
            # queue them, at the cost of handing the frames over once per part; the rest of
            # this analysis runs as one, once its last source is in.
            return
        ready: dict[frozenset[str], list[str]] = {}
        for name, reads in READS.items():
            if reads <= kinds and name not in self.started:
                ready.setdefault(reads, []).append(name)
        for reads, names in ready.items():
            self.started.update(names)
            self.parts.append(self._part(telemetry(reads), reads, frozenset(names)))

    def _part(
        self, frames: Telemetry, reads: frozenset[str], names: frozenset[str]
    ) -> asyncio.Future[Collected]:
        by_kind = {"metrics": frames.metrics, "logs": frames.logs, "traces": frames.spans}
        if all(by_kind[kind].empty for kind in reads):  # nothing to look at: no process needed
            return _done(Collected({n: [] for n in names}, context=context_of(frames, reads)))
        return asyncio.ensure_future(self.pool.run(collect_some, frames, self.windows, names))

    async def analysis(self, telemetry: Telemetry) -> Analysis:
        """The ranked analysis, once every part is in; raises AnalysisTimeout if a part ran
        past the limit."""
        if not self.parts:  # nothing started early: one analysis, as before parts existed
            return await self.pool.run(analyse, telemetry, self.windows)
        rest = frozenset(name for name in READS if name not in self.started)
        if rest:
            self.started |= rest
            reads = frozenset().union(*(READS[name] for name in rest))
            # Only the frames the rest reads cross to the pool (the others went with parts).
            self.parts.append(self._part(only(telemetry, reads), reads, rest))
        parts = list(await asyncio.gather(*self.parts))
        # The findings and a small context of each part: no frame crosses to the pool again.
        return await self.pool.run(analyse_collected, parts, self.windows)

    def cancel(self) -> None:
        """Given up: its parts are cancelled, and no part starts after (a source still being
        read may come in yet)."""
        self.cancelled = True
        for part in self.parts:
            part.cancel()


def reading(
    collecting: Collecting | None,
    source: str,
    reader: Callable[..., WithEvidence[F]],
    *args: object,
) -> Callable[[Sequence[Any]], Awaitable[F | None]] | None:
    """How `collecting` reads `source`'s answers with their evidence: `Collecting.read` by
    `reader(answers, *args, windows)` (None: read them without). None with no `collecting`."""
    if collecting is None:
        return None
    return lambda answers: collecting.read(source, reader, answers, *args)


def _done(part: Collected) -> asyncio.Future[Collected]:
    done: asyncio.Future[Collected] = asyncio.get_running_loop().create_future()
    done.set_result(part)
    return done
