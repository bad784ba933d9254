"""OpenTelemetry tracing, off unless configured.

`JAUGE_OTLP_ENDPOINT` exports spans over OTLP/HTTP; `JAUGE_TRACE_DIR` also writes them
as JSON lines (one file per process), which the tests read. FastStream's telemetry
middleware carries the trace context in message headers, so one trace follows a
request from the gateway through every service and back to the WebSocket push.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from jauge_shared.settings import ServiceSettings

_providers: dict[str, TracerProvider] = {}


class JsonLinesExporter(SpanExporter):
    """One JSON span a line, flushed at once (tests read the files while we run)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._file.write(span.to_json(indent=None) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def tracer_provider(settings: ServiceSettings, service: str) -> TracerProvider | None:
    """This process's provider, or None when tracing is off."""
    if settings.otlp_endpoint is None and settings.trace_dir is None:
        return None
    if service in _providers:
        return _providers[service]
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if settings.otlp_endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=str(settings.otlp_endpoint)))
        )
    if settings.trace_dir is not None:
        path = settings.trace_dir / f"{service}-{os.getpid()}.jsonl"
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    trace.set_tracer_provider(provider)
    _providers[service] = provider
    return provider
