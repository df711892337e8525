"""`correlator demo`: the packaged incident end to end, with and without Prometheus."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.processes import free_port, run_cli


async def test_the_demo_names_the_failing_service_live_and_offline(tmp_path: Path) -> None:
    code, out, err = await run_cli(
        "demo", "--exit", "--port", str(free_port()), "--dir", str(tmp_path)
    )
    assert code == 0, err + out
    live, offline = out.split("Live report", 1)[1].split("Offline analysis", 1)
    assert "missing: jaeger, loki" in live  # Prometheus answered; what is missing is named
    assert live.splitlines()[1].strip().startswith("1. payments: error_ratio rose")
    assert offline.splitlines()[1].strip().startswith("1. payments: ")
    assert "Incident page: http://127.0.0.1:" in out
    assert len(list((tmp_path / "provisioned" / "prometheus" / "rules").glob("*.yaml"))) == 3
    assert (tmp_path / "bundle" / "alert.json").exists()


async def test_without_prometheus_the_demo_says_what_it_skipped(tmp_path: Path) -> None:
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "prometheus").exists())  # fmt: skip
    code, out, err = await run_cli(
        "demo", "--exit", "--port", str(free_port()), "--dir", str(tmp_path / "d"),
        env={"PATH": path},
    )  # fmt: skip
    assert code == 0, err + out
    assert "skipped Prometheus: not installed" in out
    assert "missing: jaeger, loki, prometheus" in out
    assert "1. payments" in out.split("Offline analysis", 1)[1]
