"""Self-observability: JSON logs with trace ids, OTLP export only when configured, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.payloads import recorded
from tests.support.processes import Service, wait_until

TOKEN = "log-SECRET-token"


class OtlpReceiver:
    """A minimal OTLP/HTTP trace receiver: records every export request."""

    def __init__(self) -> None:
        received: list[tuple[str, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def exported_spans(otlp: OtlpReceiver) -> list[tuple[str, Any]]:
    """Every span the receiver got, decoded from OTLP protobuf, with its service name."""
    spans = []
    for _, body in otlp.received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                spans += [(resource["service.name"], span) for span in scope_spans.spans]
    return spans


def attributes(span: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in span.attributes:
        kind = attribute.value.WhichOneof("value")
        values[attribute.key] = getattr(attribute.value, kind) if kind else None
    return values


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()


def test_requests_are_traced_exported_and_logged_with_their_trace_id(
    tmp_path: Path, otlp: OtlpReceiver
) -> None:
    service = Service(
        tmp_path,
        env={
            "CORRELATOR_AUTH_BEARER_TOKEN": TOKEN,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_SERVICE_NAME": "correlator-under-test",
        },
    ).start()
    try:
        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        response = httpx.post(
            f"{service.url}/api/v1/alerts",
            json=recorded("webhook-v4-firing-am0.25.json"),
            headers={"Authorization": f"Bearer {TOKEN}", "traceparent": traceparent},
        )
        assert response.status_code == 200
        httpx.post(f"{service.url}/api/v1/alerts", json={}, headers={"Authorization": "Bearer x"})
        wait_until(
            lambda: any(
                b"0af7651916cd43dd8448eb211c80319c" in body
                or bytes.fromhex("0af7651916cd43dd8448eb211c80319c") in body
                for _, body in otlp.received
            ),
            timeout_s=15,
            what="the request span to be exported",
        )
        # The work item's span ends when its correlation does, after the request's.
        wait_until(
            lambda: any(b"work_item" in body for _, body in otlp.received),
            timeout_s=15,
            what="the work item span to be exported",
        )
        assert {path for path, _ in otlp.received} == {"/v1/traces"}
    finally:
        service.stop()
    spans = exported_spans(otlp)
    services = {name for name, _ in spans}
    assert services == {"correlator-under-test"}
    by_name = {span.name: span for _, span in spans}
    stored = next(
        span
        for _, span in spans
        if span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
        and span.name == "POST /api/v1/alerts"
    )
    assert stored.parent_span_id.hex() == "b7ad6b7169203331"  # continues the caller's trace
    assert stored.kind == stored.SPAN_KIND_SERVER
    assert attributes(stored)["http.response.status_code"] == 200
    assert attributes(stored)["http.route"] == "/api/v1/alerts"
    refused = [s for _, s in spans if attributes(s).get("http.response.status_code") == 401]
    assert len(refused) == 1
    work = by_name["work_item"]
    assert attributes(work)["correlator.work_item.kind"] == "correlate"
    assert attributes(work)["correlator.incident.id"] == 1
    lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    stored = next(line for line in lines if line["message"] == "webhook notification stored")
    assert stored["trace_id"] == "0af7651916cd43dd8448eb211c80319c"  # continues the caller's trace
    assert stored["level"] == "INFO" and "time" in stored
    assert TOKEN not in service.log()


def test_logs_carry_trace_ids_when_nothing_is_exported(tmp_path: Path) -> None:
    env = {"CORRELATOR_AUTH_BEARER_TOKEN": TOKEN}
    service = Service(tmp_path, env=env)
    service.env = {k: v for k, v in service.env.items() if not k.startswith("OTEL_")}
    service.start()
    try:
        response = httpx.post(
            f"{service.url}/api/v1/alerts",
            json=recorded("webhook-v4-firing-am0.25.json"),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 200
    finally:
        service.stop()
    lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    stored = next(line for line in lines if line["message"] == "webhook notification stored")
    assert len(stored["trace_id"]) == 32 and int(stored["trace_id"], 16) != 0
    assert len(stored["span_id"]) == 16


def test_nothing_is_exported_without_an_endpoint(tmp_path: Path, otlp: OtlpReceiver) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = (
        "from opentelemetry import trace\n"
        "from correlator.observability import configure_tracing, shutdown_tracing, _otlp_exporter\n"
        "provider = configure_tracing()\n"
        "with trace.get_tracer('t').start_as_current_span('would-be-exported'):\n"
        "    pass\n"
        "shutdown_tracing(provider)\n"
        "print(provider is not None, _otlp_exporter())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "True None"
    # Disabled, even an endpoint that is set receives nothing.
    disabled = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url},
    )
    assert disabled.stdout.strip().startswith("False")
    assert otlp.received == []
    # The same program with the endpoint and the SDK on does export: the check above can fail.
    enabled = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url},
    )
    assert enabled.returncode == 0, enabled.stderr
    assert [span.name for _, span in exported_spans(otlp)] == ["would-be-exported"]
