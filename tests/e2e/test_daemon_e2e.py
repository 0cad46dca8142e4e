"""The daemon as a subprocess, fed by the real OTLP exporters and raw OTLP/JSON."""

from __future__ import annotations

import gzip
import math
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from .daemon_process import DaemonProcess


def exact(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


def send_spans(exporter, service: str, name: str, durations_ms: np.ndarray, errors_every: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=20_000, max_export_batch_size=512))
    tracer = provider.get_tracer("e2e")
    now = time.time_ns()
    for i, duration in enumerate(durations_ms.tolist()):
        end = now - i * 1_000_000
        span = tracer.start_span(name, start_time=end - int(duration * 1e6))
        if i % errors_every == 0:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
    provider.shutdown()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    with DaemonProcess(tmp_path_factory.mktemp("daemon")) as process:
        yield process


def check_view(view: dict, durations: np.ndarray, errors: int) -> None:
    assert (view["count"], view["errors"]) == (len(durations), errors)
    for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
        assert view[key] == pytest.approx(exact(durations, q), rel=0.01), key


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_real_exporters_counts_and_percentiles(daemon: DaemonProcess, protocol: str) -> None:
    rng = np.random.default_rng(11 if protocol == "grpc" else 12)
    durations = rng.lognormal(np.log(60), 0.8, 3000)
    service = f"e2e-{protocol.split('/')[0]}"
    exporter = (
        GrpcSpanExporter(endpoint=daemon.grpc_endpoint, insecure=True)
        if protocol == "grpc"
        else HttpSpanExporter(endpoint=f"{daemon.http_url}/v1/traces")
    )
    send_spans(exporter, service, "GET /orders", durations, errors_every=20)
    (view,) = daemon.wait_for_count(3000, service=service)
    check_view(view, durations, errors=150)


