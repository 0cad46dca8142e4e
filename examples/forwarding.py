"""Forwarding to an upstream OpenTelemetry Collector: the daemon as a stage in a pipeline.

Shows ``examples/configs/forwarding.yaml``: an ``otlp/upstream`` exporter
in the traces pipeline, so the daemon keeps computing its own percentiles
*and* passes every span on, plus its aggregated spanmetrics
(``traces.span.metrics.duration`` exponential histograms and
``traces.span.metrics.calls``), to ``UPSTREAM_ENDPOINT``, through a bounded
retry queue.

Run it with ``UPSTREAM_ENDPOINT=host:4317 python examples/forwarding.py``
against a real Collector; without ``UPSTREAM_ENDPOINT`` it starts a
stand-in (a bare OTLP/gRPC server that counts what it gets) and prints what
arrived there.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from concurrent import futures
from typing import Any

import grpc
import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from _daemon import running_daemon

SPANS = 200


class StandInCollector(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """Counts the spans and metric names it receives; answers success."""

    def __init__(self) -> None:
        self.spans = 0
        self.metrics: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.endpoint = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the generated name
        with self.lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                self.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
                return trace_service_pb2.ExportTraceServiceResponse()
            self.metrics.update(m.name for r in request.resource_metrics for s in r.scope_metrics for m in s.metrics)
            return metrics_service_pb2.ExportMetricsServiceResponse()


def send_spans(grpc_endpoint: str) -> None:
    """``SPANS`` spans of the service ``inventory`` over OTLP/gRPC, as any OpenTelemetry SDK sends them."""
    provider = TracerProvider(resource=Resource.create({"service.name": "inventory"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("examples.forwarding")
    now = time.time_ns()
    for i in range(SPANS):
        name = "GET /stock/{sku}" if i % 4 else "PUT /stock/{sku}"
        duration_ns = int(random.lognormvariate(3, 0.4) * 1e6)
        end = now - i * 1_000_000
        tracer.start_span(name, start_time=end - duration_ns).end(end_time=end)
    provider.shutdown()


def sent_requests(api_url: str) -> dict[str, float]:
    """``trm_otel_exporter_sent_requests_total`` of ``otlp/upstream`` by signal, from ``/metrics``."""
    text = httpx.get(f"{api_url}/metrics").text
    pattern = re.compile(r'^trm_otel_exporter_sent_requests_total\{exporter="otlp/upstream",signal="(\w+)"\} (\S+)$', re.M)
    return {signal: float(value) for signal, value in pattern.findall(text)}


def main() -> None:
    upstream = os.environ.get("UPSTREAM_ENDPOINT")
    stand_in = None
    if not upstream:
        stand_in = StandInCollector()
        upstream = stand_in.endpoint
        print(f"no UPSTREAM_ENDPOINT: a stand-in collector listens on {upstream}")
    with running_daemon("configs/forwarding.yaml", env={"UPSTREAM_ENDPOINT": upstream}) as daemon:
        send_spans(daemon.grpc_endpoint)
        deadline = time.monotonic() + 60
        sent: dict[str, float] = {}
        while time.monotonic() < deadline:
            sent = sent_requests(daemon.api_url)
            if sent.get("traces", 0) >= 1 and sent.get("metrics", 0) >= 1:
                break
            time.sleep(0.2)
        views = httpx.get(f"{daemon.api_url}/api/v1/latency", params={"service": "inventory"}).json()["views"]
        for view in views:
            print(f"daemon view: {view['endpoint']}: {view['count']} spans, P95 {view['p95_ms']:.1f} ms")
        print(f"forwarded to {upstream}: {int(sent.get('traces', 0))} trace requests, "
              f"{int(sent.get('metrics', 0))} spanmetrics requests")
    if stand_in is not None:  # the daemon sends its last spanmetrics as it stops
        print(f"the stand-in collector received {stand_in.spans} spans and metrics {sorted(stand_in.metrics)}")
        stand_in.server.stop(grace=None)


if __name__ == "__main__":
    main()
