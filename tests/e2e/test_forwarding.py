"""The daemon forwards what it received, and its spanmetrics, to an upstream OTLP server."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

from trm_otel.histogram import ExponentialHistogram

from ..otlp_sink import OtlpSink
from .daemon_process import DaemonProcess, trm_otel_command
from .test_daemon_e2e import send_spans


def test_otlp_exporter_forwards_spans_and_exports_spanmetrics(tmp_path: Path) -> None:
    with OtlpSink() as upstream:
        config = {
            "exporters": {"otlp/upstream": {"endpoint": upstream.endpoint, "compression": "none"}},
            "service": {
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["latency"], "exporters": ["otlp/upstream"]}}
            },
        }
        durations = np.random.default_rng(4).lognormal(np.log(30), 0.5, 400)
        with DaemonProcess(tmp_path, config) as daemon:
            send_spans(OTLPSpanExporter(endpoint=daemon.grpc_endpoint, insecure=True), "fwd", "GET /f", durations, 10)
            daemon.wait_for_count(400, service="fwd")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not upstream.metric_points("traces.span.metrics.duration"):
                time.sleep(0.2)
        forwarded = sum(len(s.spans) for r in upstream.traces for rs in r.resource_spans for s in rs.scope_spans)
        assert forwarded == 400
        points = [p for resource, p in upstream.metric_points("traces.span.metrics.duration") if resource["service.name"] == "fwd"]
        latest = {}
        for point in points:  # cumulative: the last point per series holds everything
            status = next(kv.value.string_value for kv in point.attributes if kv.key == "status.code")
            latest[status] = point
        merged = ExponentialHistogram.merged(ExponentialHistogram.from_proto(p) for p in latest.values())
        assert merged.count == 400
        truth = np.sort(durations)[int(np.ceil(0.95 * 400)) - 1]
        assert abs(merged.quantile(0.95) / truth - 1) < 0.01


def test_demo_command_sends_shop_traffic_to_an_otlp_endpoint(tmp_path: Path) -> None:
    with OtlpSink() as sink:
        process = subprocess.Popen(
            [*trm_otel_command(), "demo", "--otlp-endpoint", sink.endpoint, "--port", "0", "--rps", "40"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            names: set[str] = set()
            while time.monotonic() < deadline and "POST /checkout" not in names:
                time.sleep(0.5)
                with sink.lock:
                    names = {s.name for r in sink.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans}
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)
        assert {"GET /products", "POST /checkout", "payment.authorize"} <= names
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""
