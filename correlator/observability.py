"""The service's own logging and tracing set-up (its metrics are metrics.py; the telemetry it
analyses is analysis/telemetry.py): the only importer of the OpenTelemetry SDK and exporters.

Library modules use the OpenTelemetry API only (`trace.get_tracer(__name__)`). The SDK reads
the standard OTEL_* variables (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _PROTOCOL, _HEADERS, …). Spans are
always made, so that log lines carry trace ids; they are exported only when an OTLP endpoint
is set.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from pythonjsonlogger.json import JsonFormatter

from correlator import __version__
from correlator.redaction import RedactingFilter, Redactor
from correlator.settings import LogSettings


class TraceContextFilter(logging.Filter):
    """Adds the current trace_id and span_id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def configure_logging(
    settings: LogSettings, *, stream: Any = None, redact: Redactor | None = None
) -> None:
    """Route every logger to one handler on stderr, JSON by default, with every secret that
    `redact` knows (and every URL userinfo and token shape) masked at every level."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter(redact))
    handler.addFilter(TraceContextFilter())
    if settings.format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # Access lines are logged by our own middleware, with the route template.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs "HTTP Request: POST <full URL>" at INFO, and httpcore every step at DEBUG: a
    # chat webhook's URL is its credential. Their warnings still come through, masked.
    for name in ("httpx", "httpcore", "hpack"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _otlp_exporter() -> SpanExporter | None:
    if (_env("OTEL_TRACES_EXPORTER") or "otlp").lower() == "none":
        return None
    if _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT") is None:
        return None
    protocol = _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def configure_tracing() -> TracerProvider | None:
    """Install the SDK's tracer provider; None when OTEL_SDK_DISABLED=true."""
    if (_env("OTEL_SDK_DISABLED") or "").lower() == "true":
        return None
    resource = Resource.create({"service.version": __version__}).merge(
        Resource.create({"service.name": _env("OTEL_SERVICE_NAME") or "correlator"})
    )
    exporter = _otlp_exporter()
    sampler = None
    if exporter is None and _env("OTEL_TRACES_SAMPLER") is None:
        # Nothing would be exported: unsampled spans still carry valid trace and span ids for
        # the logs, and skip the cost of recording.
        sampler = ALWAYS_OFF
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Flush spans still buffered."""
    if provider is not None:
        provider.shutdown()
