"""The outbox's first end: `Notifier.enqueue` records what each sink should show after a
report is stored. The other end, `runtime/queues.Outbox` run by the one queue consumer, sends
it, retries with exponential backoff and jitter, honours Retry-After, and gives up on
permanent refusals (recorded with the incident and counted).

The guarantee, precisely:
- an incident's message reaches each sink at least once, and is edited rather than repeated
  for every later version: the sink's handle on its message (a Slack ts, a comment id) is
  stored the moment the platform returns it, before anything else can fail;
- if the process dies after the platform accepted a *first* message but before that handle
  was stored (a window of one database write), the delivery is retried after its lease expires
  and the platform shows a second message. Edits and the generic webhook's retries (which
  carry the same X-Correlator-Delivery id) never duplicate.
"""

from __future__ import annotations

import asyncio
import logging

from correlator.analysis.scope import ScopeRules
from correlator.catalogue import Catalogue
from correlator.models.incidents import IncidentAlerts
from correlator.models.report import Report
from correlator.provisioning.naming import Links
from correlator.settings import NotifySettings, TenancySettings
from correlator.sinks.base import Sink
from correlator.sinks.message import incident_message, material
from correlator.store import Store, outbox
from correlator.tenancy import app_of_alerts

log = logging.getLogger(__name__)


class Notifier:
    def __init__(
        self,
        store: Store,
        settings: NotifySettings,
        sinks: dict[str, Sink],
        catalogue: Catalogue | None = None,
        links: Links | None = None,
        *,
        rules: ScopeRules | None = None,
        tenancy: TenancySettings | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sinks = sinks
        self.catalogue = catalogue or Catalogue()
        self.links = links or Links()
        self.rules = rules or ScopeRules()
        self.tenancy = tenancy or TenancySettings()
        self.wake = asyncio.Event()

    async def enqueue(self, incident: IncidentAlerts, report: Report | None) -> int:
        """Record the incident's message for every sink routed to it; returns how many are news."""
        if not self.sinks:
            return 0
        # The app the alerts' namespace owns, which every alert of the group must agree on:
        # a label naming another namespace's app does not reach that app's channel or repo.
        alerts = [{**a.labels, **incident.common_labels} for a in incident.alerts]
        app = app_of_alerts(
            alerts or [incident.common_labels], self.catalogue.apps(), self.rules, self.tenancy
        )
        message = incident_message(
            incident,
            report,
            public_url=self.links.correlator_url,
            app=app,
            dashboard_url=self.links.dashboard_url(app) if app else None,
            kiali_url=self.links.kiali_url,
        )
        key = material(message)
        # The outbox keeps the message as JSON, which each sink validates back into a Message.
        document = message.model_dump(mode="json")
        now = self.store.clock()
        severity = message.severity
        team = app.spec.team if app is not None else None
        routed = [
            name
            for name, sink in self.sinks.items()
            if (not sink.severities or severity in sink.severities)
            and (not sink.teams or team in sink.teams)
        ]
        # Every sink's row in one transaction: one write, not one per sink.
        news = await self.store.write(
            lambda c: sum(
                outbox.want(
                    c, incident_id=incident.id, sink=name, message=document, material=key, now=now
                )
                for name in routed
            )
        )
        if news:
            self.wake.set()
        return news
