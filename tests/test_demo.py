"""`correlator demo`: the packaged incident end to end, with and without Prometheus."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
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
    assert _demo_processes(str(temp)) == []  # and no Prometheus of its own is left running


def _demo_processes(marker: str) -> list[str]:
    """Command lines holding `marker`, whole: without -ww, ps cuts them at $COLUMNS (pytest
    sets it), and a path in a cut-off argument would never be found."""
    running = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in running.splitlines() if marker in line]


def serving(demo: subprocess.Popen[str]) -> None:
    """Wait for the positive signal: the demo says it serves until stopped."""
    assert demo.stdout is not None
    said = []
    for line in demo.stdout:
        said.append(line)
        if "Serving until Ctrl-C" in line:
            return
    raise AssertionError("the demo ended before serving:\n" + "".join(said))


def test_sigterm_stops_the_demo_cleanly(tmp_path: Path) -> None:
    """Stopped as `timeout`, systemd or a container runtime stop it: exit 0, no warning, no
    Prometheus left running, no temporary directory left behind."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "correlator", "demo", "--port", str(free_port())],
        env={**env, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        serving(demo)
        assert _demo_processes(str(temp)), "the demo's Prometheus runs from its directory"
        demo.send_signal(signal.SIGTERM)
        _, err = demo.communicate(timeout=60)
    finally:
        demo.kill()
    assert demo.returncode == 0, err
    assert "Traceback" not in err and "leaked" not in err, err
    assert list(temp.iterdir()) == []
    assert _demo_processes(str(temp)) == []


def test_a_killed_demo_takes_its_prometheus_with_it(tmp_path: Path) -> None:
    """SIGKILL runs no clean-up in the demo; Prometheus still goes (a parent-death signal)."""
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "correlator", "demo", "--port", str(free_port()),
         "--dir", str(workdir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        serving(demo)
        assert _demo_processes(str(workdir / "tsdb"))
    finally:
        demo.kill()
    demo.wait(timeout=30)
    for _ in range(100):
        if not _demo_processes(str(workdir / "tsdb")):
            break
        time.sleep(0.1)
    assert _demo_processes(str(workdir / "tsdb")) == []
