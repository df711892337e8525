"""With `auth.read_bearer_token`, the credential Alertmanager and Grafana's contact point hold
only writes alerts, and reading incidents takes the read token; without it, one credential
does both, as before."""

from __future__ import annotations

import base64
from typing import Any

from tests.support.payloads import alert, payload

INTAKE, READ = "intake-token-1", "read-token-2"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_intake_credential_writes_but_cannot_read(app_client: Any) -> None:
    client = await app_client(
        auth={"bearer_token": INTAKE, "read_bearer_token": READ}, queue={"workers": 0}
    )
    body = payload([alert("f1")])
    assert (await client.post("/api/v1/alerts", json=body, headers=_bearer(READ))).status == 401
    stored = await client.post("/api/v1/alerts", json=body, headers=_bearer(INTAKE))
    assert stored.status == 200, await stored.text()
    incident_id = (await stored.json())["incident_id"]
    for path in ("/api/v1/incidents", f"/api/v1/incidents/{incident_id}", "/incidents"):
        assert (await client.get(path, headers=_bearer(INTAKE))).status == 401, path
        assert (await client.get(path)).status == 401, path
        answer = await client.get(path, headers=_bearer(READ))
        assert answer.status == 200, (path, await answer.text())


async def test_basic_intake_with_a_read_token(app_client: Any) -> None:
    client = await app_client(
        auth={"basic_username": "am", "basic_password": "pw", "read_bearer_token": READ},
        queue={"workers": 0},
    )

    basic = {"Authorization": "Basic " + base64.b64encode(b"am:pw").decode()}
    stored = await client.post("/api/v1/alerts", json=payload([alert("f1")]), headers=basic)
    assert stored.status == 200
    assert (await client.get("/api/v1/incidents", headers=basic)).status == 401
    assert (await client.get("/api/v1/incidents", headers=_bearer(READ))).status == 200


async def test_without_a_read_token_the_one_credential_does_both(app_client: Any) -> None:
    client = await app_client(auth={"bearer_token": INTAKE}, queue={"workers": 0})
    stored = await client.post(
        "/api/v1/alerts", json=payload([alert("f1")]), headers=_bearer(INTAKE)
    )
    assert stored.status == 200
    assert (await client.get("/api/v1/incidents", headers=_bearer(INTAKE))).status == 200
