"""The OTLP/HTTP receiver under a real uvicorn server, against the real exporters and raw httpx."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from . import HttpServer, RecordingConsumer, sdk_logs, sdk_metrics, sdk_spans, span, trace_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
LIMIT = 20 * 1024 * 1024  # the default


@pytest.fixture(scope="module")
def consumer() -> RecordingConsumer:
    return RecordingConsumer()


@pytest.fixture(scope="module")
def server(consumer: RecordingConsumer) -> Iterator[HttpServer]:
    with HttpServer(consumer) as running:
        yield running


@pytest.fixture
def client(server: HttpServer, consumer: RecordingConsumer) -> Iterator[httpx.Client]:
    consumer.refuse = 0
    with httpx.Client(base_url=server.url, timeout=30) as opened:
        yield opened


def valid_body() -> bytes:
    return trace_request([span("ping")]).SerializeToString()


def json_trace_body(**fields: Any) -> bytes:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-app"}}]},
                "scopeSpans": [{"spans": [fields]}],
            }
        ]
    }
    return json.dumps(document).encode()


def json_span(**overrides: Any) -> dict[str, Any]:
    fields = span("GET /json")
    result = {
        "traceId": fields["trace_id"].hex().upper(),
        "spanId": fields["span_id"].hex(),
        "name": fields["name"],
        "kind": 2,
        "startTimeUnixNano": str(fields["start_time_unix_nano"]),
        "endTimeUnixNano": fields["end_time_unix_nano"],
    }
    return {**result, **overrides}


def status_of(response: httpx.Response) -> status_pb2.Status:
    if response.headers["content-type"] == "application/json":
        return json_format.Parse(response.text, status_pb2.Status())
    assert response.headers["content-type"] == "application/x-protobuf"
    return status_pb2.Status.FromString(response.content)


def assert_still_serving(client: httpx.Client) -> None:
    response = client.post("/v1/traces", content=valid_body(), headers=PROTOBUF)
    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")


# ------------------------------------------------------------------ real exporters


def test_real_exporters_deliver(server: HttpServer, consumer: RecordingConsumer) -> None:
    before = (len(consumer.traces), len(consumer.metrics), len(consumer.logs))
    spans = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")
    gzipped = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", compression=Compression.Gzip)
    deflated = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", compression=Compression.Deflate)
    metrics = OTLPMetricExporter(endpoint=f"{server.url}/v1/metrics", compression=Compression.Gzip)
    logs = OTLPLogExporter(endpoint=f"{server.url}/v1/logs")
    try:
        assert spans.export(sdk_spans(3)) is SpanExportResult.SUCCESS
        assert gzipped.export(sdk_spans(2)) is SpanExportResult.SUCCESS
        assert deflated.export(sdk_spans(1)) is SpanExportResult.SUCCESS
        assert metrics.export(sdk_metrics()) is MetricExportResult.SUCCESS
        assert logs.export(sdk_logs("a", "b", "c")) is LogRecordExportResult.SUCCESS
    finally:
        for exporter in (spans, gzipped, deflated, metrics, logs):
            exporter.shutdown()
    new_batches = consumer.traces[before[0] :]
    assert [len(b) for b in new_batches] == [3, 2, 1]
    assert all(b.service == ["shop"] * len(b) for b in new_batches)
    assert [points for _, points in consumer.metrics[before[1] :]] == [3]
    assert [records for _, records in consumer.logs[before[2] :]] == [3]


def test_real_exporter_retries_503_until_accepted(server: HttpServer, consumer: RecordingConsumer) -> None:
    consumer.refuse = 1
    refused = consumer.refused
    before = len(consumer.span_names())
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=10)
    started = time.monotonic()
    try:
        assert exporter.export(sdk_spans(2)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert consumer.refused == refused + 1
    assert len(consumer.span_names()) == before + 2
    assert time.monotonic() - started >= 1.0  # honoured Retry-After: 1


# ------------------------------------------------------------------ encodings


def test_json_request_gets_json_answer(client: httpx.Client, consumer: RecordingConsumer) -> None:
    before = len(consumer.traces)
    response = client.post("/v1/traces", content=json_trace_body(**json_span()), headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    (batch,) = consumer.traces[before:]
    assert batch.service == ["js-app"] and batch.name == ["GET /json"]


def test_json_partial_success(client: httpx.Client) -> None:
    body = json_trace_body(**json_span(endTimeUnixNano="1", startTimeUnixNano="2"))
    response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64 in proto3 JSON
    assert "resource_spans[0].scope_spans[0].spans[0]" in partial["errorMessage"]


def test_protobuf_partial_success_and_full_success(client: httpx.Client, consumer: RecordingConsumer) -> None:
    bad = {**span("bad"), "parent_span_id": b"\x01\x02"}
    body = trace_request([span("kept"), bad]).SerializeToString()
    response = client.post("/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "parent_span_id: must be empty or 8 bytes, got 2" in answer.partial_success.error_message
    assert consumer.traces[-1].name == ["kept"]
    assert_still_serving(client)


def test_metrics_and_logs_json(client: httpx.Client, consumer: RecordingConsumer) -> None:
    gauge = {"name": "g", "gauge": {"dataPoints": [{"asInt": "1"}, {"asDouble": 2.5}]}}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [gauge]}]}]}
    response = client.post("/v1/metrics", json=metrics)
    assert response.status_code == 200 and response.json() == {}
    assert consumer.metrics[-1][1] == 2
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}, "traceId": "AB" * 16}]}]}]}
    response = client.post("/v1/logs", json=logs)
    assert response.status_code == 200
    request, records = consumer.logs[-1]
    assert records == 1
    assert request.resource_logs[0].scope_logs[0].log_records[0].trace_id == b"\xab" * 16


def test_gzip_multi_member_body(client: httpx.Client, consumer: RecordingConsumer) -> None:
    """A gzip body may be several concatenated members (RFC 1952); all of them are read."""
    body = valid_body()
    half = len(body) // 2
    compressed = gzip.compress(body[:half]) + gzip.compress(body[half:])
    response = client.post("/v1/traces", content=compressed, headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert consumer.traces[-1].name == ["ping"]


# ------------------------------------------------------------------ bad input, table-driven


def gzip_bomb() -> bytes:
    """1 GiB of zeros as gzip (~1 MB): sixteen 64 MiB members, each compressed once."""
    member = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    return member * 16


def chunked(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


BAD_INPUTS: dict[str, tuple[Callable[[httpx.Client], httpx.Response], int, str]] = {
    "garbage bytes": (
        lambda c: c.post("/v1/traces", content=b"\xff\xff\xff\xff garbage", headers=PROTOBUF),
        400,
        "not a valid protobuf ExportTraceServiceRequest",
    ),
    "truncated protobuf": (
        lambda c: c.post("/v1/traces", content=valid_body()[:-5], headers=PROTOBUF),
        400,
        "not a valid protobuf ExportTraceServiceRequest",
    ),
    "wrong content type": (
        lambda c: c.post("/v1/traces", content=valid_body(), headers={"Content-Type": "text/plain"}),
        415,
        "Content-Type 'text/plain' is not supported",
    ),
    "no content type": (
        lambda c: c.post("/v1/logs", content=b"x"),
        415,
        "Content-Type '(none)' is not supported",
    ),
    "wrong method": (lambda c: c.get("/v1/traces"), 405, "GET is not allowed on /v1/traces"),
    "wrong method with body": (
        lambda c: c.put("/v1/metrics", content=valid_body(), headers=PROTOBUF),
        405,
        "PUT is not allowed on /v1/metrics",
    ),
    "oversized body (Content-Length)": (
        lambda c: c.post("/v1/traces", content=bytes(LIMIT + 1), headers=PROTOBUF),
        413,
        f"request body of {LIMIT + 1} bytes is over the {LIMIT}-byte limit",
    ),
    "oversized body (chunked, no Content-Length)": (
        lambda c: c.post("/v1/traces", content=chunked(bytes(LIMIT + 1)), headers=PROTOBUF),
        413,
        f"request body is over the {LIMIT}-byte limit",
    ),
    "gzip bomb": (
        lambda c: c.post("/v1/traces", content=gzip_bomb(), headers={**PROTOBUF, "Content-Encoding": "gzip"}),
        413,
        "over the 20971520-byte limit once decompressed",
    ),
    "not gzip": (
        lambda c: c.post("/v1/traces", content=valid_body(), headers={**PROTOBUF, "Content-Encoding": "gzip"}),
        400,
        "Content-Encoding gzip: body is not valid gzip data",
    ),
    "truncated gzip": (
        lambda c: c.post(
            "/v1/traces", content=gzip.compress(valid_body())[:-10], headers={**PROTOBUF, "Content-Encoding": "gzip"}
        ),
        400,
        "Content-Encoding gzip: body is truncated",
    ),
    "unknown content encoding": (
        lambda c: c.post("/v1/traces", content=valid_body(), headers={**PROTOBUF, "Content-Encoding": "br"}),
        415,
        "Content-Encoding 'br' is not supported",
    ),
    "invalid JSON": (
        lambda c: c.post("/v1/traces", content=b'{"resourceSpans": [', headers=JSON),
        400,
        "request body is not valid JSON",
    ),
    "bad hex id in JSON": (
        lambda c: c.post("/v1/traces", content=json_trace_body(**json_span(spanId="not-hex")), headers=JSON),
        400,
        "resourceSpans[0].scopeSpans[0].spans[0].spanId: must be a hex string",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_its_spec_answer(case: str, client: httpx.Client) -> None:
    send, expected_status, message = BAD_INPUTS[case]
    response = send(client)
    assert response.status_code == expected_status, response.content[:300]
    status = status_of(response)
    assert message in status.message
    if expected_status == 405:
        assert response.headers["allow"] == "POST"
    if "JSON" in case:
        assert response.headers["content-type"] == "application/json"
    if expected_status == 400 and status.details:
        violation = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(violation)
        assert violation.field_violations[0].field in status.message
    assert_still_serving(client)


def test_gzip_bomb_uses_bounded_memory(client: httpx.Client) -> None:
    bomb = gzip_bomb()
    tracemalloc.start()  # traces the server thread too
    try:
        response = client.post("/v1/traces", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"})
        peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert peak_mib < 3 * LIMIT / 2**20, f"peak {peak_mib:.0f} MiB for a 1 GiB bomb"


def test_spans_ending_before_start_are_partial_success(client: httpx.Client) -> None:
    bad = span("backwards", duration_ns=-1_000)
    response = client.post("/v1/traces", content=trace_request([bad]).SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "1 ending before they start" in answer.partial_success.error_message


def test_full_queue_is_503_with_retry_after(client: httpx.Client, consumer: RecordingConsumer) -> None:
    for headers, content in ((PROTOBUF, valid_body()), (JSON, json_trace_body(**json_span()))):
        consumer.refuse = 1
        response = client.post("/v1/traces", content=content, headers=headers)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == headers["Content-Type"]
        status = status_of(response)
        assert "queue is full, 1 spans not accepted" in status.message
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry) and retry.retry_delay.seconds == 1
    assert_still_serving(client)


def test_deflate_body(client: httpx.Client, consumer: RecordingConsumer) -> None:
    response = client.post(
        "/v1/traces", content=zlib.compress(valid_body()), headers={**PROTOBUF, "Content-Encoding": "deflate"}
    )
    assert response.status_code == 200
    assert consumer.traces[-1].name == ["ping"]


def test_small_limit_applies_after_decompression(consumer: RecordingConsumer) -> None:
    body = trace_request([span(f"s{i}") for i in range(200)]).SerializeToString()
    compressed = gzip.compress(body)
    limit = (len(body) + len(compressed)) // 2  # the wire body fits, the decompressed one does not
    with HttpServer(consumer, max_request_body_size=limit) as small, httpx.Client(base_url=small.url) as client:
        headers = {**PROTOBUF, "Content-Encoding": "gzip"}
        assert client.post("/v1/traces", content=compressed, headers=headers).status_code == 413
        assert client.post("/v1/traces", content=valid_body(), headers=PROTOBUF).status_code == 200


class ExplodingConsumer(RecordingConsumer):
    def offer_traces(self, batch: Any, request: Any = None) -> bool:
        raise ZeroDivisionError("a bug downstream")


def test_unexpected_failure_is_500_with_a_status_body() -> None:
    with HttpServer(ExplodingConsumer()) as broken, httpx.Client(base_url=broken.url) as client:
        response = client.post("/v1/traces", content=valid_body(), headers=PROTOBUF)
        assert response.status_code == 500
        assert status_of(response).message == "internal error while handling the request"
        assert client.post("/v1/logs", json={}).status_code == 200
