"""What the GitHub and GitLab sinks share: one comment per incident on the change that was
deployed before it, edited as the incident evolves and resolves.

The WebApplication names the repository (`spec.repo`) and the deployed revision (an annotation
set by the delivery pipeline, its status, or a commit-id image tag). The comment goes on the
change that brought that commit (a pull or merge request), else on the commit itself. Each
comment carries an invisible marker; before creating one, existing comments are searched for
it, so a retry after a crash edits the comment it already made instead of posting a second
one. A platform module says only where the comment goes, how it finds, creates and edits one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from correlator.catalogue import github_repo
from correlator.models.message import Message
from correlator.sinks import escape
from correlator.sinks.base import HttpSink, Remember, SinkGone, SinkRejected, json_body, request
from correlator.sinks.message import evidence_links, responder_links

MAX_BODY = 65_536
SHA = re.compile(r"^[0-9a-f]{7,40}$")


def marker(incident_id: int) -> str:
    return f"<!-- correlator:incident:{incident_id} -->"


def markdown(message: Message) -> str:
    e, name = escape.markdown, escape.markdown_name
    icon = "🔴" if message.status == "firing" else "🟢"
    lines = [f"### {icon} {message.status.upper()}: {name(message.title)}", ""]
    app = message.app
    if app is not None and app.revision:
        when = app.deployed_minutes_before_alert
        lead = f" {when:.0f} min before the alert" if when is not None else ""
        revision = escape.markdown_code(escape.defang(app.revision[:12]))
        lines.append(f"This revision ({revision}) was deployed{lead}.")
    facts = f"{message.alerts_firing} of {message.alerts_total} alerts firing"
    if message.namespace:
        facts += f" in namespace {name(message.namespace)}"
    if message.duration:
        facts += f", resolved after {message.duration}"
    lines += [facts, ""]
    if message.summary:
        lines += [f"> {e(message.summary)}", ""]
    if message.suspects:
        lines.append("**Likely causes**")
        for rank, suspect in enumerate(message.suspects, 1):
            lines.append(f"{rank}. **{name(suspect.service)}**: {e(suspect.reason)}")
            for ev in suspect.evidence:
                opens = "".join(
                    f" · {escape.markdown_link(title, url)}" for title, url in evidence_links(ev)
                )
                lines.append(f"    - {e(ev.detail)}{opens}")
        lines.append("")
    if message.missing:
        lines += ["Missing: " + "; ".join(e(m) for m in message.missing), ""]
    links = [escape.markdown_link(title, url) for title, url in responder_links(message)]
    if message.grafana is not None and message.grafana.values:
        lines.append(f"Grafana values: {e(message.grafana.values)}")
    lines.append(" · ".join(links))
    lines.append(marker(message.incident_id))
    body = "\n".join(lines)
    if len(body) > MAX_BODY:  # keep the marker: it is how a retry finds the comment
        body = escape.truncate(body, MAX_BODY - 200) + "\n\n" + marker(message.incident_id)
    return body


@dataclass(frozen=True)
class Change:
    """Where the incident's comment goes: `target` says it to people (`pull request #7`), the
    rest is the platform's (its paths)."""

    target: str
    paths: dict[str, str]


class GitCommentSink(HttpSink):
    unknown = ""  # the remote's `skipped` when there is no repository or revision to go to
    edit_method: Literal["PATCH", "PUT"] = "PATCH"

    def __init__(
        self, name: str, *, api_url: str, web_host: str, headers: dict[str, str], timeout_s: float
    ) -> None:
        super().__init__(name, timeout_s=timeout_s, base_url=api_url.rstrip("/"), headers=headers)
        self._web_host = web_host

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await request(
            self.name, self._http, method, path, gone_on_404=method == self.edit_method, **kwargs
        )
        return json_body(self.name, response)

    async def _pages(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """The items of a paged listing, fetched a page at a time (at most 10 of 100)."""
        for page in range(1, 11):
            chunk = await self._request("GET", path, params={"per_page": 100, "page": page})
            if not isinstance(chunk, list):
                raise SinkRejected(f"{self.name}: {path} did not answer a list")
            for item in chunk:
                yield item
            if len(chunk) < 100:
                return

    async def send(
        self, document: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        message = Message.model_validate(document)  # the outbox's JSON
        app = message.app
        # https://host/owner/name, the same shape on both platforms
        repo = github_repo(app.repo) if app is not None else None
        revision = app.revision if app is not None else None
        if repo is None or repo[0] != self._web_host or not revision:
            return {"skipped": self.unknown}
        if not SHA.match(revision):
            return {"skipped": "the deployed revision is not a commit id"}
        body = {"body": markdown(message)}
        if remote.get("edit_path"):
            try:
                await self._request(self.edit_method, remote["edit_path"], json=body)
                return remote
            except SinkGone:
                remote = {}  # deleted by someone: post it again
        change = await self._change(repo[1], repo[2], revision)
        existing = await self._find(change, marker(message.incident_id))
        if existing is not None:
            await remember(existing)
            await self._request(self.edit_method, existing["edit_path"], json=body)
            return existing
        remote = await self._create(change, body)
        await remember(remote)
        return remote

    async def _change(self, owner: str, name: str, revision: str) -> Change:
        """Where the comment goes: the change that brought `revision`, else the commit."""
        raise NotImplementedError

    async def _find(self, change: Change, mark: str) -> dict[str, Any] | None:
        """The remote (with `edit_path`) of the comment holding `mark`, if there is one."""
        raise NotImplementedError

    async def _create(self, change: Change, body: dict[str, Any]) -> dict[str, Any]:
        """Post the comment; its remote (with `edit_path`)."""
        raise NotImplementedError
