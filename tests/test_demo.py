"""`correlator demo`: the packaged incident end to end, with and without Prometheus."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from pathlib import Path

from tests.support.processes import free_port, run_cli


async def test_the_demo_names_the_failing_service_live_and_offline(tmp_path: Path) -> None:
    code, out, err = await run_cli(
        "demo", "--exit", "--port", str(free_port()), "--dir", str(tmp_path)
    )
    assert code == 0, err + out
    live, offline = out.split("Live report", 1)[1].split("Offline analysis", 1)
    assert "missing: jaeger, loki" in live  # Prometheus answered; what is missing is named
    assert (
        live.splitlines()[1].strip().startswith("1. payments: decided by metrics: error_ratio rose")
    )
    assert offline.splitlines()[1].strip().startswith("1. payments: ")
    # --exit stops the service: no dead link is offered, but how to see the page is said.
    assert "Incident page: http://" not in out and "without --exit" in out
    assert len(list((tmp_path / "provisioned" / "prometheus" / "rules").glob("*.yaml"))) == 3
    assert (tmp_path / "bundle" / "alert.json").exists()


async def test_without_prometheus_the_demo_says_what_it_skipped(tmp_path: Path) -> None:
    """Run twice in the same directory: the second run reports its own incident."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "prometheus").exists())  # fmt: skip
    for _ in range(2):
        code, out, err = await run_cli(
            "demo", "--exit", "--port", str(free_port()), "--dir", str(tmp_path / "d"),
            env={"PATH": path},
        )  # fmt: skip
        assert code == 0, err + out
        assert "skipped Prometheus: not installed" in out
        assert "missing: jaeger, loki, prometheus" in out
        assert "1. payments" in out.split("Offline analysis", 1)[1]
    with sqlite3.connect(tmp_path / "d" / "correlator.db") as db:
        assert db.execute("SELECT count(*) FROM notifications").fetchone() == (1,)


async def test_a_busy_port_is_named_and_nothing_is_left_behind(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = await run_cli(
            "demo", "--exit", "--port", str(port), env={"TMPDIR": str(temp)}
        )
    assert code != 0
    assert f"port {port} is in use" in err and "--port" in err, err
    assert "Traceback" not in out + err
    assert list(temp.iterdir()) == []  # its working directory is gone
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(temp) not in running  # and no Prometheus of its own is left running
