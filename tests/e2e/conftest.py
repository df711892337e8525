"""A real Alertmanager delivering to a real `correlator serve`, per store, per module."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.databases import create_postgres_database, drop_postgres_database, sqlite_url
from tests.support.processes import Alertmanager, Service, free_port, wait_until

TOKEN = "am-bearer-token"
BASIC_USER, BASIC_PASSWORD = "alertmanager", "am-basic-password"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def e2e_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path_factory.mktemp("db"))
        return
    url = asyncio.run(create_postgres_database())
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(url))


def _webhook(url: str, *, auth: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"url": url, "send_resolved": True, "http_config": auth, **extra}


class Deployment:
    """Alertmanager → correlator, with helpers that read what correlator stored."""

    def __init__(self, service: Service, alertmanager: Alertmanager, database_url: str) -> None:
        self.service = service
        self.alertmanager = alertmanager
        self.database_url = database_url
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def incidents(self, **query: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.service.url}/api/v1/incidents",
            params={"limit": "500", **query},
            headers=self.headers,
            timeout=10,
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def incident(self, incident_id: int) -> dict[str, Any]:
        response = httpx.get(
            f"{self.service.url}/api/v1/incidents/{incident_id}", headers=self.headers, timeout=10
        )
        response.raise_for_status()
        detail: dict[str, Any] = response.json()
        return detail

    def wait_for_incident(
        self, alertname: str, predicate: Any = bool, *, timeout_s: float = 30
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            items = self.incidents(alertname=alertname)
            if len(items) > 1:
                raise AssertionError(f"several incidents for {alertname}: {items}")
            if items:
                detail = self.incident(items[0]["id"])
                return detail if predicate(detail) else None
            return None

        result: dict[str, Any] = wait_until(
            found, timeout_s=timeout_s, what=f"incident for {alertname}"
        )
        return result

    def metric(self, line_prefix: str) -> float:
        text = httpx.get(f"{self.service.url}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(line_prefix)
        )


@pytest.fixture(scope="module")
def deployment(
    e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    workdir: Path = tmp_path_factory.mktemp("e2e")
    service = Service(
        workdir,
        env={
            "CORRELATOR_DATABASE_URL": e2e_database_url,
            "CORRELATOR_AUTH_BEARER_TOKEN": TOKEN,
            "CORRELATOR_AUTH_BASIC_USERNAME": BASIC_USER,
            "CORRELATOR_AUTH_BASIC_PASSWORD": BASIC_PASSWORD,
            "CORRELATOR_DATABASE_BUSY_TIMEOUT_MS": "300",
        },
    )
    hook = f"{service.url}/api/v1/alerts"
    bearer = {"authorization": {"type": "Bearer", "credentials": TOKEN}}
    basic = {"basic_auth": {"username": BASIC_USER, "password": BASIC_PASSWORD}}
    wrong = {"basic_auth": {"username": BASIC_USER, "password": "not-the-password"}}
    config = {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "bearer",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "2s",
            "routes": [
                {"matchers": ['route="basic"'], "receiver": "basic"},
                {"matchers": ['route="truncate"'], "receiver": "truncate"},
                {"matchers": ['route="wrong"'], "receiver": "wrong"},
            ],
        },
        "receivers": [
            {"name": "bearer", "webhook_configs": [_webhook(hook, auth=bearer)]},
            {"name": "basic", "webhook_configs": [_webhook(hook, auth=basic)]},
            {"name": "truncate", "webhook_configs": [_webhook(hook, auth=bearer, max_alerts=2)]},
            {"name": "wrong", "webhook_configs": [_webhook(hook, auth=wrong)]},
        ],
    }
    alertmanager = Alertmanager(workdir, config)
    service.start()
    alertmanager.start()
    try:
        yield Deployment(service, alertmanager, e2e_database_url)
    finally:
        alertmanager.stop()
        service.stop()


@pytest.fixture
def alertname() -> str:
    """A name no other test uses, so each test has its own alert group."""
    return f"E2E{uuid.uuid4().hex[:10]}"


__all__ = ["Deployment", "free_port"]
