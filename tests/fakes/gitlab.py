"""A GitLab REST v4 test server: commit → merge requests, merge request notes and commit
discussions, as GitLab answers them (../shared/contracts/chat-and-git/NOTES.md): PRIVATE-TOKEN
auth (401 {"message": "401 Unauthorized"}), the project as a URL-encoded path, `body` required
(400 {"message": "400 Bad request - body is missing"}) and at most 1,000,000 characters, 201
on create, 200 on edit, 404 {"message": "404 Not Found"}."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

MAX_BODY = 1_000_000


@dataclass
class Note:
    id: int
    where: str  # "mr:7" or "commit:<sha>:<discussion id>"
    body: str
    edits: int = 0


class FakeGitLab:
    def __init__(self, *, token: str = "glpat-test", project: str = "example/checkout") -> None:
        self.token = token
        self.project = project
        self.merge_requests: dict[str, list[int]] = {}  # sha → iids
        self.commits: set[str] = set()
        self.notes: list[Note] = []
        self._ids = itertools.count(500)
        self.app = web.Application()
        r = self.app.router
        base = "/api/v4/projects/{project}"
        r.add_get(base + "/repository/commits/{sha}/merge_requests", self.commit_mrs)
        r.add_get(base + "/merge_requests/{iid}/notes", self.list_mr_notes)
        r.add_post(base + "/merge_requests/{iid}/notes", self.create_mr_note)
        r.add_put(base + "/merge_requests/{iid}/notes/{note}", self.edit_mr_note)
        r.add_get(base + "/repository/commits/{sha}/discussions", self.list_discussions)
        r.add_post(base + "/repository/commits/{sha}/discussions", self.create_discussion)
        r.add_put(
            base + "/repository/commits/{sha}/discussions/{discussion}/notes/{note}",
            self.edit_discussion_note,
        )

    def add_commit(self, sha: str, *, merge_request: int | None = None) -> None:
        self.commits.add(sha)
        if merge_request is not None:
            self.merge_requests[sha] = [merge_request]

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"message": message}, status=status)

    def _denied(self, request: web.Request) -> web.Response | None:
        if request.headers.get("PRIVATE-TOKEN") != self.token:
            return self._error(401, "401 Unauthorized")
        # aiohttp has decoded the path: "example%2Fcheckout" arrives as "example/checkout"
        if request.match_info["project"] != self.project:
            return self._error(404, "404 Project Not Found")
        sha = request.match_info.get("sha")
        if sha is not None and sha not in self.commits:
            return self._error(404, "404 Commit Not Found")
        return None

    async def _body(self, request: web.Request) -> str | web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError:
            return self._error(400, "400 Bad request - invalid JSON")
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str) or not body:
            return self._error(400, "400 Bad request - body is missing")
        if len(body) > MAX_BODY:
            return self._error(400, "400 Bad request - body is too long")
        return body

    @staticmethod
    def _note(note: Note) -> dict[str, Any]:
        return {"id": note.id, "body": note.body, "author": {"username": "correlator"},
                "system": False}  # fmt: skip

    def _page(self, items: list[Any], request: web.Request) -> web.Response:
        page, size = int(request.query.get("page", "1")), int(request.query.get("per_page", "20"))
        return web.json_response(items[(page - 1) * size : page * size])

    async def commit_mrs(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        iids = self.merge_requests.get(request.match_info["sha"], [])
        return web.json_response([{"iid": i, "state": "merged"} for i in iids])

    async def list_mr_notes(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        where = f"mr:{request.match_info['iid']}"
        return self._page([self._note(n) for n in self.notes if n.where == where], request)

    async def create_mr_note(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        iid = int(request.match_info["iid"])
        if not any(iid in iids for iids in self.merge_requests.values()):
            return self._error(404, "404 Not found")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        note = Note(next(self._ids), f"mr:{iid}", body)
        self.notes.append(note)
        return web.json_response(self._note(note), status=201)

    async def _edit(self, request: web.Request, where: str) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        note = next(
            (n for n in self.notes if str(n.id) == request.match_info["note"] and n.where == where),
            None,
        )
        if note is None:
            return self._error(404, "404 Not found")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        note.body, note.edits = body, note.edits + 1
        return web.json_response(self._note(note))

    async def edit_mr_note(self, request: web.Request) -> web.Response:
        return await self._edit(request, f"mr:{request.match_info['iid']}")

    async def list_discussions(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        prefix = f"commit:{request.match_info['sha']}:"
        discussions = [
            {"id": n.where.removeprefix(prefix), "notes": [self._note(n)]}
            for n in self.notes
            if n.where.startswith(prefix)
        ]
        return self._page(discussions, request)

    async def create_discussion(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        discussion = f"{next(self._ids):040x}"
        note = Note(next(self._ids), f"commit:{request.match_info['sha']}:{discussion}", body)
        self.notes.append(note)
        return web.json_response({"id": discussion, "notes": [self._note(note)]}, status=201)

    async def edit_discussion_note(self, request: web.Request) -> web.Response:
        where = f"commit:{request.match_info['sha']}:{request.match_info['discussion']}"
        return await self._edit(request, where)
