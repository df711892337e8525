"""End to end: a real Alertmanager fires → `correlator serve` → report → the Slack, Teams and
GitHub test servers; resolve; a sink that is down for a while; SIGKILL between sending and
recording."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.chat_webhooks import FakeTeams
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import FakeSlack
from tests.sinks.test_github import SHA, manifests
from tests.support.processes import Alertmanager, Service, wait_until
from tests.support.servers import InThread


class Stack:
    def __init__(
        self, service: Service, alertmanager: Alertmanager, slack: FakeSlack,
        teams: FakeTeams, github: FakeGitHub,
    ) -> None:  # fmt: skip
        self.service, self.alertmanager = service, alertmanager
        self.slack, self.teams, self.github = slack, teams, github

    def fire(self, alertname: str, *, resolved: bool = False) -> None:
        now = datetime.now(UTC)
        alert: dict[str, Any] = {
            "labels": {"alertname": alertname, "namespace": "shop", "app": "api",
                       "severity": "page"},
            "annotations": {"summary": "api is failing its SLO"},
            "startsAt": (now - timedelta(minutes=2)).isoformat(),
        }  # fmt: skip
        if resolved:
            alert["endsAt"] = now.isoformat()
        answer = httpx.post(f"{self.alertmanager.url}/api/v2/alerts", json=[alert], timeout=10)
        answer.raise_for_status()

    def slack_for(self, alertname: str) -> list[Any]:
        return [m for m in self.slack.top_level() if alertname in m.text]

    def comments_for(self, alertname: str) -> list[Any]:
        return [c for c in self.github.comments if alertname in c.body]

    def teams_for(self, alertname: str) -> list[dict[str, Any]]:
        return [p for p in self.teams.posts if alertname in json.dumps(p)]

    def settled(self, alertname: str, *, notifications: int = 1) -> None:
        """Wait until correlator has nothing left to do for the incident: at least that many
        notifications stored, its work done, every delivery delivered or given up. From then
        on nothing is sent unless a new notification brings news, so a count taken after this
        is final (no sleep needed to see a retry or a duplicate that would come)."""

        def done() -> bool:
            base = self.service.url
            items = httpx.get(
                f"{base}/api/v1/incidents", params={"alertname": alertname}, timeout=10
            ).json()["items"]
            if not items or items[0]["notification_count"] < notifications:
                return False
            detail = httpx.get(f"{base}/api/v1/incidents/{items[0]['id']}", timeout=10).json()
            return (
                all(w["state"] == "done" for w in detail["work_items"])
                and bool(detail["deliveries"])
                and all(d["state"] in ("delivered", "failed") for d in detail["deliveries"])
            )

        wait_until(done, timeout_s=60, what=f"the incident of {alertname} to settle")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("notify")
    source = manifests(workdir / "apps", deployed_at=datetime.now(UTC) - timedelta(minutes=20))
    slack, teams, github = FakeSlack(), FakeTeams(), FakeGitHub()
    github.add_commit(SHA, pull=42)
    with (
        InThread(slack.app) as slack_url,
        InThread(teams.app) as teams_url,
        InThread(github.app) as github_url,
    ):
        sinks = [
            {"type": "slack", "name": "slack", "token": "xoxb-test", "channel": "C0INCIDENTS",
             "api_url": f"{slack_url}/api"},
            {"type": "teams", "name": "teams", "url": f"{teams_url}/workflows/abc"},
            {"type": "github", "name": "github", "token": "ghp_test", "api_url": github_url},
        ]  # fmt: skip
        service = Service(
            workdir,
            env={
                "CORRELATOR_DATABASE_URL": f"sqlite:///{workdir / 'correlator.db'}",
                "CORRELATOR_PROVISIONING_SOURCE_DIR": str(source),
                "CORRELATOR_PROVISIONING_TARGET": "files",
                "CORRELATOR_PROVISIONING_OUT_DIR": str(workdir / "out"),
                "CORRELATOR_NOTIFY_SINKS": json.dumps(sinks),
                "CORRELATOR_NOTIFY_RETRY_BASE_S": "0.2",
                "CORRELATOR_NOTIFY_RETRY_MAX_S": "1",
                "CORRELATOR_NOTIFY_LEASE_S": "2",
            },
        )
        hook = {"url": f"{service.url}/api/v1/alerts", "send_resolved": True}
        alertmanager = Alertmanager(
            workdir,
            {
                "route": {"receiver": "correlator", "group_by": ["alertname"], "group_wait": "1s",
                          "group_interval": "1s", "repeat_interval": "1h"},
                "receivers": [{"name": "correlator", "webhook_configs": [hook]}],
            },
        )  # fmt: skip
        service.start()
        wait_until(
            lambda: 'outcome="ok"} 1.0' in httpx.get(f"{service.url}/metrics").text,
            timeout_s=30,
            what="the first provisioning pass (the app catalogue)",
        )
        alertmanager.start()
        try:
            yield Stack(service, alertmanager, slack, teams, github)
        finally:
            alertmanager.stop()
            service.stop()


def _name() -> str:
    return f"ApiSlo{uuid.uuid4().hex[:8]}"


def test_each_sink_gets_one_message_and_resolve_edits_it(stack: Stack) -> None:
    name = _name()
    stack.fire(name)
    wait_until(
        lambda: stack.slack_for(name) and stack.teams_for(name) and stack.comments_for(name),
        timeout_s=60,
        what="a message in Slack, Teams and GitHub",
    )
    stack.fire(name, resolved=True)
    wait_until(
        lambda: (
            stack.slack_for(name)[0].text.startswith("RESOLVED")
            and "RESOLVED" in stack.comments_for(name)[0].body
            and len(stack.teams_for(name)) == 2
        ),
        timeout_s=60,
        what="the resolve in every sink",
    )
    stack.settled(name, notifications=2)  # the firing and the resolve, both delivered
    (message,) = stack.slack_for(name)
    assert message.edits and stack.slack.replies(message.ts)  # edited, and a thread reply
    (comment,) = stack.comments_for(name)
    assert comment.where == "issue:42" and comment.edits >= 1
    # Teams' Workflows webhook cannot edit: one post at the start, one at the resolve.
    firing, resolved = stack.teams_for(name)
    assert "FIRING" in json.dumps(firing) and "RESOLVED" in json.dumps(resolved)


def test_a_sink_down_for_a_while_gets_the_message_exactly_once(stack: Stack) -> None:
    name = _name()
    stack.slack.fail_next = [503] * 4 + [502]
    stack.fire(name)
    wait_until(lambda: stack.slack_for(name), timeout_s=60, what="delivery after the outage")
    stack.settled(name)
    assert len(stack.slack_for(name)) == 1
    assert stack.slack.fail_next == []


def test_sigkill_between_sending_and_recording(stack: Stack) -> None:
    """As documented: GitHub finds its own comment and edits it (one comment); Slack, which
    offers no way to find a message by key, shows the first message twice at most."""
    name = _name()
    stack.github.stall_s = stack.slack.stall_s = 30.0  # accepted, but the answer never comes
    stack.fire(name)
    wait_until(
        lambda: stack.comments_for(name) and stack.slack_for(name),
        timeout_s=60,
        what="both platforms to have accepted the message",
    )
    stack.service.kill()
    stack.github.stall_s = stack.slack.stall_s = 0.0
    stack.service.start()
    wait_until(
        lambda: any(c.edits for c in stack.comments_for(name)),
        timeout_s=60,
        what="the retry to find and edit the GitHub comment",
    )
    wait_until(lambda: len(stack.slack_for(name)) == 2, timeout_s=60, what="the Slack retry")
    stack.settled(name)
    assert len(stack.comments_for(name)) == 1
    assert len(stack.slack_for(name)) == 2  # the documented duplicate, and no more
