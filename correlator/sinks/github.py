"""GitHub: the incident's comment (correlator/sinks/git.py) on the pull request that brought
the deployed commit (GitHub's commit → pulls lookup), else on the commit itself. GitHub
Enterprise: set `api_url` (https://HOST/api/v3) and `web_host` (HOST).

    GET /repos/:owner/:repo/commits/:sha/pulls
    GET /repos/:owner/:repo/issues/:number/comments   POST (body)   PATCH …/issues/comments/:id
    GET /repos/:owner/:repo/commits/:sha/comments     POST (body)   PATCH …/comments/:id
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr

from correlator.settings.base import SinkSettingsBase
from correlator.sinks.base import SinkRetry
from correlator.sinks.git import SHA, Change, GitCommentSink, markdown, marker
from correlator.sinks.registry import register

__all__ = ["SHA", "GitHubSink", "GitHubSinkSettings", "markdown", "marker"]

API_VERSION = "2022-11-28"


class GitHubSinkSettings(SinkSettingsBase):
    type: Literal["github"]
    token: SecretStr = Field(description="A token that may comment (fine-grained: pull requests "
                             "and contents, read and write).")  # fmt: skip
    api_url: str = Field(
        "https://api.github.com", description="GitHub Enterprise: https://HOST/api/v3"
    )
    web_host: str = Field("github.com", description="Host of the repository URLs it handles.")


class GitHubSink(GitCommentSink):
    unknown = "no GitHub repository or deployed revision known"
    edit_method = "PATCH"

    def __init__(
        self,
        name: str,
        *,
        token: str,
        api_url: str = "https://api.github.com",
        web_host: str = "github.com",
        timeout_s: float = 10.0,
    ) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        super().__init__(
            name, api_url=api_url, web_host=web_host, headers=headers, timeout_s=timeout_s
        )

    async def _change(self, owner: str, name: str, revision: str) -> Change:
        # Every segment from a spec or a label is quoted: it stays one segment of this path.
        base = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        pulls = await self._request("GET", f"{base}/commits/{revision}/pulls")
        if isinstance(pulls, list) and pulls:
            chosen = next((p for p in pulls if p.get("merged_at")), pulls[0])
            number = int(chosen["number"])
            paths = {
                "comments": f"{base}/issues/{number}/comments",
                "edit": f"{base}/issues/comments/{{id}}",
            }
            return Change(f"pull request #{number}", paths)
        paths = {
            "comments": f"{base}/commits/{revision}/comments",
            "edit": f"{base}/comments/{{id}}",
        }
        return Change(f"commit {revision[:12]}", paths)

    async def _find(self, change: Change, mark: str) -> dict[str, Any] | None:
        async for comment in self._pages(change.paths["comments"]):
            if mark in str(comment.get("body", "")):
                return _remote(change, comment)
        return None

    async def _create(self, change: Change, body: dict[str, Any]) -> dict[str, Any]:
        created = await self._request("POST", change.paths["comments"], json=body)
        if not isinstance(created, dict) or "id" not in created:
            raise SinkRetry(f"{self.name}: the created comment has no id")
        return _remote(change, created)


def _remote(change: Change, comment: dict[str, Any]) -> dict[str, Any]:
    edit_path = change.paths["edit"].format(id=comment["id"])
    return {"edit_path": edit_path, "html_url": comment.get("html_url"), "target": change.target}


@register(GitHubSinkSettings)
def build(spec: GitHubSinkSettings) -> GitHubSink:
    token = spec.token.get_secret_value()
    return GitHubSink(spec.name, token=token, api_url=spec.api_url, web_host=spec.web_host)
