"""Responders confirm or correct the cause: through the API (authenticated, idempotent, a later
answer replacing an earlier one, who and when kept) and the incident page's forms (refused
from other sites); bad bodies get a precise 4xx, never a 500; hostile labels and causes are
escaped wherever the page shows them; /metrics counts the outcomes. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.models.report import Report
from correlator.web.state import STORE
from tests.support.payloads import alert, payload

TOKEN = "cause-bearer-token"
USER, PASSWORD = "ana", "ana-password"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
AUTH = {"bearer_token": TOKEN, "basic_username": USER, "basic_password": PASSWORD}
HOSTILE = '<script>alert("x")</script>'


def report(app: str, *suspects: str) -> dict[str, Any]:
    """A stored report's body as the pipeline writes it (the parts the page reads)."""
    return {
        "incident_id": 0,
        "generated_at": "2026-12-06T12:00:00Z",
        "status": "complete",
        "windows": None,
        "scope": {"alerting": [suspects[-1]], "services": list(suspects)},
        "suspects": [
            {
                "rank": n,
                "service": s,
                "score": 0.9,
                "confidence": 0.9,
                "reason": "it moved",
                "weak": False,
                "caused_by": [],
                "affects": [],
                "evidence": [],
            }
            for n, s in enumerate(suspects, 1)
        ],
        "missing": [],
        "changes": [],
        "notes": [],
        "series": [],
        "timings_ms": {},
        "app": {"name": app, "team": "payments-team"},
    }


async def reported(client: Any, app: str, *suspects: str) -> int:
    """An incident with a stored report ranking `suspects` (no analysis runs: workers 0)."""
    body = payload([alert("f1")], group_key=f"cause-{uuid.uuid4()}")
    answer = await client.post("/api/v1/alerts", json=body, headers=BEARER)
    assert answer.status == 200, await answer.text()
    incident_id = int((await answer.json())["incident_id"])
    store = client.server.app[STORE]
    stored = Report.model_validate(report(app, *suspects))
    await store.save_report(incident_id, None, "complete", stored)
    return incident_id


async def confirm(client: Any, incident_id: int, headers: Any = None, **answer: Any) -> Any:
    return await client.post(
        f"/api/v1/incidents/{incident_id}/cause", json=answer, headers=headers or BEARER
    )


def counted(metrics: str, outcome: str) -> float:
    found = re.search(rf'correlator_rca_confirmed_total\{{outcome="{outcome}"\}} (\S+)', metrics)
    assert found, metrics
    return float(found.group(1))


async def test_a_cause_is_kept_once_with_who_and_when_and_a_later_answer_replaces_it(
    app_client: Any,
) -> None:
    client = await app_client(queue={"workers": 0}, auth=AUTH)
    incident_id = await reported(client, "shop/payments", "payments", "api", "web")
    first = await confirm(client, incident_id, service="payments", by="Ana on call")
    assert first.status == 200, await first.text()
    stored = await first.json()
    assert stored["changed"] is True
    cause = stored["cause"]
    assert (cause["service"], cause["rank"], cause["outcome"]) == ("payments", 1, "rank1")
    assert (cause["by"], cause["principal"]) == ("Ana on call", "bearer token")
    assert (cause["app"], cause["team"]) == ("shop/payments", "payments-team")

    again = await (await confirm(client, incident_id, service="payments", by="Ana on call")).json()
    assert again["changed"] is False  # idempotent: the same answer, its first time kept
    assert again["cause"] == cause

    later = await confirm(client, incident_id, BASIC, service="web", text="the CDN, really")
    changed = (await later.json())["cause"]
    assert (changed["service"], changed["rank"], changed["outcome"]) == ("web", 3, "top3")
    assert (changed["by"], changed["principal"], changed["text"]) == (None, USER, "the CDN, really")
    read = await client.get(f"/api/v1/incidents/{incident_id}/cause", headers=BEARER)
    assert (await read.json())["cause"] == changed

    outside = await confirm(client, incident_id, service="dns")  # not in the ranking
    assert (await outside.json())["cause"]["outcome"] == "missed"
    metrics = await (await client.get("/metrics")).text()
    assert [counted(metrics, o) for o in ("rank1", "top3", "missed")] == [1, 1, 1]

    refused = await client.post(f"/api/v1/incidents/{incident_id}/cause", json={"service": "x"})
    assert refused.status == 401
    unknown = await client.get("/api/v1/incidents/999999/cause", headers=BEARER)
    assert unknown.status == 404


