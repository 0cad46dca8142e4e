"""Steady span traffic from named services into a daemon, switched on and off by tests."""

from __future__ import annotations

import threading
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


class Traffic:
    """``traffic.start("shop", ["GET /a"])`` sends one span per name every ``period_s`` until ``stop("shop")``."""

    def __init__(self, grpc_endpoint: str, period_s: float = 0.2, duration_ms: float = 20.0) -> None:
        self.endpoint = grpc_endpoint
        self.period_s = period_s
        self.duration_ms = duration_ms
        self._running: dict[str, tuple[threading.Event, threading.Thread, TracerProvider]] = {}

    def start(self, service: str, names: list[str] | None = None) -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint, insecure=True)))
        tracer = provider.get_tracer("traffic")
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                end = time.time_ns()
                for name in names or ["GET /"]:
                    span = tracer.start_span(name, start_time=end - int(self.duration_ms * 1e6))
                    span.end(end_time=end)
                stop.wait(self.period_s)

        thread = threading.Thread(target=run, daemon=True, name=f"traffic-{service}")
        thread.start()
        self._running[service] = (stop, thread, provider)

    def stop(self, service: str) -> None:
        stop, thread, provider = self._running.pop(service)
        stop.set()
        thread.join(5)
        provider.shutdown()

    def stop_all(self) -> None:
        for service in list(self._running):
            self.stop(service)
