"""The Grafana test server refuses and answers as Grafana does (so reconcile tests mean it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.grafana import VERSIONS, FakeGrafana
from tests.support import optional
from tests.support.servers import served


@pytest.mark.parametrize("version", VERSIONS)
async def test_grafana_test_server_keeps_grafanas_contract(version: str) -> None:
    optional.require(optional.GRAFANA_OPENAPI)  # its 400s for ill-typed bodies come from it
    fake = FakeGrafana(version=version)
    async with served(fake.app) as url, httpx.AsyncClient(base_url=url) as http:
        auth = {"Authorization": f"Bearer {fake.token}"}

        async def save(body: dict[str, Any], headers: dict[str, str] = auth) -> httpx.Response:
            return await http.post("/api/dashboards/db", json=body, headers=headers)

        assert (await save({"dashboard": {"title": "x"}}, headers={})).status_code == 401
        first = await save({"dashboard": {"uid": "a", "title": "A"}, "overwrite": True})
        assert first.status_code == 200 and first.json()["version"] == 1
        stale = await save({"dashboard": {"uid": "a", "title": "A", "version": 0}})
        assert stale.status_code == 412 and stale.json()["status"] == "version-mismatch"
        taken = await save({"dashboard": {"uid": "b", "title": "A"}})
        if fake.at_least(11, 3):  # titles need not be unique: a second dashboard titled A
            assert taken.status_code == 200 and taken.json()["uid"] == "b"
        else:
            assert taken.status_code == 412 and taken.json()["status"] == "name-exists"
        wrong_type = await save({"dashboard": {"uid": "a", "title": "A"}, "message": 5})
        assert wrong_type.status_code == 400 and "message" in wrong_type.json()["message"]
        assert (
            await http.post("/api/folders", json={"uid": "f", "title": "F"}, headers=auth)
        ).status_code == 200
        again = await http.post("/api/folders", json={"uid": "f", "title": "G"}, headers=auth)
        if fake.at_least(11, 3):
            assert again.status_code == 412 and again.json()["status"] == "version-mismatch"
        else:
            assert again.status_code == 409
        missing = await http.get("/api/dashboards/uid/nope", headers=auth)
        assert missing.status_code == 404 and missing.json() == {"message": "Dashboard not found"}
        rule = {
            "title": "r",
            "orgID": 1,
            "folderUID": "f",
            "ruleGroup": "g",
            "condition": "A",
            "noDataState": "OK",
            "execErrState": "Error",
            "for": "5m",
            "data": [{"refId": "A", "datasourceUid": "p", "model": {"expr": "vector(1)"}}],
        }
        created = await http.post("/api/v1/provisioning/alert-rules", json=rule, headers=auth)
        assert created.status_code == 201 and created.json()["provenance"] == "api"
        incomplete = {k: v for k, v in rule.items() if k != "condition"}
        refused = await http.post("/api/v1/provisioning/alert-rules", json=incomplete, headers=auth)
        assert refused.status_code == 400
        uid = created.json()["uid"]
        again_uid = await http.post(
            "/api/v1/provisioning/alert-rules", json={**rule, "uid": uid}, headers=auth
        )
        assert again_uid.status_code == 400  # ErrAlertRuleUniqueConstraintViolation
        path = f"/api/v1/provisioning/alert-rules/{uid}"
        assert (await http.delete(path, headers=auth)).status_code == 204
        assert (await http.delete(path, headers=auth)).status_code == 204  # absent: 204 too


@pytest.mark.parametrize("version", ["10.0.3", "10.4.19", "11.2.10"])
async def test_overwrite_takes_over_a_same_titled_dashboard_as_grafana_does(version: str) -> None:
    """Grafana's getExistingDashboardByTitleAndFolder (up to 11.2): with overwrite, a save
    whose title is held by another dashboard in the folder adopts that dashboard's uid, id and
    version."""
    fake = FakeGrafana(version=version)
    fake.add_foreign_dashboard("theirs", "Checkout", ["hand-made"])
    async with served(fake.app) as url, httpx.AsyncClient(base_url=url) as http:
        auth = {"Authorization": f"Bearer {fake.token}"}
        body = {"dashboard": {"uid": "ours", "title": "Checkout"}, "overwrite": True}
        saved = await http.post("/api/dashboards/db", json=body, headers=auth)
        assert saved.status_code == 200 and saved.json()["uid"] == "theirs"
        assert saved.json()["version"] == 2
        assert "ours" not in fake.dashboards
        found = await http.get("/api/search", params={"query": "check"}, headers=auth)
        assert [hit["uid"] for hit in found.json()] == ["theirs"]


async def test_rules_come_back_with_grafanas_defaults_and_a_bad_patch_is_400() -> None:
    optional.require(optional.GRAFANA_OPENAPI)  # its 400s for ill-typed bodies come from it
    fake = FakeGrafana()
    async with served(fake.app) as url, httpx.AsyncClient(base_url=url) as http:
        auth = {"Authorization": f"Bearer {fake.token}"}
        await http.post("/api/folders", json={"uid": "f", "title": "F"}, headers=auth)
        rule = {
            "title": "r",
            "orgID": 1,
            "folderUID": "f",
            "ruleGroup": "g",
            "condition": "A",
            "noDataState": "OK",
            "execErrState": "Error",
            "for": "5m",
            "data": [{"refId": "A", "datasourceUid": "p", "model": {"expr": "vector(1)"}}],
        }
        created = await http.post("/api/v1/provisioning/alert-rules", json=rule, headers=auth)
        path = f"/api/v1/provisioning/alert-rules/{created.json()['uid']}"
        fetched = (await http.get(path, headers=auth)).json()
        assert fetched["isPaused"] is False and fetched["annotations"] == {}
        assert fetched["data"][0]["model"]["intervalMs"] == 1000
        note = await http.post(
            "/api/annotations", json={"time": 1, "text": "t", "tags": ["x"]}, headers=auth
        )
        bad = await http.patch(
            f"/api/annotations/{note.json()['id']}", json={"tags": "not a list"}, headers=auth
        )
        assert bad.status_code == 400


def test_the_test_server_checks_itself_against_grafanas_openapi() -> None:
    """Every request the Grafana test server takes and every answer it gives is validated
    against Grafana's own OpenAPI: a test server that drifted would fail here first."""
    optional.require(optional.GRAFANA_OPENAPI)
    assert FakeGrafana().validate
    assert not FakeGrafana(validate=False).validate
