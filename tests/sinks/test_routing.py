"""Routing by WebApplication and severity: the app's team and chat channel, its dashboard."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.slack import FakeSlack
from tests.sinks.test_delivery import _post, _settled, until
from tests.sinks.test_github import _alerts, manifests
from tests.support.servers import served


async def test_slack_posts_to_the_apps_channel_with_its_dashboard(
    app_client: Any, tmp_path: Path
) -> None:
    slack = FakeSlack(channels=("C0DEFAULT", "#orders-alerts"))
    now = datetime.now(UTC)
    source = manifests(tmp_path / "apps", deployed_at=now, channel="#orders-alerts")
    async with served(slack.app) as url:
        sink = {
            "type": "slack",
            "name": "s",
            "token": "xoxb-test",
            "channel": "C0DEFAULT",
            "api_url": f"{url}/api",
            "teams": ["orders"],
        }  # the app's team
        other = {**sink, "name": "other-team", "teams": ["billing"], "channel_from_app": False}
        paging = {**sink, "name": "paging-only", "severities": ["critical"],
                  "channel_from_app": False}  # fmt: skip
        client = await app_client(
            provisioning={
                "source_dir": str(source),
                "target": "files",
                "out_dir": str(tmp_path / "out"),
                "grafana_public_url": "https://grafana.example",
            },
            notify={"sinks": [sink, other, paging], "retry_base_s": 0.05},
        )
        deadline = time.monotonic() + 20
        while 'outcome="ok"} 1.0' not in await (await client.get("/metrics")).text():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        incident_id = await _post(client, _alerts(now - timedelta(minutes=1)))
        await until(lambda: slack.messages, "the message")
        await _settled(client, incident_id)
    (message,) = slack.messages  # the other team's and the critical-only sinks stay quiet
    assert message.channel == "#orders-alerts"
    rendered = json.dumps(message.blocks)
    assert "https://grafana.example/d/" in rendered and "from=" in rendered and "to=now" in rendered
