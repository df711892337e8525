"""The signal catalogue: valid PromQL for any service names, one series per service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from correlator.backends.prometheus import PrometheusBackend
from correlator.signals import DEFAULT_SIGNALS, ServiceLabels, signal_query
from tests.provisioning.conftest import promtool
from tests.support.processes import Prometheus

HOSTILE = ['x"} or vector(1) or {a="', "dots.and|pipes", "back\\slash", "sp ace"]


def test_every_signal_parses_for_any_names(tmp_path: Path) -> None:
    rules = [
        {
            "record": f"check:{signal.name}:{i}",
            "expr": signal_query(signal, namespaces=["shop", "x|y"], services=[name, "checkout"]),
        }
        for signal in DEFAULT_SIGNALS
        for i, name in enumerate(HOSTILE)
    ]
    relabelled = ServiceLabels(istio_namespace="dst_ns", istio_workload="dst_app", pod="pod_name")
    rules += [
        {
            "record": f"check:relabelled:{s.name}",
            "expr": signal_query(s, namespaces=["shop"], services=["a"], labels=relabelled),
        }
        for s in DEFAULT_SIGNALS
    ]
    (tmp_path / "signals.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]})
    )
    result = promtool("check", "rules", "signals.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one service"):
        signal_query(DEFAULT_SIGNALS[0], namespaces=["shop"], services=[])
    with pytest.raises(ValueError, match="PromQL duration"):
        signal_query(
            DEFAULT_SIGNALS[0], namespaces=["shop"], services=["a"], window="1m] or vector(1) #"
        )


def series(namespace: str, workload: str, code: str, per_minute: int, now: int) -> list[str]:
    selector = (
        f'reporter="destination",destination_workload_namespace="{namespace}",'
        f'destination_workload="{workload}",response_code="{code}"'
    )
    return [
        f"istio_requests_total{{{selector}}} {(30 - m) * per_minute} {now - m * 60}"
        for m in range(30, -1, -1)
    ]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    now = int(time.time()) - 30
    lines = ["# TYPE istio_requests_total counter"]
    lines += series("shop", "checkout", "200", 600, now) + series(
        "shop", "checkout", "503", 60, now
    )
    lines += series("shop", "cart.v2", "200", 1200, now)
    lines += series("shop", "cartXv2", "503", 6000, now)  # "." must not match any character
    lines += series("other", "checkout", "503", 6000, now)  # another namespace
    server = Prometheus(
        tmp_path_factory.mktemp("signals"),
        rule_files=[],
        openmetrics="\n".join(lines) + "\n# EOF\n",
    ).start()
    try:
        yield server
    finally:
        server.stop()


async def test_one_query_gives_one_series_per_service(backend: PrometheusBackend) -> None:
    error_ratio = next(s for s in DEFAULT_SIGNALS if s.name == "error_ratio")
    query = signal_query(
        error_ratio, namespaces=["shop"], services=["checkout", "cart.v2"], window="5m"
    )
    samples = await backend.query(query, datetime.now(UTC))
    found = {s.labels["destination_workload"]: round(s.value, 4) for s in samples}
    assert found == {"checkout": round(60 / 660, 4), "cart.v2": 0.0}
