"""GitHub: one comment per incident on the change that was deployed before it.

The WebApplication names the repository (`spec.repo`) and the deployed revision (an annotation
set by the delivery pipeline, its status, or a commit-id image tag). The comment goes on the
pull request that brought that commit (GitHub's commit → pulls lookup), else on the commit
itself, and is edited as the incident evolves and resolves. Each comment carries an invisible
marker; before creating one, existing comments are searched for it, so a retry after a crash
edits the comment it already made instead of posting a second one. GitHub Enterprise: set
`api_url` (https://HOST/api/v3) and `web_host` (HOST).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from correlator.catalogue import github_repo
from correlator.sinks import escape
from correlator.sinks.base import (
    Remember,
    SinkGone,
    SinkRejected,
    SinkRetry,
    json_body,
    request,
)
from correlator.sinks.message import evidence_links, responder_links

MAX_BODY = 65_536
SHA = re.compile(r"^[0-9a-f]{7,40}$")
API_VERSION = "2022-11-28"


def marker(incident_id: int) -> str:
    return f"<!-- correlator:incident:{incident_id} -->"


def markdown(message: dict[str, Any]) -> str:
    e, name = escape.markdown, escape.markdown_name
    icon = "🔴" if message["status"] == "firing" else "🟢"
    lines = [f"### {icon} {message['status'].upper()}: {name(message['title'])}", ""]
    app = message.get("app") or {}
    if app.get("revision"):
        when = app.get("deployed_minutes_before_alert")
        lead = f" {when:.0f} min before the alert" if isinstance(when, int | float) else ""
        revision = escape.markdown_code(escape.defang(app["revision"][:12]))
        lines.append(f"This revision ({revision}) was deployed{lead}.")
    facts = f"{message['alerts_firing']} of {message['alerts_total']} alerts firing"
    if message.get("namespace"):
        facts += f" in namespace {name(message['namespace'])}"
    if message["duration"]:
        facts += f", resolved after {message['duration']}"
    lines += [facts, ""]
    if message["summary"]:
        lines += [f"> {e(message['summary'])}", ""]
    if message["suspects"]:
        lines.append("**Likely causes**")
        for rank, suspect in enumerate(message["suspects"], 1):
            lines.append(f"{rank}. **{name(suspect['service'])}**: {e(suspect['reason'])}")
            for ev in suspect["evidence"]:
                opens = "".join(
                    f" · {escape.markdown_link(title, url)}" for title, url in evidence_links(ev)
                )
                lines.append(f"    - {e(ev['detail'])}{opens}")
        lines.append("")
    if message["missing"]:
        lines += ["Missing: " + "; ".join(e(m) for m in message["missing"]), ""]
    links = [escape.markdown_link(title, url) for title, url in responder_links(message)]
    if (message.get("grafana") or {}).get("values"):
        lines.append(f"Grafana values: {e(message['grafana']['values'])}")
    lines.append(" · ".join(links))
    lines.append(marker(message["incident_id"]))
    body = "\n".join(lines)
    if len(body) > MAX_BODY:  # keep the marker: it is how a retry finds the comment
        body = escape.truncate(body, MAX_BODY - 200) + "\n\n" + marker(message["incident_id"])
    return body


class GitHubSink:
    def __init__(
        self,
        name: str,
        *,
        token: str,
        api_url: str = "https://api.github.com",
        web_host: str = "github.com",
        severities: frozenset[str] = frozenset(),
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.severities = severities
        self.teams: frozenset[str] = frozenset()  # set by build_sinks
        self._web_host = web_host
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=timeout_s,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await request(
            self.name, self._http, method, path, gone_on_404=method == "PATCH", **kwargs
        )
        return json_body(self.name, response)

    async def send(
        self, message: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        app = message.get("app") or {}
        repo = github_repo(app.get("repo"))
        revision = app.get("revision")
        if repo is None or repo[0] != self._web_host or not revision:
            return {"skipped": "no GitHub repository or deployed revision known"}
        _, owner, name = repo
        if not SHA.match(revision):
            return {"skipped": "the deployed revision is not a commit id"}
        body = {"body": markdown(message)}
        if remote.get("edit_path"):
            try:
                await self._request("PATCH", remote["edit_path"], json=body)
                return remote
            except SinkGone:
                remote = {}  # deleted by someone: post it again
        # Every segment from a spec or a label is quoted: it stays one segment of this path.
        base = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        pulls = await self._request("GET", f"{base}/commits/{revision}/pulls")
        if isinstance(pulls, list) and pulls:
            chosen = next((p for p in pulls if p.get("merged_at")), pulls[0])
            number = int(chosen["number"])
            listing, create = f"{base}/issues/{number}/comments", f"{base}/issues/{number}/comments"
            edit = f"{base}/issues/comments/{{id}}"
            target = f"pull request #{number}"
        else:
            listing = create = f"{base}/commits/{revision}/comments"
            edit = f"{base}/comments/{{id}}"
            target = f"commit {revision[:12]}"
        existing = await self._find(listing, marker(message["incident_id"]))
        if existing is not None:
            remote = _remote(edit.format(id=existing["id"]), existing, target)
            await remember(remote)
            await self._request("PATCH", remote["edit_path"], json=body)
            return remote
        created = await self._request("POST", create, json=body)
        if not isinstance(created, dict) or "id" not in created:
            raise SinkRetry(f"{self.name}: the created comment has no id")
        remote = _remote(edit.format(id=created["id"]), created, target)
        await remember(remote)
        return remote

    async def _find(self, listing: str, mark: str) -> dict[str, Any] | None:
        page = 1
        while page <= 10:
            comments = await self._request("GET", listing, params={"per_page": 100, "page": page})
            if not isinstance(comments, list):
                raise SinkRejected(f"{self.name}: {listing} did not answer a list")
            for comment in comments:
                if mark in str(comment.get("body", "")):
                    return dict(comment)
            if len(comments) < 100:
                return None
            page += 1
        return None


def _remote(edit_path: str, comment: dict[str, Any], target: str) -> dict[str, Any]:
    return {"edit_path": edit_path, "html_url": comment.get("html_url"), "target": target}
