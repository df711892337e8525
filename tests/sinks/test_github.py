"""GitHub: one comment per incident on the deployed change (its pull request, else the commit),
edited through resolve, never doubled by a retry; and the deploy as evidence in the report."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.github import Comment, FakeGitHub
from tests.pipeline.test_pipeline import LABELS, slow_database
from tests.sinks.inert import outside_markdown_code
from tests.sinks.test_delivery import HOSTILE, _post, _settled, until
from tests.support.payloads import alert, payload
from tests.support.servers import served

SHA = "0123456789abcdef0123456789abcdef01234567"
GROUP = '{}:{alertname="ApiLatencyHigh"}'


def manifests(
    directory: Path, *, deployed_at: datetime, revision: str = SHA, channel: str | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    app = {
        "apiVersion": "platform.correlator.dev/v1alpha1",
        "kind": "WebApplication",
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "annotations": {
                "correlator.dev/revision": revision,
                "correlator.dev/deployed-at": deployed_at.isoformat(),
            },
        },
        "spec": {
            "image": "registry.example/shop/api:1.2.3",
            "team": "orders",
            "repo": "https://github.com/example/checkout",
            **({"alerting": {"chatChannel": channel}} if channel else {}),
        },
    }
    (directory / "api.yaml").write_text(yaml.safe_dump(app))
    return directory


async def _start(app_client: Any, tmp_path: Path, github_url: str, **extra: Any) -> Any:
    now = datetime.now(UTC)
    source = manifests(tmp_path / "apps", deployed_at=now - timedelta(minutes=9))
    sinks = [{"type": "github", "name": "gh", "token": "ghp_test", "api_url": github_url}]
    client = await app_client(
        provisioning={
            "source_dir": str(source),
            "target": "files",
            "out_dir": str(tmp_path / "out"),
            "public_url": "https://c.example",
        },
        notify={"sinks": sinks, "retry_base_s": 0.05},
        **extra,
    )

    async def provisioned() -> bool:
        text = await (await client.get("/metrics")).text()
        return "correlator_provisioning_runs_total" in text and 'outcome="ok"} 1.0' in text

    deadline = time.monotonic() + 20
    while not await provisioned():
        assert time.monotonic() < deadline, "provisioning never ran"
        await asyncio.sleep(0.05)
    return client


def _alerts(now: datetime, *extra: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    first = alert("a1", labels=LABELS, starts_at=(now - timedelta(minutes=2)).isoformat())
    if status == "resolved":
        first = {**first, "status": "resolved", "endsAt": now.isoformat()}
    return payload([first, *extra], group_key=GROUP)


async def test_one_comment_on_the_deployed_pull_request(app_client: Any, tmp_path: Path) -> None:
    github = FakeGitHub()
    github.add_commit(SHA, pull=42)
    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    async with served(github.app) as gh, served(jaeger.app) as jg, served(loki.app) as lk:
        client = await _start(app_client, tmp_path, gh, jaeger={"url": jg}, loki={"url": lk})
        incident_id = await _post(client, _alerts(now))
        await until(lambda: github.comments, "the comment")
        detail = await _settled(client, incident_id)
        await _post(client, _alerts(now))  # nothing new
        await _settled(client, incident_id)
        assert len(github.comments) == 1 and github.comments[0].edits == 0
        await _post(client, _alerts(now, status="resolved"))
        await until(lambda: github.comments[0].edits == 1, "the edit on resolve")
        await _settled(client, incident_id)
    (comment,) = github.comments
    assert comment.where == "issue:42"
    assert (
        "RESOLVED" in comment.body and f"<!-- correlator:incident:{incident_id} -->" in comment.body
    )
    assert "deployed 7 min before the alert" in comment.body.replace("\\", "")
    assert "https://c.example/incidents/" in comment.body
    # The deploy is evidence in the report too.
    report = detail["report"]
    (change,) = [c for c in report["changes"] if c["service"] == "api"]
    assert change["revision"] == SHA and 6.5 < change["minutes_before_alert"] < 7.5
    api = next(s for s in report["suspects"] if s["service"] == "api")
    assert api["reason"].startswith("deployed 7 min before the alert: 0123456789ab")
    assert api["evidence"][0]["kind"] == "change"


async def test_a_commit_comment_when_no_pull_request_and_no_duplicate_after_a_crash(
    app_client: Any, tmp_path: Path
) -> None:
    github = FakeGitHub()
    github.add_commit(SHA)  # pushed straight to the branch: no pull request
    now = datetime.now(UTC)
    async with served(github.app) as gh:
        client = await _start(app_client, tmp_path, gh)
        # A previous process posted the comment and died before recording it: the sink finds
        # its marker and edits that comment instead of posting a second one.
        incident_id = 1
        orphan = f"old text\n<!-- correlator:incident:{incident_id} -->"
        github.comments.append(Comment(7, f"commit:{SHA}", orphan))
        assert await _post(client, _alerts(now)) == incident_id
        await until(lambda: github.comments[0].edits, "the edit of the orphan comment")
        await _settled(client, incident_id)
    assert len(github.comments) == 1
    assert github.comments[0].where == f"commit:{SHA}" and "FIRING" in github.comments[0].body


async def test_hostile_content_is_inert_in_the_comment(app_client: Any, tmp_path: Path) -> None:
    github = FakeGitHub()
    github.add_commit(SHA, pull=7)
    hostile = {**LABELS, "alertname": HOSTILE}
    now = datetime.now(UTC)
    body = payload(
        [alert("h1", labels=hostile, starts_at=(now - timedelta(minutes=1)).isoformat())],
        group_key=GROUP,
        commonLabels=hostile,
        groupLabels={"alertname": HOSTILE},
        commonAnnotations={"summary": HOSTILE + " <img src=x onerror=alert(1)>"},
    )
    async with served(github.app) as gh:
        client = await _start(app_client, tmp_path, gh)
        await _settled(client, await _post(client, body))
    (comment,) = github.comments
    assert "evil" in comment.body
    live = outside_markdown_code(comment.body)
    for active in ("@here", "<!channel>", "<img", "[a](http", "http://evil", "*bold*"):
        assert active not in live, active
