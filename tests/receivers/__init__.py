"""Helpers for the receiver tests: a recording consumer, request builders, servers in threads."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import uvicorn
from opentelemetry._logs import SeverityNumber
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from trm_otel.receivers import build_grpc_server, build_http_app

NOW_NS = time.time_ns()


def sdk_spans(count: int = 3) -> list[Any]:
    """Finished spans of a real SDK tracer (service "shop"), ready for an exporter."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(count):
        with tracer.start_as_current_span(f"GET /items/{i}", kind=SpanKind.SERVER):
            pass
    return list(memory.get_finished_spans())


def sdk_metrics() -> Any:
    """MetricsData with 3 data points (two counters, one histogram) from a real SDK meter."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    meter.create_counter("requests").add(3, {"route": "/a"})
    meter.create_counter("requests.b").add(1)
    meter.create_histogram("latency").record(12.5)
    return reader.get_metrics_data()


def sdk_logs(*bodies: str) -> list[Any]:
    """Log records emitted through a real SDK logger, one per body."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("test")
    for body in bodies:
        logger.emit(body=body, severity_number=SeverityNumber.ERROR)
    return list(memory.get_finished_logs())


class RecordingConsumer:
    """Stands in for the pipeline: records every accepted offer; refuses the next ``refuse`` offers."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.refused = 0
        self.traces: list[Any] = []
        self.metrics: list[tuple[Any, int]] = []
        self.logs: list[tuple[Any, int]] = []
        self.tenants: list[str] = []
        self.lock = threading.Lock()

    def _offer(self, target: list[Any], item: Any, tenant: str) -> bool:
        with self.lock:
            if self.refuse > 0:
                self.refuse -= 1
                self.refused += 1
                return False
            target.append(item)
            self.tenants.append(tenant)
            return True

    def offer_traces(self, batch: Any, request: Any = None, tenant: str = "default") -> bool:
        return self._offer(self.traces, batch, tenant)

    def offer_metrics(self, request: Any, points: int, tenant: str = "default") -> bool:
        return self._offer(self.metrics, (request, points), tenant)

    def offer_logs(self, request: Any, records: int, tenant: str = "default") -> bool:
        return self._offer(self.logs, (request, records), tenant)

    def span_names(self) -> list[str]:
        with self.lock:
            return [name for batch in self.traces for name in batch.name]


def span(
    name: str = "GET /items",
    *,
    start_ns: int | None = None,
    duration_ns: int = 5_000_000,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent_span_id: bytes = b"",
    kind: int = 2,
    status: int = 0,
) -> dict[str, Any]:
    """Field values of one OTLP span (valid unless told otherwise)."""
    start = NOW_NS - 60_000_000_000 if start_ns is None else start_ns
    return {
        "name": name,
        "trace_id": os.urandom(16) if trace_id is None else trace_id,
        "span_id": os.urandom(8) if span_id is None else span_id,
        "parent_span_id": parent_span_id,
        "kind": kind,
        "start_time_unix_nano": start,
        "end_time_unix_nano": start + duration_ns,
        "status": {"code": status},
    }


def trace_request(*scopes: Iterable[dict[str, Any]], service: str | None = "checkout") -> ExportTraceServiceRequest:
    """One resource (with ``service.name`` unless None) holding one scope per argument."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    if service is not None:
        resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    for spans in scopes:
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "test"
        for fields in spans:
            scope_spans.spans.add(**fields)
    return request


class GrpcServer:
    """``build_grpc_server`` on 127.0.0.1:0, run by an asyncio loop in a background thread."""

    def __init__(self, consumer: Any, **options: Any) -> None:
        options.setdefault("max_age_s", 3600)
        self.consumer = consumer
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> GrpcServer:
        self.thread.start()

        async def start() -> tuple[Any, int]:
            server, port = build_grpc_server(self.consumer, endpoint="127.0.0.1:0", **self.options)
            await server.start()
            return server, port

        self.server, self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.endpoint = f"127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class HttpServer:
    """``build_http_app`` under a real uvicorn server on 127.0.0.1:0, in a background thread."""

    def __init__(self, consumer: Any, **options: Any) -> None:
        options.setdefault("max_age_s", 3600)
        self.consumer = consumer
        app = build_http_app(consumer, **options)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> HttpServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
