"""Fixtures shared by the whole suite: stores on SQLite and PostgreSQL, the app, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from correlator.metrics import Metrics
from correlator.runtime.service import create_app
from correlator.settings import Settings, load_settings
from correlator.store import Store
from tests.support.databases import postgres_database, sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test against a SQLite file and a throwaway database on the real PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        async with postgres_database() as url:
            yield url


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(**groups: dict[str, Any]) -> Settings:
        database = {"url": database_url, **groups.pop("database", {})}
        # In-process apps analyse on threads: spawning a pool of analysis processes for each
        # test's app would cost seconds apiece. The process pool (the default) is tested in
        # tests/pipeline/test_analysis_pool.py and by every `correlator serve` end to end.
        queue = {"analysis_pool": "thread", **groups.pop("queue", {})}
        return load_settings(database=database, queue=queue, **groups)

    return make


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(load_settings(database={"url": database_url}).database)
    try:
        yield opened
    finally:
        await opened.close()


AppClient = Callable[..., Any]


@pytest.fixture
def app_client(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> Callable[..., Any]:
    """Start the real application (real store) for one test: `await app_client(auth={...})`."""

    async def start(**groups: dict[str, Any]) -> TestClient[Any, Any]:
        settings = make_settings(**groups)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, metrics=Metrics()))
        return client

    return start


@pytest.fixture
async def backend(prometheus: Any) -> AsyncIterator[Any]:
    """A PrometheusBackend on the module's own `prometheus` (each module backfills its data)."""
    from correlator.backends.http import BackendConfig
    from correlator.backends.prometheus import PrometheusBackend

    client = PrometheusBackend(BackendConfig(name="Prometheus", url=prometheus.url))
    try:
        yield client
    finally:
        await client.close()


def pytest_report_header() -> list[str]:
    """Which real servers this run tests against (built from the Go module proxy, or Debian's)."""
    from tests.support import tools

    names = ("prometheus", "promtool", "alertmanager", "amtool", "jaeger", "helm")
    return ["real servers: " + "; ".join(tools.version(name) for name in names)]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say once what could not be checked without the material in ../shared."""
    from tests.support import optional

    for line in optional.summary():
        terminalreporter.write_line(line, yellow=True)
