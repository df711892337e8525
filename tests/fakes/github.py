"""A GitHub REST test server: commit → pulls, commit comments and issue (PR) comments, as
GitHub answers them (../shared/contracts/chat-and-git/NOTES.md): bearer auth (401 "Bad
credentials"), JSON bodies with a required `body` (422 otherwise, and over 65,536 characters),
201 on create, 200 on edit, 404 for what does not exist."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

MAX_BODY = 65_536
DOCS = "https://docs.github.com/rest"


@dataclass
class Comment:
    id: int
    where: str  # "issue:42" or "commit:<sha>"
    body: str
    edits: int = 0


class FakeGitHub:
    def __init__(self, *, token: str = "ghp_test", repo: str = "example/checkout") -> None:
        self.token = token
        self.repo = repo
        self.pulls: dict[str, list[dict[str, Any]]] = {}  # sha → pulls
        self.commits: set[str] = set()
        self.comments: list[Comment] = []
        self.stall_s = 0.0  # hold the answer of a create this long (after storing it)
        self._ids = itertools.count(1000)
        self.app = web.Application()
        r = self.app.router
        r.add_get("/repos/{owner}/{repo}/commits/{sha}/pulls", self.list_pulls)
        r.add_get("/repos/{owner}/{repo}/commits/{sha}/comments", self.list_commit_comments)
        r.add_post("/repos/{owner}/{repo}/commits/{sha}/comments", self.create_commit_comment)
        r.add_patch("/repos/{owner}/{repo}/comments/{id}", self.edit_commit_comment)
        r.add_get("/repos/{owner}/{repo}/issues/{number}/comments", self.list_issue_comments)
        r.add_post("/repos/{owner}/{repo}/issues/{number}/comments", self.create_issue_comment)
        r.add_patch("/repos/{owner}/{repo}/issues/comments/{id}", self.edit_issue_comment)

    def add_commit(self, sha: str, *, pull: int | None = None) -> None:
        self.commits.add(sha)
        if pull is not None:
            url = f"https://github.com/{self.repo}/pull/{pull}"
            merged = "2026-11-26T07:00:00Z"
            self.pulls[sha] = [
                {"number": pull, "state": "closed", "merged_at": merged, "html_url": url}
            ]

    # --- checks ------------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"message": message, "documentation_url": DOCS}, status=status)

    def _denied(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") not in (
            f"Bearer {self.token}",
            f"token {self.token}",
        ):
            return self._error(401, "Bad credentials")
        if f"{request.match_info['owner']}/{request.match_info['repo']}" != self.repo:
            return self._error(404, "Not Found")
        return None

    async def _body(self, request: web.Request) -> str | web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError:
            return self._error(400, "Problems parsing JSON")
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str) or not body:
            return self._error(422, "Validation Failed: body is missing")
        if len(body) > MAX_BODY:
            return self._error(
                422, "Validation Failed: body is too long (maximum is 65536 characters)"
            )
        return body

    def _json(self, comment: Comment, status: int = 200) -> web.Response:
        kind, _, ref = comment.where.partition(":")
        url = f"https://github.com/{self.repo}/{'pull' if kind == 'issue' else 'commit'}/{ref}"
        return web.json_response(
            {"id": comment.id, "body": comment.body, "html_url": f"{url}#comment-{comment.id}",
             "user": {"login": "correlator[bot]"}},
            status=status,
        )  # fmt: skip

    # --- endpoints ---------------------------------------------------------------------------

    async def list_pulls(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        sha = request.match_info["sha"]
        if sha not in self.commits:
            return self._error(422, f"No commit found for SHA: {sha}")
        return web.json_response(self.pulls.get(sha, []))

    def _listing(self, where: str, request: web.Request) -> web.Response:
        page, per_page = (
            int(request.query.get("page", "1")),
            int(request.query.get("per_page", "30")),
        )
        found = [c for c in self.comments if c.where == where]
        chunk = found[(page - 1) * per_page : page * per_page]
        return web.json_response(
            [
                {"id": c.id, "body": c.body, "html_url": f"https://github.com/x#{c.id}"}
                for c in chunk
            ]
        )

    async def list_commit_comments(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        return self._listing(f"commit:{request.match_info['sha']}", request)

    async def list_issue_comments(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        return self._listing(f"issue:{request.match_info['number']}", request)

    async def _create(self, request: web.Request, where: str) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        comment = Comment(next(self._ids), where, body)
        self.comments.append(comment)
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        return self._json(comment, 201)

    async def create_commit_comment(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        sha = request.match_info["sha"]
        if sha not in self.commits:
            return self._error(422, f"No commit found for SHA: {sha}")
        return await self._create(request, f"commit:{sha}")

    async def create_issue_comment(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        number = request.match_info["number"]
        if not any(int(number) == p["number"] for ps in self.pulls.values() for p in ps):
            return self._error(404, "Not Found")
        return await self._create(request, f"issue:{number}")

    async def _edit(self, request: web.Request, kind: str) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        found = next(
            (c for c in self.comments if str(c.id) == request.match_info["id"]
             and c.where.startswith(kind)),
            None,
        )  # fmt: skip
        if found is None:
            return self._error(404, "Not Found")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        found.body, found.edits = body, found.edits + 1
        return self._json(found)

    async def edit_commit_comment(self, request: web.Request) -> web.Response:
        return await self._edit(request, "commit:")

    async def edit_issue_comment(self, request: web.Request) -> web.Response:
        return await self._edit(request, "issue:")
