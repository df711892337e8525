"""WebApplications to generate for, and promtool, the real one."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from correlator.models.webapp import WebApplication
from correlator.provisioning.grafana import GrafanaTarget
from tests.fakes.grafana import VERSIONS, FakeGrafana
from tests.support.servers import served
from tests.support.tools import binary

ROOT = Path(__file__).resolve().parents[2]


def webapp(name: str = "checkout", namespace: str = "shop", **spec: Any) -> WebApplication:
    return WebApplication.model_validate(
        {
            "apiVersion": "platform.correlator.dev/v1alpha1",
            "kind": "WebApplication",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"image": "registry.example/app:1", "team": "payments", **spec},
        }
    )


# A varied set: strict and loose SLOs, other windows, overrides, long names, no SLO at all.
EXAMPLE_APPS = {
    "strict": webapp(
        slo={"availability": "99.95", "latency": {"thresholdMs": 100, "target": "99.9"}},
        observability={"runbookUrl": "https://runbooks.example/checkout"},
    ),
    "common": webapp(
        "catalog", slo={"availability": 99.9, "latency": {"thresholdMs": 250, "target": 99}}
    ),
    "loose-28d": webapp(
        "search",
        "storefront",
        slo={"availability": 99, "windowDays": 28},
        alerting={
            "severity": {"page": "P1", "ticket": "P3"},
            "pageReceiver": "pagerduty-storefront",
            "ticketReceiver": "jira-storefront",
        },
    ),
    "no-page-possible": webapp("batch", "back-office", slo={"availability": 90}),
    "relabelled": webapp(
        "legacy",
        slo={"availability": "99.5", "latency": {"thresholdMs": "0.5", "target": 95}},
        observability={
            "metricLabels": {"namespace": "dst_ns", "workload": "dst_app", "pod": "pod_name"}
        },
    ),
    "long-name": webapp("a" * 63, "n" * 63, slo={"availability": "99.99"}),
    "no-slo": webapp("worker", "jobs"),
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(params=sorted(EXAMPLE_APPS))
def example_app(request: pytest.FixtureRequest) -> WebApplication:
    return EXAMPLE_APPS[request.param]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "grafana_since(version): the behaviour tested exists from this Grafana version on; "
        "the `grafana` fixture skips older ones",
    )


def _release(version: str) -> tuple[int, int]:
    major, minor = (int(part) for part in version.split(".")[:2])
    return major, minor


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked grafana_since(V) runs only against the versions from V on: the others
    are deselected at collection (not skipped: nothing asked for is left unrun)."""
    kept, dropped = [], []
    for item in items:
        since = item.get_closest_marker("grafana_since")
        callspec = getattr(item, "callspec", None)
        version = callspec.params.get("grafana") if callspec is not None else None
        if (
            since is not None
            and version is not None
            and _release(version) < _release(since.args[0])
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=VERSIONS)
async def grafana(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[FakeGrafana, GrafanaTarget]]:
    """The Grafana test server as each version in VERSIONS behaves, and a target pointed at it:
    every test that uses it runs against each of them."""
    fake = FakeGrafana(version=request.param)
    async with served(fake.app) as url:
        yield fake, GrafanaTarget(url, fake.token)
