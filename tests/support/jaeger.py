"""Real Jaeger v2 (built by tests/tools/build.sh) with in-memory storage: spans go in over OTLP/HTTP
exactly as an instrumented app sends them, and come out through its query API."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fakes.jaeger import FakeSpan, otlp_traces
from tests.support.processes import Server, free_port, wait_until
from tests.support.tools import binary


class Jaeger(Server):
    """`jaeger --config` with the OTLP/HTTP receiver, memory storage and the query service, all
    on free loopback ports."""

    name = "jaeger"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.otlp_port, self.grpc_port = free_port(), free_port()
        self.config_path = workdir / "jaeger.yaml"
        self.config_path.write_text(yaml.safe_dump(self._config()))

    def _config(self) -> dict[str, Any]:
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query"],
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]}
                },
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            },
            "extensions": {
                "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 100000}}}},
                "jaeger_query": {
                    "storage": {"traces": "memstore"},
                    "http": {"endpoint": f"127.0.0.1:{self.port}"},
                    "grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
                },
            },
            "receivers": {
                "otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{self.otlp_port}"}}}
            },
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
        }

    def stop(self) -> None:
        """SIGKILL at once: on SIGTERM Jaeger waits out a 10 s shutdown timeout (measured: 10.05
        s every time), and its memory storage holds nothing worth a graceful stop. Four
        modules use it, so this was 40 s of every test run."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def start(self) -> Jaeger:
        self.spawn(
            [binary("jaeger"), f"--config={self.config_path}"],
            ready_path="/api/v3/services",
            # Jaeger traces itself to localhost:4317 unless told not to: no such collector here.
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        )
        return self

    def push(self, spans: list[FakeSpan]) -> None:
        """Send `spans` over OTLP/HTTP and wait until the query service returns each trace."""
        response = httpx.post(
            f"http://127.0.0.1:{self.otlp_port}/v1/traces",
            json=otlp_traces(spans, scope="correlator-tests"),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        expected: dict[str, int] = defaultdict(int)
        for span in spans:
            expected[span.trace_id] += 1
        for trace_id, count in expected.items():
            wait_until(
                lambda t=trace_id, n=count: self._span_count(t) >= n,
                timeout_s=30,
                what=f"trace {trace_id} in Jaeger",
            )

    def _span_count(self, trace_id: str) -> int:
        answer = httpx.get(f"{self.url}/api/v3/traces/{trace_id}", timeout=5)
        if answer.status_code != 200:
            return 0
        return sum(
            len(scope.get("spans", []))
            for resource in answer.json()["result"].get("resourceSpans", [])
            for scope in resource.get("scopeSpans", [])
        )
