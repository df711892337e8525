"""A hostile WebApplication and a hostile alert against the sinks (issue 23, items 2 and 5):
what correlator sends to GitHub, GitLab and Slack (the requests the test servers received).

`evil` lives in namespace `shop`; `checkout` in `payments` belongs to another team."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from correlator.models.message import Message
from correlator.sinks import github
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.slack import FakeSlack
from tests.sinks.test_delivery import _post, _settled, until
from tests.support.payloads import alert, payload
from tests.support.servers import served

TRAVERSAL = "../../../../repos/victim/x/issues/5/comments#"
TEAMS = {
    "shop": {
        "namespaces": ["shop"],
        "chat_channels": ["C0SHOP"],
        "repositories": ["https://github.com/example/*", "https://gitlab.example/example/*"],
        "receivers": ["shop-pager"],
    },
    "payments": {
        "namespaces": ["payments"],
        "chat_channels": ["C0PAYMENTS"],
        "repositories": ["https://github.com/acme/payments"],
        "receivers": ["payments-pager"],
    },
}


def webapp(name: str, namespace: str, *, annotations: dict[str, str] | None = None, **spec: Any):
    return {
        "apiVersion": "platform.correlator.dev/v1alpha1",
        "kind": "WebApplication",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"image": "registry.example/app:1.0", "team": namespace, **spec},
    }


def checkout() -> dict[str, Any]:
    return webapp(
        "checkout",
        "payments",
        repo="https://github.com/acme/payments",
        alerting={"chatChannel": "C0PAYMENTS"},
    )


def recorded(app: web.Application) -> list[str]:
    """Every request line the test server receives, as it arrived."""
    seen: list[str] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        seen.append(f"{request.method} {request.raw_path}")
        return await handler(request)

    app.middlewares.append(record)
    return seen


async def start(
    app_client: Any, tmp_path: Path, apps: list[dict[str, Any]], sinks: list[dict[str, Any]],
    **groups: Any,
) -> Any:  # fmt: skip
    source = tmp_path / "apps"
    source.mkdir()
    for number, manifest in enumerate(apps):
        (source / f"{number}.yaml").write_text(yaml.safe_dump(manifest))
    client = await app_client(
        provisioning={
            "source_dir": str(source),
            "target": "files",
            "out_dir": str(tmp_path / "out"),
            "public_url": "https://c.example",
        },
        notify={"sinks": sinks, "retry_base_s": 0.05},
        **groups,
    )
    deadline = time.monotonic() + 20
    while "correlator_provisioning_runs_total{" not in await (await client.get("/metrics")).text():
        assert time.monotonic() < deadline, "provisioning never ran"
        await asyncio.sleep(0.05)
    return client


def firing(*labels: dict[str, str], group: str = "Hostile", **annotations: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    alerts = [
        alert(f"a{n}", labels=each, starts_at=(now - timedelta(minutes=2)).isoformat())
        for n, each in enumerate(labels)
    ]
    common = {k: v for k, v in labels[0].items() if all(x.get(k) == v for x in labels)}
    return payload(
        alerts,
        group_key=f'{{}}:{{alertname="{group}"}}',
        commonLabels=common,
        commonAnnotations=annotations,
    )


EVIL_ALERT = {"alertname": "Hostile", "namespace": "shop", "webapp": "evil"}


async def test_a_revision_cannot_walk_the_github_token_to_another_repository(
    app_client: Any, tmp_path: Path
) -> None:
    github = FakeGitHub()
    requests = recorded(github.app)
    evil = webapp(
        "evil",
        "shop",
        annotations={"correlator.dev/revision": TRAVERSAL},
        repo="https://github.com/example/checkout",
    )
    async with served(github.app) as url:
        sinks = [{"type": "github", "name": "gh", "token": "ghp_test", "api_url": url}]
        client = await start(app_client, tmp_path, [evil], sinks)
        detail = await _settled(client, await _post(client, firing(EVIL_ALERT)))
    assert not any("victim" in line or "issues/5" in line for line in requests), requests
    assert github.comments == []
    assert TRAVERSAL not in json.dumps(detail)


async def test_a_revision_cannot_walk_the_gitlab_token_to_another_project(
    app_client: Any, tmp_path: Path
) -> None:
    gitlab = FakeGitLab()
    requests = recorded(gitlab.app)
    evil = webapp(
        "evil",
        "shop",
        annotations={"correlator.dev/revision": TRAVERSAL},
        repo="https://gitlab.example/example/checkout",
    )
    async with served(gitlab.app) as url:
        sinks = [{"type": "gitlab", "name": "gl", "token": "glpat-test",
                  "api_url": f"{url}/api/v4", "web_host": "gitlab.example"}]  # fmt: skip
        client = await start(app_client, tmp_path, [evil], sinks)
        await _settled(client, await _post(client, firing(EVIL_ALERT)))
    assert not any("victim" in line or "issues" in line for line in requests), requests
    assert gitlab.notes == []


async def test_another_teams_repository_gets_no_comment(app_client: Any, tmp_path: Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    github = FakeGitHub(repo="acme/payments")
    github.add_commit(sha, pull=42)
    requests = recorded(github.app)
    evil = webapp(
        "evil",
        "shop",
        annotations={"correlator.dev/revision": sha},
        repo="https://github.com/acme/payments",  # payments' repository
    )
    async with served(github.app) as url:
        sinks = [{"type": "github", "name": "gh", "token": "ghp_test", "api_url": url}]
        client = await start(
            app_client, tmp_path, [checkout(), evil], sinks, tenancy={"teams": TEAMS}
        )
        await _settled(client, await _post(client, firing(EVIL_ALERT)))
    assert requests == [] and github.comments == []


async def test_another_teams_channel_hears_nothing_of_a_hostile_spec_or_alert(
    app_client: Any, tmp_path: Path
) -> None:
    slack = FakeSlack(channels=("C0INCIDENTS", "C0SHOP", "C0PAYMENTS", "U0CEO"))
    evil = webapp("evil", "shop", alerting={"chatChannel": "C0PAYMENTS"})
    summary = "@here payments is down, log in at evil.example or http://evil.example/login"
    async with served(slack.app) as url:
        sinks = [{"type": "slack", "name": "chat", "token": "xoxb-test",
                  "channel": "C0INCIDENTS", "api_url": f"{url}/api"}]  # fmt: skip
        client = await start(
            app_client,
            tmp_path,
            [checkout(), evil],
            sinks,
            tenancy={"teams": TEAMS, "namespace_label": "rule_namespace"},
        )
        # The spec claims payments' channel: refused, so its alert goes to the default one.
        first = await _post(client, firing({**EVIL_ALERT, "rule_namespace": "shop"}))
        # A rule in shop labelled as payments' checkout: the namespace the platform enforces
        # (rule_namespace) says shop, so it is not checkout's.
        hostile = {"alertname": "Hostile", "rule_namespace": "shop", "namespace": "payments",
                   "app": "checkout"}  # fmt: skip
        second = await _post(
            client,
            firing(hostile, group="Second", summary=summary, runbook_url="https://evil.example/x"),
        )
        await _settled(client, first)
        await _settled(client, second)
        await until(lambda: len(slack.top_level()) >= 2, "both messages")
    assert {m.channel for m in slack.messages} == {"C0INCIDENTS"}
    for message in slack.messages:
        texts = [
            element
            for block in message.blocks
            for element in [block.get("text"), *block.get("elements", [])]
            if isinstance(element, dict) and element.get("type") == "mrkdwn"
        ]
        assert texts and all(t.get("verbatim") is True for t in texts)  # no bare-domain links


async def test_a_group_mixing_namespaces_reaches_no_apps_channel(
    app_client: Any, tmp_path: Path
) -> None:
    slack = FakeSlack(channels=("C0INCIDENTS", "C0SHOP", "C0PAYMENTS"))
    async with served(slack.app) as url:
        sinks = [{"type": "slack", "name": "chat", "token": "xoxb-test",
                  "channel": "C0INCIDENTS", "api_url": f"{url}/api"}]  # fmt: skip
        client = await start(app_client, tmp_path, [checkout(), webapp("evil", "shop")], sinks)
        mixed = firing(
            {"alertname": "Hostile", "namespace": "payments", "app": "checkout"},
            {"alertname": "Hostile", "namespace": "shop", "app": "evil"},
        )
        await _settled(client, await _post(client, mixed))
        await until(lambda: slack.messages, "the message")
    assert {m.channel for m in slack.messages} == {"C0INCIDENTS"}


def test_links_stay_links_in_git_markdown() -> None:
    hostile = "https://grafana.example/d/x?a=1) [click](https://evil.example) <b>"
    message = {
        "incident_id": 7, "status": "firing", "title": "Hostile", "app": None,
        "alerts_firing": 1, "alerts_total": 1, "duration": None, "summary": "", "suspects": [],
        "missing": [], "incident_url": "https://c.example/incidents/7",
        "dashboard_url": "https://g.example/d/wa?from=1&to=2",
        "grafana": {"links": {"Panel": hostile, "Silence": "javascript:alert(1)"}, "values": ""},
    }  # fmt: skip
    body = github.markdown(Message.model_validate(message))
    assert "[Incident page](<https://c.example/incidents/7>)" in body
    assert "[Dashboard](<https://g.example/d/wa?from=1&to=2>)" in body
    assert "[Panel](<https://grafana.example/d/x?a=1%29%20%5Bclick%5D%28" in body
    assert "](https://evil.example)" not in body and "<b>" not in body
    assert "javascript:" not in body
