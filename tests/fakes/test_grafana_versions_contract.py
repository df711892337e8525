"""The Grafana test server behaves as each Grafana version does where they differ (folder and
dashboard titles, the version it tells, rule notification settings), and as every version does
for rule provenance, annotations and the status codes correlator meets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.grafana import VERSIONS, FakeGrafana
from tests.support.servers import served

RULE = {
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
EDITABLE = {"X-Disable-Provenance": "true"}


@pytest.fixture(params=VERSIONS)
async def grafana_http(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[FakeGrafana, httpx.AsyncClient]]:
    fake = FakeGrafana(version=request.param)
    async with (
        served(fake.app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {fake.token}"}) as http,
    ):
        yield fake, http


async def test_health_hides_the_version_only_from_anonymous_callers(
    grafana_http: tuple[FakeGrafana, httpx.AsyncClient],
) -> None:
    fake, http = grafana_http
    assert (await http.get("/api/health")).json()["version"] == fake.version
    fake.hide_version = True
    assert (await http.get("/api/health")).json() == {"database": "ok"}
    settings = (await http.get("/api/frontend/settings")).json()
    assert settings["buildInfo"]["version"] == fake.version  # a token is signed in


async def test_folder_titles_by_version(
    grafana_http: tuple[FakeGrafana, httpx.AsyncClient],
) -> None:
    fake, http = grafana_http
    assert (await http.post("/api/folders", json={"uid": "a", "title": "Team A"})).is_success
    same_title = await http.post("/api/folders", json={"uid": "b", "title": "Team A"})
    if fake.at_least(11, 3):
        assert same_title.status_code == 200 and {"a", "b"} <= fake.folders.keys()
    else:
        assert same_title.status_code == 409 and "b" not in fake.folders
    by_slug = await http.post("/api/folders", json={"uid": "c", "title": "team-a!"})
    if fake.at_least(10, 1):
        assert by_slug.status_code == 200  # titles, not slugs, from 10.1
    else:
        assert by_slug.status_code == 409
    fake.add_foreign_dashboard("d", "Ops", [])
    like_a_dashboard = await http.post("/api/folders", json={"uid": "e", "title": "Ops"})
    assert like_a_dashboard.status_code == (400 if not fake.at_least(10, 1) else 200)


async def test_dashboard_titles_by_version(
    grafana_http: tuple[FakeGrafana, httpx.AsyncClient],
) -> None:
    fake, http = grafana_http

    async def save(uid: str, title: str, **body: Any) -> httpx.Response:
        return await http.post(
            "/api/dashboards/db", json={"dashboard": {"uid": uid, "title": title}, **body}
        )

    assert (await save("one", "Checkout")).status_code == 200
    slug_twin = await save("two", "checkout!")
    if fake.at_least(10, 1):
        assert slug_twin.status_code == 200
    else:
        assert slug_twin.status_code == 412 and slug_twin.json()["status"] == "name-exists"
    same = await save("three", "Checkout", overwrite=True)
    if fake.at_least(11, 3):  # no takeover: a second dashboard of the title
        assert same.json()["uid"] == "three" and {"one", "three"} <= fake.dashboards.keys()
    else:
        assert same.json()["uid"] == "one" and "three" not in fake.dashboards
    assert (await http.post("/api/folders", json={"uid": "f", "title": "Payments"})).is_success
    like_a_folder = await save("four", "Payments")
    if fake.at_least(10, 1):
        assert like_a_folder.status_code == 200
    else:
        assert like_a_folder.status_code == 400 and like_a_folder.json()["status"] == "name-match"


async def test_rule_notification_settings_exist_from_10_4(
    grafana_http: tuple[FakeGrafana, httpx.AsyncClient],
) -> None:
    fake, http = grafana_http
    await http.post("/api/folders", json={"uid": "f", "title": "F"})
    routed = {**RULE, "notification_settings": {"receiver": "grafana-default-email"}}
    created = await http.post("/api/v1/provisioning/alert-rules", json=routed)
    assert created.status_code == 201
    kept = created.json()["notification_settings"]
    assert kept == ({"receiver": "grafana-default-email"} if fake.at_least(10, 4) else None)


async def test_rule_provenance_changes_are_refused_as_grafana_refuses_them(
    grafana_http: tuple[FakeGrafana, httpx.AsyncClient],
) -> None:
    fake, http = grafana_http
    await http.post("/api/folders", json={"uid": "f", "title": "F"})
    rules = "/api/v1/provisioning/alert-rules"
    locked = await http.post(rules, json={**RULE, "uid": "locked"})
    assert locked.json()["provenance"] == "api"
    # The header's presence decides, whatever its value.
    loose = await http.post(
        rules, json={**RULE, "uid": "loose"}, headers={"X-Disable-Provenance": ""}
    )
    assert loose.json()["provenance"] == ""
    # api -> none is refused, for an update and for a delete, with a body that says nothing.
    refused = await http.put(f"{rules}/locked", json=RULE, headers=EDITABLE)
    assert refused.status_code == 500 and refused.json() == {"message": "Internal Server Error"}
    assert (await http.delete(f"{rules}/locked", headers=EDITABLE)).status_code == 500
    # none -> api is allowed, and a delete with the stored provenance goes through.
    assert (await http.put(f"{rules}/loose", json=RULE)).status_code == 200
    assert fake.rules["loose"]["provenance"] == "api"
    assert (await http.delete(f"{rules}/locked")).status_code == 204
    fake.add_foreign_rule("from-file", "theirs", {}, provenance="file")
    assert (await http.put(f"{rules}/from-file", json=RULE)).status_code == 500
    assert (await http.delete(f"{rules}/from-file")).status_code == 500
    assert "from-file" in fake.rules


async def test_status_codes_correlator_meets(
    grafana_http: tuple[FakeGrafana, httpx.AsyncClient],
) -> None:
    _fake, http = grafana_http
    point = {"uid": "p", "name": "p", "type": "webhook", "settings": {"url": "http://x.example/"}}
    assert (await http.post("/api/v1/provisioning/contact-points", json=point)).status_code == 202
    twin = await http.post("/api/v1/provisioning/contact-points", json={**point, "name": "q"})
    assert twin.status_code == 500  # a uid in use: a plain error, not a validation 400
    assert (await http.delete("/api/v1/provisioning/alert-rules/never")).status_code == 204


async def test_an_annotation_on_an_unknown_dashboard_is_an_organisation_annotation(
    grafana_http: tuple[FakeGrafana, httpx.AsyncClient],
) -> None:
    fake, http = grafana_http
    fake.add_foreign_dashboard("known", "Known", [])
    body = {"time": 1, "text": "t", "tags": ["x"]}
    lost = await http.post("/api/annotations", json={**body, "dashboardUID": "gone"})
    assert lost.status_code == 200  # not refused: saved for the whole organisation
    placed = await http.post("/api/annotations", json={**body, "dashboardUID": "known"})
    assert fake.annotations[lost.json()["id"]]["dashboardId"] == 0
    assert "dashboardUID" not in fake.annotations[lost.json()["id"]]
    assert fake.annotations[placed.json()["id"]]["dashboardId"] == fake.dashboards["known"].id
