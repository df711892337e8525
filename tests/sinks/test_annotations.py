"""Grafana annotations on the app's provisioned dashboard: added at the start, given an end
time when the incident resolves."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from correlator.provisioning.naming import dashboard_uid
from tests.fakes.grafana import FakeGrafana
from tests.sinks.test_delivery import _post, _settled, until
from tests.sinks.test_github import _alerts, manifests
from tests.support.servers import served


async def test_an_annotation_spans_the_incident_on_the_apps_dashboard(
    app_client: Any, tmp_path: Path
) -> None:
    grafana = FakeGrafana()
    now = datetime.now(UTC).replace(microsecond=0)
    source = manifests(tmp_path / "apps", deployed_at=now - timedelta(minutes=30))
    async with served(grafana.app) as url:
        grafana_sink = {"type": "grafana", "name": "grafana", "url": url, "token": grafana.token}
        client = await app_client(
            provisioning={
                "source_dir": str(source),
                "grafana_url": url,
                "grafana_token": grafana.token,
            },
            notify={
                "sinks": [grafana_sink],
                "retry_base_s": 0.05,
            },
        )
        uid = dashboard_uid("shop", "api")
        deadline = time.monotonic() + 20
        while uid not in grafana.dashboards:
            assert time.monotonic() < deadline, "the dashboard was never provisioned"
            await asyncio.sleep(0.05)
        incident_id = await _post(client, _alerts(now))
        await until(lambda: grafana.annotations, "the annotation")
        (annotation,) = grafana.annotations.values()
        started = annotation["time"]
        assert annotation["dashboardUID"] == uid and annotation["timeEnd"] == started
        assert f"incident-{incident_id}" in annotation["tags"] and "firing" in annotation["tags"]
        await _post(client, _alerts(now + timedelta(minutes=3), status="resolved"))
        await until(lambda: "resolved" in annotation["tags"], "the end of the annotation")
        detail = await _settled(client, incident_id)
    assert len(grafana.annotations) == 1
    resolved_ms = int(datetime.fromisoformat(detail["resolved_at"]).timestamp() * 1000)
    assert annotation["timeEnd"] == resolved_ms > started
    assert annotation["text"].startswith("RESOLVED")
