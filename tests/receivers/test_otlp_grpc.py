"""The OTLP/gRPC receiver against the real OTLP exporters and raw grpc stubs."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.internal import api_implementation
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from trm_otel.receivers.otlp_grpc import build_grpc_server

from . import GrpcServer, RecordingConsumer, sdk_logs, sdk_metrics, sdk_spans, span, trace_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def consumer() -> RecordingConsumer:
    return RecordingConsumer()


@pytest.fixture
def server(consumer: RecordingConsumer) -> Iterator[GrpcServer]:
    with GrpcServer(consumer, retry_delay_s=0.2) as running:
        yield running


@pytest.fixture
def channel(server: GrpcServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.endpoint) as opened:
        yield opened


def status_details(error: grpc.RpcError) -> status_pb2.Status:
    trailers = dict(error.trailing_metadata())
    return status_pb2.Status.FromString(trailers["grpc-status-details-bin"])


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip])
def test_real_span_exporter_delivers(
    server: GrpcServer, consumer: RecordingConsumer, compression: grpc.Compression | None
) -> None:
    exporter = OTLPSpanExporter(endpoint=server.endpoint, insecure=True, compression=compression)
    try:
        assert exporter.export(sdk_spans(3)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    (batch,) = consumer.traces
    assert sorted(batch.name) == ["GET /items/0", "GET /items/1", "GET /items/2"]
    assert batch.service == ["shop"] * 3
    assert batch.kind.tolist() == [2, 2, 2]


def test_real_metric_and_log_exporters_deliver(server: GrpcServer, consumer: RecordingConsumer) -> None:
    metric_exporter = OTLPMetricExporter(endpoint=server.endpoint, insecure=True)
    log_exporter = OTLPLogExporter(endpoint=server.endpoint, insecure=True)
    try:
        assert metric_exporter.export(sdk_metrics()) is MetricExportResult.SUCCESS
        assert log_exporter.export(sdk_logs("one", "two")) is LogRecordExportResult.SUCCESS
    finally:
        metric_exporter.shutdown()
        log_exporter.shutdown()

    ((metrics_request, points),) = consumer.metrics
    assert points == 3
    names = {m.name for rm in metrics_request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert names == {"requests", "requests.b", "latency"}
    ((logs_request, records),) = consumer.logs
    assert records == 2
    bodies = [r.body.string_value for rl in logs_request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert bodies == ["one", "two"]


def test_full_success_leaves_partial_success_unset(channel: grpc.Channel) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    response = stub.Export(trace_request([span(), span()]), timeout=5)
    assert not response.HasField("partial_success")


def test_invalid_spans_get_partial_success(channel: grpc.Channel, consumer: RecordingConsumer) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    bad = {**span("bad"), "trace_id": b"abc"}
    response = stub.Export(trace_request([span("a"), bad, span("b")]), timeout=5)
    assert response.partial_success.rejected_spans == 1
    assert "resource_spans[0].scope_spans[0].spans[1].trace_id: must be 16 bytes, got 3" in (
        response.partial_success.error_message
    )
    assert consumer.span_names() == ["a", "b"]


def test_all_spans_invalid_offers_nothing(channel: grpc.Channel, consumer: RecordingConsumer) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    response = stub.Export(trace_request([{**span(), "span_id": b""}]), timeout=5)
    assert response.partial_success.rejected_spans == 1
    assert consumer.traces == []


def test_empty_request_is_success(channel: grpc.Channel, consumer: RecordingConsumer) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    assert not stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5).HasField("partial_success")
    logs = logs_service_pb2_grpc.LogsServiceStub(channel)
    logs.Export(logs_service_pb2.ExportLogsServiceRequest(), timeout=5)
    assert consumer.traces == [] and consumer.logs == []


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff\xff not protobuf", trace_request([span()]).SerializeToString()[:-7]],
    ids=["garbage", "truncated"],
)
def test_unparsable_request_is_invalid_argument(channel: grpc.Channel, payload: bytes) -> None:
    export = channel.unary_unary(EXPORT)  # raw bytes in and out
    with pytest.raises(grpc.RpcError) as caught:
        export(payload, timeout=5)
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf ExportTraceServiceRequest" in error.details()
    details = status_details(error)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert details.message == error.details()
    # ... and the server keeps serving
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    assert not stub.Export(trace_request([span()]), timeout=5).HasField("partial_success")


def test_oversized_message_is_resource_exhausted(consumer: RecordingConsumer) -> None:
    with GrpcServer(consumer, max_recv_msg_size_mib=1) as server, grpc.insecure_channel(server.endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        big = trace_request([span(name="x" * 1000) for _ in range(1500)])  # ~1.6 MB
        assert big.ByteSize() > 1024 * 1024
        with pytest.raises(grpc.RpcError) as caught:
            stub.Export(big, timeout=5)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not stub.Export(trace_request([span()]), timeout=5).HasField("partial_success")
    assert len(consumer.traces) == 1


def test_full_queue_is_unavailable_with_retry_info(channel: grpc.Channel, consumer: RecordingConsumer) -> None:
    consumer.refuse = 1
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Export(trace_request([span(), span()]), timeout=5)
    error = caught.value
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "queue is full, 2 spans not accepted" in error.details()
    details = status_details(error)
    (detail,) = details.details
    retry = error_details_pb2.RetryInfo()
    assert detail.Unpack(retry)
    assert retry.retry_delay.ToTimedelta().total_seconds() == pytest.approx(0.2)
    assert consumer.traces == []


def test_real_exporters_retry_unavailable_until_accepted(server: GrpcServer, consumer: RecordingConsumer) -> None:
    consumer.refuse = 1
    exporter = OTLPSpanExporter(endpoint=server.endpoint, insecure=True, timeout=10)
    started = time.monotonic()
    try:
        assert exporter.export(sdk_spans(2)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert consumer.refused == 1
    assert len(consumer.span_names()) == 2
    assert time.monotonic() - started >= 0.2  # waited the RetryInfo delay

    consumer.refuse = 1
    metric_exporter = OTLPMetricExporter(endpoint=server.endpoint, insecure=True, timeout=10)
    try:
        assert metric_exporter.export(sdk_metrics()) is MetricExportResult.SUCCESS
    finally:
        metric_exporter.shutdown()
    assert consumer.refused == 2 and len(consumer.metrics) == 1


def test_port_in_use_fails_loudly(consumer: RecordingConsumer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(_build(consumer, f"127.0.0.1:{port}"))


async def _build(consumer: RecordingConsumer, endpoint: str) -> None:
    build_grpc_server(consumer, endpoint=endpoint, max_age_s=60)


def test_requires_upb(monkeypatch: pytest.MonkeyPatch, consumer: RecordingConsumer) -> None:
    monkeypatch.setattr(api_implementation, "Type", lambda: "python")
    with pytest.raises(RuntimeError, match="not 'upb'"):
        build_grpc_server(consumer, endpoint="127.0.0.1:0", max_age_s=60)
