"""A burst of new groups drains through the real application (several workers, the pipeline
with no backends, so each correlation is quick): every incident gets one report, nothing is
correlated twice, and the backlog metrics tell the truth."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.support.payloads import alert, payload

GROUPS = 60


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def test_a_burst_of_new_groups_drains_with_one_correlation_each(app_client: Any) -> None:
    client = await app_client(queue={"workers": 4, "poll_interval_s": 0.05})
    bodies = [
        payload([alert(f"f{i}", labels={"alertname": f"Burst{i}", "severity": "critical"})],
                group_key=f'{{}}:{{alertname="Burst{i}"}}')
        for i in range(GROUPS)
    ]  # fmt: skip
    answers = await asyncio.gather(*(client.post("/api/v1/alerts", json=b) for b in bodies))
    assert [a.status for a in answers] == [200] * GROUPS
    ids = [(await a.json())["incident_id"] for a in answers]
    # The same groups again with nothing new: recorded, not correlated again.
    again = await asyncio.gather(*(client.post("/api/v1/alerts", json=b) for b in bodies))
    assert [a.status for a in again] == [200] * GROUPS

    def settled(d: dict[str, Any]) -> bool:
        # The report is stored before its work item is recorded done: wait for both.
        return d["report"] is not None and all(w["state"] == "done" for w in d["work_items"])

    for _ in range(400):
        details = [await (await client.get(f"/api/v1/incidents/{i}")).json() for i in ids]
        if all(settled(d) for d in details):
            break
        await asyncio.sleep(0.05)
    assert all(d["report"] is not None for d in details)
    # One correlation each: the unchanged repeats added no work item.
    assert [[w["state"] for w in d["work_items"]] for d in details] == [["done"]] * GROUPS
    assert all(len(d["timeline"]) == 2 for d in details)
    text = await (await client.get("/metrics")).text()
    assert sample(text, "correlator_notification_to_report_seconds_count") == GROUPS
    assert sample(text, "correlator_work_queue_oldest_age_seconds") == 0.0
    assert sample(text, 'correlator_work_queue_depth{state="pending"}') == 0.0


async def test_the_age_of_the_oldest_queued_item_is_exposed(app_client: Any) -> None:
    client = await app_client(queue={"workers": 0})
    body = payload([alert("f1")], group_key='{}:{alertname="Waiting"}')
    assert (await client.post("/api/v1/alerts", json=body)).status == 200
    await asyncio.sleep(0.3)
    text = await (await client.get("/metrics")).text()
    assert 0.3 <= sample(text, "correlator_work_queue_oldest_age_seconds") < 30
    assert sample(text, 'correlator_work_queue_depth{state="pending"}') == 1.0