BAD = [
    ({"data": b"{", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
    ({"data": b"service=x", "headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
    ({"json": ["payments"]}, 422, "JSON object"),
    ({"json": {}}, 422, "service, text or both"),
    ({"json": {"service": None, "text": None}}, 422, "service, text or both"),
    ({"json": {"service": 5}}, 422, "service"),
    ({"json": {"service": ""}}, 422, "service"),
    ({"json": {"service": "  "}}, 422, "blank"),
    ({"json": {"service": "a\x00b"}}, 422, "control characters"),
    ({"json": {"service": "a\nb"}}, 422, "control characters"),
    ({"json": {"text": "x" * 2001}}, 422, "text"),
    ({"json": {"service": "x", "because": "y"}}, 422, "because"),
    ({"data": b'{"text": "' + b"x" * 20000 + b'"}',
      "headers": {"Content-Type": "application/json"}}, 413, "at most"),
    ({"data": b"\x00\x00",
      "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"}}, 400,
     "Content-Encoding"),
]  # fmt: skip


async def test_bad_answers_get_a_precise_4xx_and_store_nothing(app_client: Any) -> None:
    client = await app_client(queue={"workers": 0}, auth=AUTH)
    incident_id = await reported(client, "shop/payments", "payments")
    url = f"/api/v1/incidents/{incident_id}/cause"
    for given_options, status, words in BAD:
        options = dict(given_options)
        headers = {**BEARER, **options.pop("headers", {})}
        answer = await client.post(url, headers=headers, **options)
        assert answer.status == status, (options, await answer.text())
        assert words in (await answer.json())["detail"], (options, await answer.text())
    for path, status in (
        ("/api/v1/incidents/0/cause", 400),
        ("/api/v1/incidents/77777/cause", 404),
    ):
        answer = await client.post(path, json={"service": "x"}, headers=BEARER)
        assert answer.status == status
    assert (await client.get(url, headers=BEARER)).status == 404  # nothing was stored


async def test_the_page_confirms_a_cause_from_its_own_site_only_and_shows_the_record(
    app_client: Any,
) -> None:
    client = await app_client(queue={"workers": 0}, auth=AUTH)
    first = await reported(client, "shop/payments", "payments", "api")
    second = await reported(client, "shop/payments", "payments", "api")
    page = await client.get(f"/incidents/{second}", headers=BASIC)
    html = await page.text()
    assert "Was this the cause?" in html and "The cause was:" in html
    assert f'action="/incidents/{second}/cause"' in html
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for foreign in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"},
                    {"Origin": "null"}):  # fmt: skip
        refused = await client.post(
            f"/incidents/{second}/cause", data="service=api", headers={**BASIC, **form, **foreign}
        )
        assert refused.status == 403, foreign
    host = client.server.make_url("/").host + ":" + str(client.server.port)
    for same in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": f"http://{host}"}):
        posted = await client.post(
            f"/incidents/{first}/cause",
            data="service=payments&text=&by=",
            headers={**BASIC, **form, **same},
            allow_redirects=False,
        )
        assert posted.status == 303, await posted.text()
        assert posted.headers["Location"] == f"/incidents/{first}#cause"
    posted = await client.post(
        f"/incidents/{second}/cause",
        data="service=&text=a+certificate+expired&by=Bo",
        headers={**BASIC, **form, "Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
    )
    assert posted.status == 303
    cause = await (await client.get(f"/api/v1/incidents/{second}/cause", headers=BEARER)).json()
    assert cause["cause"]["text"] == "a certificate expired" and cause["cause"]["service"] is None
    assert cause["cause"]["principal"] == USER

    html = await (await client.get(f"/incidents/{second}", headers=BASIC)).text()
    assert "a certificate expired" in html and "said by Bo" in html
    # One confirmed incident of the app (the free-text answer names no service: not scored).
    assert "Right at rank 1 on 1 of the last 1 confirmed incidents of shop/payments" in html
    bad = await client.post(
        f"/incidents/{second}/cause",
        data="service=%FF",
        headers={**BASIC, **form, "Sec-Fetch-Site": "same-origin"},
    )
    assert bad.status == 400
    duplicated = await client.post(
        f"/incidents/{second}/cause", data="service=a&service=b", headers={**BASIC, **form}
    )
    assert duplicated.status == 422


async def test_hostile_labels_and_causes_are_escaped_on_the_page(app_client: Any) -> None:
    client = await app_client(queue={"workers": 0}, auth=AUTH)
    incident_id = await reported(client, f"shop/{HOSTILE}", HOSTILE, "api")
    answer = await confirm(client, incident_id, service=HOSTILE, text=HOSTILE, by=HOSTILE)
    assert answer.status == 200
    html = await (await client.get(f"/incidents/{incident_id}", headers=BASIC)).text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert f'value="{HOSTILE}"' not in html


ANSWERS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "service": st.text(max_size=300) | st.none() | st.integers(),
        "text": st.text(max_size=2100) | st.none(),
        "by": st.text(max_size=210) | st.lists(st.text()),
        "other": st.text(max_size=5),
    },
)


@pytest.fixture
async def fuzzed(app_client: Any) -> tuple[Any, int]:
    """One app and incident for every example (examples share fixtures)."""
    client = await app_client(queue={"workers": 0}, auth=AUTH)
    return client, await reported(client, "shop/fuzz", "payments")


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(document=ANSWERS | FIELDS, form=st.binary(max_size=120) | st.text(max_size=120))
async def test_any_answer_is_stored_or_refused_with_a_4xx_and_the_page_stays_escaped(
    fuzzed: tuple[Any, int], document: Any, form: bytes | str
) -> None:
    client, incident_id = fuzzed
    answer = await client.post(
        f"/api/v1/incidents/{incident_id}/cause",
        data=json.dumps(document).encode(),
        headers={**BEARER, "Content-Type": "application/json"},
    )
    assert answer.status in (200, 400, 413, 422), await answer.text()
    raw = form.encode() if isinstance(form, str) else form
    posted = await client.post(
        f"/incidents/{incident_id}/cause",
        data=raw,
        headers={**BASIC, "Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
    )
    assert posted.status in (303, 400, 413, 422), await posted.text()
    page = await client.get(f"/incidents/{incident_id}", headers=BASIC)
    assert page.status == 200
    assert "<script" not in (await page.text()).lower()  # the page has none of its own
