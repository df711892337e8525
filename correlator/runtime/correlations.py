"""The work-queue handler: an incident's report analysed (the pipeline), stored, announced.

The pipeline answers a question with a `Report` and touches neither the store nor the
sinks; here the report is stored with its incident, and the incident's message put in the
outbox for every sink routed to it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from correlator.metrics import Metrics
from correlator.pipeline.core import Pipeline
from correlator.pipeline.keep import KeptInputs, SaveInputs
from correlator.pipeline.report import failed_report
from correlator.pipeline.sharing import Question
from correlator.runtime.notifier import Notifier
from correlator.store import Store, WorkItem
from correlator.store.replay import save_bundle

log = logging.getLogger(__name__)


def inputs_saver(store: Store) -> SaveInputs:
    """Kept analysis inputs recorded as an incident bundle in the store."""

    async def save(kept: KeptInputs) -> None:
        await store.write(lambda c: save_bundle(c, **asdict(kept), now=store.clock()))

    return save


class Correlations:
    def __init__(
        self,
        pipeline: Pipeline,
        store: Store,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.notifier = notifier
        self.metrics = metrics

    async def handle(self, item: WorkItem) -> None:
        """Correlate the item's incident, store its report and put its message in the outbox."""
        store = self.store
        incident = await store.incident_alerts(item.incident_id)
        if incident is None:
            return
        now = store.clock()
        question: Question | None = self.pipeline.question(incident)
        try:
            report = await self.pipeline.correlate(incident, now=now, question=question)
        except Exception as exc:  # a bug must still leave a report that says what happened
            log.exception("correlation of incident %s failed", incident.id)
            report, question = failed_report(incident.id, now, exc), None
        # Read back with the report, in its transaction: the incident may have changed
        # (resolved) while it was analysed.
        latest = await store.save_report(
            incident.id,
            item.notification_id,
            report.status,
            report,
            question=question.digest if question is not None else None,
            analysed_at=report.generated_at if question is not None else None,
        )
        if latest is None:
            log.info("a newer report of incident %s is already stored", incident.id)
            return
        if self.metrics is not None and item.created_at is not None:
            waited = (store.clock() - item.created_at).total_seconds()
            self.metrics.notification_to_report.observe(max(waited, 0.0))
        if self.notifier is not None:
            await self.notifier.enqueue(latest, report)
