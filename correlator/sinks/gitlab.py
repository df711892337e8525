"""GitLab: the incident's note (correlator/sinks/git.py) on the merge request that brought the
deployed commit (commit → merge requests lookup), else in a discussion on the commit.
Self-hosted: set `api_url` (https://HOST/api/v4) and `web_host`.

    GET  /projects/:id/repository/commits/:sha/merge_requests
    GET  /projects/:id/merge_requests/:iid/notes        POST (body)   PUT …/notes/:note_id
    GET  /projects/:id/repository/commits/:sha/discussions   POST (body)
    PUT  /projects/:id/repository/commits/:sha/discussions/:discussion_id/notes/:note_id
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr

from correlator.settings.base import SinkSettingsBase
from correlator.sinks.git import Change, GitCommentSink
from correlator.sinks.registry import register


class GitLabSinkSettings(SinkSettingsBase):
    type: Literal["gitlab"]
    token: SecretStr = Field(description="A token with the api scope (PRIVATE-TOKEN).")
    api_url: str = Field(
        "https://gitlab.com/api/v4", description="Self-hosted: https://HOST/api/v4"
    )
    web_host: str = Field("gitlab.com", description="Host of the repository URLs it handles.")


class GitLabSink(GitCommentSink):
    unknown = "no GitLab project or deployed revision known"
    edit_method = "PUT"

    def __init__(
        self,
        name: str,
        *,
        token: str,
        api_url: str = "https://gitlab.com/api/v4",
        web_host: str = "gitlab.com",
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            name,
            api_url=api_url,
            web_host=web_host,
            headers={"PRIVATE-TOKEN": token},
            timeout_s=timeout_s,
        )

    async def _change(self, owner: str, name: str, revision: str) -> Change:
        project = f"/projects/{quote(f'{owner}/{name}', safe='')}"
        requests = await self._request(
            "GET", f"{project}/repository/commits/{revision}/merge_requests"
        )
        if isinstance(requests, list) and requests:
            iid = int(requests[0]["iid"])
            return Change(f"!{iid}", {"notes": f"{project}/merge_requests/{iid}/notes"})
        discussions = f"{project}/repository/commits/{revision}/discussions"
        return Change(f"commit {revision[:12]}", {"discussions": discussions})

    async def _find(self, change: Change, mark: str) -> dict[str, Any] | None:
        if "notes" in change.paths:
            notes = change.paths["notes"]
            async for note in self._pages(notes):
                if mark in str(note.get("body")):
                    return {"edit_path": f"{notes}/{note['id']}", "target": change.target}
            return None
        discussions = change.paths["discussions"]
        async for discussion in self._pages(discussions):
            for note in discussion.get("notes", []):
                if mark in str(note.get("body")):
                    path = f"{discussions}/{discussion['id']!s}/notes/{int(note['id'])}"
                    return {"edit_path": path, "target": change.target}
        return None

    async def _create(self, change: Change, body: dict[str, Any]) -> dict[str, Any]:
        if "notes" in change.paths:
            note = await self._request("POST", change.paths["notes"], json=body)
            return {"edit_path": f"{change.paths['notes']}/{note['id']}", "target": change.target}
        discussions = change.paths["discussions"]
        created = await self._request("POST", discussions, json=body)
        path = f"{discussions}/{created['id']!s}/notes/{int(created['notes'][0]['id'])}"
        return {"edit_path": path, "target": change.target}


@register(GitLabSinkSettings)
def build(spec: GitLabSinkSettings) -> GitLabSink:
    token = spec.token.get_secret_value()
    return GitLabSink(spec.name, token=token, api_url=spec.api_url, web_host=spec.web_host)
