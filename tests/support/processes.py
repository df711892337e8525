"""Real processes for end-to-end tests: `correlator serve`, Prometheus and Alertmanager (the builds
tests/support/tools.py chooses)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.tools import binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, *, timeout_s: float, interval_s: float = 0.1, what: str) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


class Service:
    """`correlator serve` in its own process, as an operator runs it."""

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = {
            **os.environ,
            "CORRELATOR_SERVER_PORT": str(self.port),
            "CORRELATOR_LOG_FORMAT": "json",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"service-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **extra_env: str) -> Service:
        env = {**self.env, **extra_env}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "correlator", "serve"],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._healthy, timeout_s=30, what=f"correlator on {self.url}")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"correlator exited with {self.process.returncode}:\n{self.log()}")
        return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what was committed is all that remains."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Server:
    """A real server in its own process, logging to a file in its working directory."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, argv: list[str], *, ready_path: str, env: dict[str, str] | None = None) -> None:
        """Start `argv` and wait until GET `ready_path` answers 200 (failing at once, with the
        server's log, if it exits first)."""
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            return httpx.get(f"{self.url}{ready_path}", timeout=1).status_code == 200

        wait_until(ready, timeout_s=60, what=f"{self.name} on {self.url}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def close(self) -> None:
        self.stop()


class Alertmanager(Server):
    """Alertmanager with a config written by the test, clustering off."""

    name = "alertmanager"

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        super().__init__(workdir)
        self.binary = binary("alertmanager")
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(config))

    def check_config(self) -> None:
        subprocess.run(
            [binary("amtool"), "check-config", str(self.config_path)],
            check=True,
            capture_output=True,
        )

    def start(self) -> Alertmanager:
        self.check_config()
        storage = self.workdir / "am-data"
        storage.mkdir(exist_ok=True)
        self.spawn(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            ready_path="/-/ready",
        )
        return self

    def fire(
        self,
        labels: dict[str, str],
        *,
        annotations: dict[str, str] | None = None,
        ends_at: str | None = None,
    ) -> None:
        """Post one alert through Alertmanager's v2 API, as Prometheus does."""
        alert: dict[str, Any] = {"labels": labels, "annotations": annotations or {}}
        if ends_at is not None:
            alert["endsAt"] = ends_at
        response = httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=5)
        response.raise_for_status()


class Prometheus(Server):
    """Prometheus over a history backfilled with promtool, evaluating given rules."""

    name = "prometheus"

    def __init__(self, workdir: Path, *, rule_files: list[Path], openmetrics: str) -> None:
        super().__init__(workdir)
        self.data = workdir / "tsdb"
        (workdir / "history.om").write_text(openmetrics)
        subprocess.run(
            [
                binary("promtool"),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(workdir / "history.om"),
                str(self.data),
            ],
            check=True,
            capture_output=True,
        )
        config = {
            "global": {"scrape_interval": "1m", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self) -> Prometheus:
        self.spawn(
            [
                binary("prometheus"),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=30d",
            ],
            ready_path="/-/ready",
        )
        return self

    def alerts(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/alerts", timeout=5).json()
        result: list[dict[str, Any]] = body["data"]["alerts"]
        return result


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`correlator ARGS` in a subprocess, without the caller's CORRELATOR_* variables;
    (exit code, stdout, stderr). Async, so a test server in the caller's loop keeps serving."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "correlator",
        *args,
        env={**clean, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


def correlation_env(workdir: Path, prometheus: str, loki: str, jaeger: str) -> dict[str, str]:
    """`correlator serve`'s environment for a correlation against these backends (SQLite in
    `workdir`, a deadline that a loaded CI machine meets)."""
    return {
        "CORRELATOR_DATABASE_URL": f"sqlite:///{workdir / 'correlator.db'}",
        "CORRELATOR_PROMETHEUS_URL": prometheus,
        "CORRELATOR_LOKI_URL": loki,
        "CORRELATOR_JAEGER_URL": jaeger,
        "CORRELATOR_CORRELATION_DEADLINE_S": "20",
    }


def backfilled_backends(
    script: str, ports: Sequence[int], *, services: int, now: datetime, workdir: Path
) -> tuple[subprocess.Popen[bytes], Prometheus]:
    """For the benchmarks: `script --serve-fakes PORTS…` in a child process (it writes its
    scenario's metric history, then serves the Loki and Jaeger test servers and says "ready"),
    and real Prometheus backfilled with that history. The caller stops both."""
    history = workdir / "scenario.om"
    child = subprocess.Popen(
        [sys.executable, script, "--serve-fakes", *map(str, ports), "--services", str(services),
         "--now", now.isoformat(), "--history", str(history)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    prometheus = Prometheus(workdir, rule_files=[], openmetrics=history.read_text())
    prometheus.start()
    return child, prometheus


def checkout(revision: str, into: Path) -> Path:
    """The package as it was at `revision` (`git archive`), to put first on a server's
    PYTHONPATH: a benchmark runs it beside the working tree's code in the same run."""
    root = Path(__file__).resolve().parents[2]
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", revision, "correlator"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
