"""GitLab: one note per incident on the deployed change: on the merge request that brought the
commit (commit → merge requests lookup), else in a discussion on the commit; edited as the
incident evolves, found again by its marker after a crash. Self-hosted: set `api_url`
(https://HOST/api/v4) and `web_host`.

    GET  /projects/:id/repository/commits/:sha/merge_requests
    GET  /projects/:id/merge_requests/:iid/notes        POST (body)   PUT …/notes/:note_id
    GET  /projects/:id/repository/commits/:sha/discussions   POST (body)
    PUT  /projects/:id/repository/commits/:sha/discussions/:discussion_id/notes/:note_id
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from correlator.catalogue import github_repo
from correlator.sinks.base import Remember, SinkGone, SinkRejected, json_body, request
from correlator.sinks.github import SHA, markdown, marker


class GitLabSink:
    def __init__(
        self,
        name: str,
        *,
        token: str,
        api_url: str = "https://gitlab.com/api/v4",
        web_host: str = "gitlab.com",
        severities: frozenset[str] = frozenset(),
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.severities = severities
        self.teams: frozenset[str] = frozenset()  # set by build_sinks
        self._web_host = web_host
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"), timeout=timeout_s, headers={"PRIVATE-TOKEN": token}
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await request(
            self.name, self._http, method, path, gone_on_404=method == "PUT", **kwargs
        )
        return json_body(self.name, response)

    async def send(
        self, message: dict[str, Any], remote: dict[str, Any], remember: Remember
    ) -> dict[str, Any]:
        app = message.get("app") or {}
        repo = github_repo(app.get("repo"))  # https://host/group/project, the same shape
        revision = app.get("revision")
        if repo is None or repo[0] != self._web_host or not revision:
            return {"skipped": "no GitLab project or deployed revision known"}
        if not SHA.match(revision):
            return {"skipped": "the deployed revision is not a commit id"}
        project = f"/projects/{quote(f'{repo[1]}/{repo[2]}', safe='')}"
        body = {"body": markdown(message)}
        if remote.get("edit_path"):
            try:
                await self._request("PUT", remote["edit_path"], json=body)
                return remote
            except SinkGone:
                remote = {}
        mark = marker(message["incident_id"])
        requests = await self._request(
            "GET", f"{project}/repository/commits/{revision}/merge_requests"
        )
        if isinstance(requests, list) and requests:
            iid = int(requests[0]["iid"])
            notes_path = f"{project}/merge_requests/{iid}/notes"
            existing = await self._find_note(notes_path, mark)
            if existing is not None:
                remote = {"edit_path": f"{notes_path}/{existing['id']}", "target": f"!{iid}"}
                await remember(remote)
                await self._request("PUT", remote["edit_path"], json=body)
                return remote
            note = await self._request("POST", notes_path, json=body)
            remote = {"edit_path": f"{notes_path}/{note['id']}", "target": f"!{iid}"}
            await remember(remote)
            return remote
        discussions = f"{project}/repository/commits/{revision}/discussions"
        found = await self._find_discussion(discussions, mark)
        if found is None:
            created = await self._request("POST", discussions, json=body)
            found = (str(created["id"]), int(created["notes"][0]["id"]))
            edit_now = False
        else:
            edit_now = True
        remote = {
            "edit_path": f"{discussions}/{found[0]}/notes/{found[1]}",
            "target": f"commit {revision[:12]}",
        }
        await remember(remote)
        if edit_now:
            await self._request("PUT", remote["edit_path"], json=body)
        return remote

    async def _pages(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, 11):
            chunk = await self._request("GET", path, params={"per_page": 100, "page": page})
            if not isinstance(chunk, list):
                raise SinkRejected(f"{self.name}: {path} did not answer a list")
            items += chunk
            if len(chunk) < 100:
                break
        return items

    async def _find_note(self, path: str, mark: str) -> dict[str, Any] | None:
        return next((n for n in await self._pages(path) if mark in str(n.get("body"))), None)

    async def _find_discussion(self, path: str, mark: str) -> tuple[str, int] | None:
        for discussion in await self._pages(path):
            for note in discussion.get("notes", []):
                if mark in str(note.get("body")):
                    return str(discussion["id"]), int(note["id"])
        return None
