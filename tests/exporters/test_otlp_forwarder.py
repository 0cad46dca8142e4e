"""The otlp exporter against real OTLP servers on loopback: delivery, retries, drops."""

from __future__ import annotations

import logging

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from trm_otel.exporters import DebugExporter, OtlpForwarder, RetryPolicy

from ..otlp_sink import HttpOtlpSink, OtlpSink

FAST_RETRY = RetryPolicy(initial_interval_s=0.01, max_interval_s=0.05, max_elapsed_s=5.0)


def traces_request(n: int = 3) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "shop"
    scope = resource_spans.scope_spans.add()
    for i in range(n):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = bytes(16 * [i + 1]), bytes(8 * [i + 1]), f"op{i}"
        span.start_time_unix_nano, span.end_time_unix_nano = 1_000, 2_000
        span.kind = trace_pb2.Span.SPAN_KIND_SERVER
    return request


def test_grpc_forwarding_delivers_the_request_unchanged_with_headers() -> None:
    request = traces_request()
    with OtlpSink() as sink:
        forwarder = OtlpForwarder(sink.endpoint, headers={"authorization": "Bearer t0k"}, retry=FAST_RETRY)
        forwarder.start()
        assert forwarder.send("traces", request)
        assert forwarder.flush(10)
        forwarder.shutdown()
    assert sink.traces == [request]
    assert sink.trace_metadata[0]["authorization"] == "Bearer t0k"
    assert forwarder.stats().sent == {"traces": 1}


def test_grpc_retryable_failures_are_retried_until_delivered() -> None:
    with OtlpSink() as sink:
        sink.failures = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
        forwarder = OtlpForwarder(sink.endpoint, retry=FAST_RETRY)
        forwarder.start()
        forwarder.send("traces", traces_request())
        forwarder.flush(10)
        forwarder.shutdown()
    assert len(sink.traces) == 1
    stats = forwarder.stats()
    assert (stats.sent, stats.retries, stats.dropped) == ({"traces": 1}, 2, {})


def test_grpc_permanent_failure_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    with OtlpSink() as sink, caplog.at_level(logging.WARNING):
        sink.failures = [grpc.StatusCode.INVALID_ARGUMENT]
        forwarder = OtlpForwarder(sink.endpoint, retry=FAST_RETRY)
        forwarder.start()
        forwarder.send("traces", traces_request())
        forwarder.flush(10)
        forwarder.shutdown()
    assert sink.traces == []
    assert forwarder.stats().dropped == {"traces:rejected": 1}
    assert "INVALID_ARGUMENT" in caplog.text


def test_http_forwarding_with_gzip_and_a_503_retry() -> None:
    request = traces_request(5)
    with HttpOtlpSink() as sink:
        sink.statuses = [503]
        forwarder = OtlpForwarder(sink.endpoint, protocol="http/protobuf", compression="gzip", retry=FAST_RETRY)
        forwarder.start()
        forwarder.send("traces", request)
        forwarder.send("logs", logs_service_pb2.ExportLogsServiceRequest())
        forwarder.flush(10)
        forwarder.shutdown()
    assert [trace_service_pb2.ExportTraceServiceRequest.FromString(b) for b in sink.bodies["/v1/traces"]] == [request]
    assert "/v1/logs" in sink.bodies
    assert forwarder.stats().retries == 1


def test_full_queue_refuses_and_counts() -> None:
    forwarder = OtlpForwarder("127.0.0.1:9", queue_size=2, retry=FAST_RETRY)  # never started
    assert forwarder.send("traces", traces_request())
    assert forwarder.send("traces", traces_request())
    assert not forwarder.send("traces", traces_request())
    assert forwarder.stats().dropped == {"traces:queue_full": 1}
    forwarder.shutdown(timeout=0.1)
    assert forwarder.stats().dropped == {"traces:queue_full": 1, "traces:shutdown": 2}


def test_unreachable_upstream_gives_up_after_max_elapsed() -> None:
    policy = RetryPolicy(initial_interval_s=0.01, max_interval_s=0.02, max_elapsed_s=0.2)
    forwarder = OtlpForwarder("127.0.0.1:9", retry=policy, timeout_s=0.5)
    forwarder.start()
    forwarder.send("traces", traces_request())
    assert forwarder.flush(10)
    forwarder.shutdown()
    assert forwarder.stats().dropped == {"traces:retries_exhausted": 1}


@pytest.mark.parametrize("verbosity", ["basic", "normal", "detailed"])
def test_debug_exporter_logs_counts_per_verbosity(verbosity: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="trm_otel.debug"):
        DebugExporter(verbosity).export("traces", traces_request(3))
    assert "debug traces: 1 resources, 3 spans" in caplog.text
    assert ("service.name=shop spans=3" in caplog.text) == (verbosity == "normal")
    assert ('name: "op2"' in caplog.text) == (verbosity == "detailed")


def test_debug_exporter_rejects_unknown_verbosity() -> None:
    with pytest.raises(ValueError, match="verbosity must be basic, normal or detailed"):
        DebugExporter("loud")  # type: ignore[arg-type]