def test_raw_otlp_json_with_hex_ids_and_gzip(daemon: DaemonProcess) -> None:
    now = time.time_ns()
    durations = np.array([5.0, 10.0, 20.0, 40.0])
    spans = [
        {
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": f"{i + 1:016x}",
            "name": "GET /json",
            "kind": 2,
            "startTimeUnixNano": str(now - int(d * 1e6)),
            "endTimeUnixNano": now,  # int64 as a number is accepted too
            "status": {"code": 2 if i == 0 else 0},
            "unknownFieldIsIgnored": True,
        }
        for i, d in enumerate(durations)
    ]
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "e2e-json"}}]},
                "scopeSpans": [{"scope": {"name": "raw"}, "spans": spans}],
            }
        ]
    }
    import json

    response = httpx.post(
        f"{daemon.http_url}/v1/traces",
        content=gzip.compress(json.dumps(body).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    (view,) = daemon.wait_for_count(4, service="e2e-json")
    assert (view["endpoint"], view["count"], view["errors"]) == ("GET /json", 4, 1)
    assert view["max_ms"] == pytest.approx(40.0, rel=0.01)


def _valid_request(service: str, end_before_start: int = 0) -> bytes:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    now = time.time_ns()
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    scope = resource_spans.scope_spans.add()
    for i in range(4):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = bytes([7] * 16), (i + 1).to_bytes(8, "big"), "op"
        span.start_time_unix_nano = now - 1_000_000
        span.end_time_unix_nano = now - 2_000_000 if i < end_before_start else now
    return request.SerializeToString()


PROTOBUF = {"Content-Type": "application/x-protobuf"}
BAD_INPUTS = {
    "garbage bytes": ("POST", b"\x00garbage\xff\xff\xff", PROTOBUF, 400),
    "truncated protobuf": ("POST", _valid_request("bad")[:-7], PROTOBUF, 400),
    "wrong content type": ("POST", b"{}", {"Content-Type": "text/plain"}, 415),
    "wrong method": ("GET", b"", {}, 405),
    "oversized body": ("POST", b"\x00" * (21 * 1024 * 1024), PROTOBUF, 413),
    "gzip bomb": ("POST", gzip.compress(b"\x00" * (256 * 1024 * 1024)), {**PROTOBUF, "Content-Encoding": "gzip"}, 413),
    "invalid JSON": ("POST", b"{not json", {"Content-Type": "application/json"}, 400),
    "end before start": ("POST", _valid_request("e2e-partial", end_before_start=1), PROTOBUF, 200),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_gets_its_spec_answer_and_accepted_data_is_unchanged(daemon: DaemonProcess, case: str) -> None:
    service = "e2e-steady"
    if not daemon.get("/api/v1/latency", service=service)["views"]:
        send_spans(GrpcSpanExporter(endpoint=daemon.grpc_endpoint, insecure=True), service, "op", np.full(50, 7.0), 10)
    (before,) = daemon.wait_for_count(50, service=service)
    method, body, headers, status = BAD_INPUTS[case]
    response = httpx.request(method, f"{daemon.http_url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == status, response.content[:200]
    if status == 200:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
        assert answer.partial_success.rejected_spans == 1
        assert "end" in answer.partial_success.error_message
        assert daemon.wait_for_count(3, service="e2e-partial")[0]["count"] == 3
    elif status == 405:
        assert "POST" in response.headers["allow"]
    elif headers.get("Content-Type") == "application/json":
        assert response.json()["message"], "a google.rpc.Status as JSON, saying why"
    else:
        from google.rpc import status_pb2

        assert status_pb2.Status.FromString(response.content).message, "a google.rpc.Status body saying why"
    (after,) = daemon.get("/api/v1/latency", service=service)["views"]
    stable = ("count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms")
    assert {k: after[k] for k in stable} == {k: before[k] for k in stable}
    assert httpx.get(f"{daemon.api_url}/readyz").status_code == 200


def test_the_daemon_reports_its_own_api_latency_as_trm_otel(daemon: DaemonProcess) -> None:
    # Named by route template as trm_otel.instrument_asgi names spans: convertors left out, 405s by their route.
    expected = {"GET /api/v1/services", "GET /static/{name}", "POST /metrics"}
    assert httpx.get(f"{daemon.api_url}/static/app.js").status_code == 200
    assert httpx.post(f"{daemon.api_url}/metrics").status_code == 405
    deadline = time.monotonic() + 15
    endpoints: set[str] = set()
    while time.monotonic() < deadline and not expected <= endpoints:
        services = {s["name"] for s in daemon.get("/api/v1/services")["services"]}
        endpoints = {v["endpoint"] for v in daemon.get("/api/v1/latency", service="trm-otel")["views"]}
        time.sleep(0.3)
    assert "trm-otel" in services
    assert expected <= endpoints


def test_metrics_endpoint_exposes_span_latency_and_pipeline_counters(daemon: DaemonProcess) -> None:
    send_spans(GrpcSpanExporter(endpoint=daemon.grpc_endpoint, insecure=True), "e2e-prom", "GET /p", np.full(10, 3.0), 5)
    daemon.wait_for_count(10, service="e2e-prom")
    text = httpx.get(f"{daemon.api_url}/metrics").text
    assert 'traces_span_metrics_calls_total{service_name="e2e-prom"' in text
    assert "trm_otel_pipeline_accepted_items_total" in text


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    process = DaemonProcess(tmp_path)
    process.start()
    send_spans(GrpcSpanExporter(endpoint=process.grpc_endpoint, insecure=True), "e2e-stop", "op", np.full(20, 1.0), 10)
    process.wait_for_count(20, service="e2e-stop")
    assert process.stop() == 0
    assert any("trm-otel stopped" in line for line in process.log)


def test_serve_demo_shows_live_demo_data_within_seconds(tmp_path: Path) -> None:
    with DaemonProcess(tmp_path, args=["--demo", "--demo-rps", "40"]) as process:
        deadline = time.monotonic() + 30
        endpoints: set[str] = set()
        while time.monotonic() < deadline and not {"POST /checkout", "GET /search"} <= endpoints:
            time.sleep(0.5)
            endpoints = {v["endpoint"] for v in process.get("/api/v1/latency", service="demo-shop")["views"]}
        assert {"GET /products", "POST /checkout", "GET /search"} <= endpoints
        kinds = {b["kind"] for b in process.get("/api/v1/bottlenecks", service="demo-shop")["bottlenecks"]}
        assert "time_share" in kinds


def test_query_api_answers_prometheus_shaped(daemon: DaemonProcess) -> None:
    durations = np.random.default_rng(21).lognormal(np.log(50), 0.5, 500)
    send_spans(GrpcSpanExporter(endpoint=daemon.grpc_endpoint, insecure=True), "e2e-query", "GET /q", durations, 25)
    (view,) = daemon.wait_for_count(500, service="e2e-query")
    time.sleep(1.2)  # let the newest 1 s window close
    answer = daemon.get("/api/v1/query", q='p99(traces.span.metrics.duration{service.name="e2e-query"}[5m]) by (span.name)')
    assert answer["status"] == "success" and answer["data"]["resultType"] == "vector"
    (sample,) = answer["data"]["result"]
    assert sample["metric"] == {"span.name": "GET /q"}
    assert float(sample["value"][1]) == pytest.approx(view["p99_ms"], rel=1e-6)
    errors = daemon.get("/api/v1/query", q='error_rate(traces.span.metrics.duration{service.name="e2e-query"}[5m])')
    assert float(errors["data"]["result"][0]["value"][1]) == pytest.approx(20 / 500)
    bad = httpx.get(f"{daemon.api_url}/api/v1/query", params={"q": "p95{"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("1:4: ")
