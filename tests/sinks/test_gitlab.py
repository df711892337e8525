"""GitLab: one note per incident on the deployed merge request, else in a commit discussion;
edited through resolve, never doubled by a retry; a self-hosted base URL."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.gitlab import FakeGitLab, Note
from tests.sinks.test_delivery import _post, _settled, until
from tests.sinks.test_github import SHA, _alerts, manifests
from tests.support.servers import served


async def _start(app_client: Any, tmp_path: Path, url: str) -> Any:
    source = manifests(tmp_path / "apps", deployed_at=datetime.now(UTC))
    app = yaml.safe_load((source / "api.yaml").read_text())
    app["spec"]["repo"] = "https://gitlab.example/example/checkout"  # self-hosted
    (source / "api.yaml").write_text(yaml.safe_dump(app))
    sink = {"type": "gitlab", "name": "gl", "token": "glpat-test", "api_url": f"{url}/api/v4",
            "web_host": "gitlab.example"}  # fmt: skip
    client = await app_client(
        provisioning={"source_dir": str(source), "target": "files", "out_dir": str(tmp_path / "o")},
        notify={"sinks": [sink], "retry_base_s": 0.05},
    )
    deadline = time.monotonic() + 20
    while 'outcome="ok"} 1.0' not in await (await client.get("/metrics")).text():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    return client


async def test_a_note_on_the_merge_request_edited_on_resolve(
    app_client: Any, tmp_path: Path
) -> None:
    gitlab = FakeGitLab()
    gitlab.add_commit(SHA, merge_request=7)
    now = datetime.now(UTC)
    async with served(gitlab.app) as url:
        client = await _start(app_client, tmp_path, url)
        incident_id = await _post(client, _alerts(now))
        await until(lambda: gitlab.notes, "the note")
        await _settled(client, incident_id)
        await _post(client, _alerts(now, status="resolved"))
        await until(lambda: gitlab.notes[0].edits, "the edit")
        await _settled(client, incident_id)
    (note,) = gitlab.notes
    assert note.where == "mr:7" and "RESOLVED" in note.body


async def test_a_commit_discussion_and_no_duplicate_after_a_crash(
    app_client: Any, tmp_path: Path
) -> None:
    gitlab = FakeGitLab()
    gitlab.add_commit(SHA)
    orphan = Note(9, f"commit:{SHA}:abc", "old\n<!-- correlator:incident:1 -->")
    gitlab.notes.append(orphan)
    async with served(gitlab.app) as url:
        client = await _start(app_client, tmp_path, url)
        incident_id = await _post(client, _alerts(datetime.now(UTC)))
        await until(lambda: orphan.edits, "the orphan note's edit")
        await _settled(client, incident_id)
    assert gitlab.notes == [orphan] and "FIRING" in orphan.body
