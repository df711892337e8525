"""Real Jaeger v2 (built by tests/tools/build.sh) with in-memory storage: spans go in over OTLP/HTTP
exactly as an instrumented app sends them, and come out through its query API."""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fakes.jaeger import KINDS, FakeSpan
from tests.support.processes import free_port, wait_until
from tests.support.tools import binary


def otlp_json(spans: list[FakeSpan]) -> dict[str, Any]:
    """The OTLP/JSON `ExportTraceServiceRequest` for `spans`, one resource per service."""
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        otlp: dict[str, Any] = {
            "traceId": span.trace_id,
            "spanId": span.span_id,
            "name": span.operation,
            "kind": KINDS.get(span.kind, 0),
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.start_ns + span.duration_ns),
            "attributes": [
                {"key": k, "value": {"stringValue": v}} for k, v in span.attributes.items()
            ],
        }
        if span.parent_span_id:
            otlp["parentSpanId"] = span.parent_span_id
        if span.error:
            otlp["status"] = {"code": 2, "message": "failed"}
        by_service[span.service].append(otlp)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "correlator-tests"}, "spans": otlp_spans}],
            }
            for service, otlp_spans in by_service.items()
        ]
    }


class Jaeger:
    """`jaeger --config` with the OTLP/HTTP receiver, memory storage and the query service, all
    on free loopback ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.query_port, self.otlp_port, self.grpc_port = free_port(), free_port(), free_port()
        self.log_path = workdir / "jaeger.log"
        self.config_path = workdir / "jaeger.yaml"
        self.config_path.write_text(yaml.safe_dump(self._config()))
        self.process: subprocess.Popen[bytes] | None = None

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
                    "http": {"endpoint": f"127.0.0.1:{self.query_port}"},
                    "grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
                },
            },
            "receivers": {
                "otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{self.otlp_port}"}}}
            },
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def start(self) -> Jaeger:
        self.process = subprocess.Popen(
            [binary("jaeger"), f"--config={self.config_path}"],
            # Jaeger traces itself to localhost:4317 unless told not to: no such collector here.
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout_s=60, what=f"Jaeger on {self.url}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"jaeger exited with {self.process.returncode}:\n{self.log()}")
        return httpx.get(f"{self.url}/api/v3/services", timeout=1).status_code == 200

    def push(self, spans: list[FakeSpan]) -> None:
        """Send `spans` over OTLP/HTTP and wait until the query service returns each trace."""
        response = httpx.post(
            f"http://127.0.0.1:{self.otlp_port}/v1/traces", json=otlp_json(spans), timeout=10
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

    def close(self) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
