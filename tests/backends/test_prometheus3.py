"""Prometheus 3: OpenTelemetry's dotted label names, kept as UTF-8, read by correlator's queries."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from correlator.backends.http import BackendConfig
from correlator.backends.prometheus import PrometheusBackend
from correlator.signals import DEFAULT_SIGNALS, ServiceLabels, signal_query
from tests.support import tools
from tests.support.processes import Prometheus

pytestmark = pytest.mark.prometheus3

OTEL = ServiceLabels(
    istio_namespace="k8s.namespace.name",
    istio_workload="service.name",
    pod_namespace="k8s.namespace.name",
    pod="k8s.pod.name",
)


def series(namespace: str, service: str, code: str, per_minute: int, now: int) -> list[str]:
    labels = (
        f'reporter="destination","k8s.namespace.name"="{namespace}",'
        f'"service.name"="{service}",response_code="{code}"'
    )
    return [
        f"istio_requests_total{{{labels}}} {(30 - m) * per_minute} {now - m * 60}"
        for m in range(30, -1, -1)
    ]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    assert tools.major_minor("prometheus") >= (3, 0), tools.version("prometheus")
    now = int(time.time()) - 30
    lines = ["# TYPE istio_requests_total counter"]
    lines += series("shop", "checkout", "200", 600, now) + series(
        "shop", "checkout", "503", 60, now
    )
    lines += series("shop", "cart.v2", "200", 1200, now)
    lines += series("other", "checkout", "503", 6000, now)  # another namespace
    server = Prometheus(
        tmp_path_factory.mktemp("prometheus3"),
        rule_files=[],
        openmetrics="\n".join(lines) + "\n# EOF\n",
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def backend(prometheus: Prometheus) -> AsyncIterator[PrometheusBackend]:
    client = PrometheusBackend(BackendConfig(name="Prometheus", url=prometheus.url))
    try:
        yield client
    finally:
        await client.close()


async def test_signals_select_and_group_by_utf8_label_names(backend: PrometheusBackend) -> None:
    error_ratio = next(s for s in DEFAULT_SIGNALS if s.name == "error_ratio")
    query = signal_query(
        error_ratio, namespaces=["shop"], services=["checkout", "cart.v2"], window="5m", labels=OTEL
    )
    assert '"service.name"=~' in query and 'by ("k8s.namespace.name", "service.name")' in query
    samples = await backend.query(query, datetime.now(UTC))
    found = {s.labels["service.name"]: round(s.value, 4) for s in samples}
    assert found == {"checkout": round(60 / 660, 4), "cart.v2": 0.0}
    assert {s.labels["k8s.namespace.name"] for s in samples} == {"shop"}


async def test_every_signal_is_valid_promql_with_utf8_names(backend: PrometheusBackend) -> None:
    for signal in DEFAULT_SIGNALS:
        query = signal_query(signal, namespaces=["shop"], services=["checkout"], labels=OTEL)
        await backend.query(query, datetime.now(UTC))  # a parse error would be refused (400)
