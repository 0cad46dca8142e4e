"""decode_traces: OTLP trace requests become SpanBatch columns; bad spans are dropped with a reason."""

from __future__ import annotations

import time

import numpy as np
import pytest
from google.protobuf.internal import api_implementation
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from trm_otel.receivers.otlp_traces import decode_traces, require_upb

from . import NOW_NS, span, trace_request

DAY_S = 86400.0


def decode(request: ExportTraceServiceRequest, **options: float):
    options.setdefault("max_age_s", DAY_S)
    return decode_traces(request, now_ns=NOW_NS, **options)


def test_columns_from_real_sdk_spans() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as parent:
        with tracer.start_as_current_span("SELECT carts", kind=SpanKind.CLIENT) as child:
            child.set_status(StatusCode.ERROR)
    spans = memory.get_finished_spans()
    decoded = decode_traces(encode_spans(spans), max_age_s=DAY_S)

    assert decoded.rejected == 0 and decoded.error_message == ""
    batch = decoded.batch
    assert batch.service == ["shop", "shop"]
    assert batch.name == ["SELECT carts", "GET /cart"]
    assert batch.kind.tolist() == [3, 2]  # OTLP numbering: CLIENT = 3, SERVER = 2
    assert batch.status.tolist() == [2, 0]  # STATUS_CODE_ERROR = 2, UNSET = 0
    assert batch.span_id.tolist() == [child.get_span_context().span_id, parent.get_span_context().span_id]
    assert batch.parent_span_id.tolist() == [parent.get_span_context().span_id, 0]
    assert batch.end_ns.tolist() == [s.end_time for s in spans]
    expected_ms = [(s.end_time - s.start_time) / 1e6 for s in spans]
    assert batch.duration_ms.tolist() == pytest.approx(expected_ms)
    assert batch.kind.dtype == np.int8 and batch.span_id.dtype == np.uint64 and batch.end_ns.dtype == np.int64


def test_ids_are_big_endian_and_full_range() -> None:
    request = trace_request(
        [span(span_id=bytes.fromhex("ffffffffffffffff"), parent_span_id=bytes.fromhex("0000000000000102"))]
    )
    batch = decode(request).batch
    assert batch.span_id.tolist() == [2**64 - 1]
    assert batch.parent_span_id.tolist() == [0x0102]


def test_service_per_resource_with_defaults() -> None:
    request = trace_request([span("a")], service="checkout")
    request.resource_spans.extend(trace_request([span("b")], service=None).resource_spans)
    request.resource_spans.extend(trace_request([span("c")], service="").resource_spans)
    numeric = trace_request([span("d")], service=None)
    numeric.resource_spans[0].resource.attributes.add(key="service.name", value=AnyValue(int_value=7))
    request.resource_spans.extend(numeric.resource_spans)
    batch = decode(request).batch
    assert batch.name == ["a", "b", "c", "d"]
    assert batch.service == ["checkout", "unknown_service", "unknown_service", "7"]


def test_empty_request_and_empty_scopes() -> None:
    assert len(decode(ExportTraceServiceRequest()).batch) == 0
    decoded = decode(trace_request([], [span("x")], []))
    assert decoded.batch.name == ["x"] and decoded.rejected == 0


START = NOW_NS - 60_000_000_000


@pytest.mark.parametrize(
    ("fields", "reason", "in_message"),
    [
        ({"trace_id": b"abc"}, "bad_trace_id", "spans[1].trace_id: must be 16 bytes, got 3"),
        ({"trace_id": bytes(16)}, "zero_trace_id", "spans[1].trace_id: must not be all zeros"),
        ({"span_id": b"\x01" * 9}, "bad_span_id", "spans[1].span_id: must be 8 bytes, got 9"),
        ({"span_id": b""}, "bad_span_id", "spans[1].span_id: must be 8 bytes, got 0"),
        ({"span_id": bytes(8)}, "zero_span_id", "spans[1].span_id: must not be all zeros"),
        (
            {"parent_span_id": b"\x01" * 4},
            "bad_parent_span_id",
            "spans[1].parent_span_id: must be empty or 8 bytes, got 4",
        ),
        ({"kind": 9}, "bad_kind", "spans[1].kind: 9 is not a SpanKind value"),
        ({"kind": -1}, "bad_kind", "spans[1].kind: -1 is not a SpanKind value"),
        ({"status": {"code": 7}}, "bad_status", "spans[1].status.code: 7 is not a StatusCode value"),
        ({"start_time_unix_nano": 0}, "missing_start", "spans[1].start_time_unix_nano: must be set"),
        (
            {"start_time_unix_nano": START, "end_time_unix_nano": START - 1},
            "end_before_start",
            f"spans[1].end_time_unix_nano: {START - 1} is before start_time_unix_nano {START}",
        ),
        (
            {"start_time_unix_nano": NOW_NS - 3 * 86400 * 10**9, "end_time_unix_nano": NOW_NS - 2 * 86400 * 10**9},
            "too_old",
            f"spans[1].end_time_unix_nano: {NOW_NS - 2 * 86400 * 10**9} is 172800 s in the past, "
            "more than the accepted 86400 s",
        ),
        (
            {"start_time_unix_nano": NOW_NS, "end_time_unix_nano": NOW_NS + 3600 * 10**9},
            "too_new",
            f"spans[1].end_time_unix_nano: {NOW_NS + 3600 * 10**9} is 3600 s in the future, "
            "more than the accepted 300 s (check the sender's clock)",
        ),
        ({"end_time_unix_nano": 2**64 - 1}, "too_new", str(2**64 - 1)),
    ],
)
def test_invalid_span_is_rejected_with_its_path(fields: dict, reason: str, in_message: str) -> None:
    bad = {**span("bad"), **fields}
    request = trace_request([span("ok-0"), bad, span("ok-2")])
    decoded = decode(request)

    assert decoded.batch.name == ["ok-0", "ok-2"]
    assert decoded.rejected == 1
    assert dict(decoded.reasons) == {reason: 1}
    assert decoded.error_message.startswith("rejected 1 of 3 spans: 1 ")
    assert "(first: resource_spans[0].scope_spans[0].spans[1]" in decoded.error_message
    assert in_message in decoded.error_message
    # the kept rows stay aligned across columns
    assert len(decoded.batch.span_id) == len(decoded.batch.duration_ms) == len(decoded.batch.service) == 2


def test_many_reasons_counted_once_each_with_first_example() -> None:
    spans = [span(f"s{i}") for i in range(10)]
    spans[2]["trace_id"] = b"short"
    spans[2]["end_time_unix_nano"] = 1  # also ends before it starts: counted once, under the id
    spans[5]["end_time_unix_nano"] = spans[5]["start_time_unix_nano"] - 10
    spans[7]["end_time_unix_nano"] = spans[7]["start_time_unix_nano"] - 10
    request = trace_request(spans[:4], spans[4:])
    decoded = decode(request)

    assert decoded.rejected == 3
    assert dict(decoded.reasons) == {"bad_trace_id": 1, "end_before_start": 2}
    assert decoded.batch.name == ["s0", "s1", "s3", "s4", "s6", "s8", "s9"]
    message = decoded.error_message
    assert message.startswith("rejected 3 of 10 spans: ")
    first_bad_id = "(first: resource_spans[0].scope_spans[0].spans[2].trace_id"
    assert f"1 with a trace_id that is not 16 bytes {first_bad_id}" in message
    # span 5 is the second span of the second scope
    assert "2 ending before they start (first: resource_spans[0].scope_spans[1].spans[1].end_time_unix_nano" in message


def test_mixed_bad_id_lengths_do_not_shift_the_other_ids() -> None:
    """A 15-byte and a 17-byte trace id add up to the right total: each is still caught."""
    good = span("good", span_id=bytes.fromhex("0000000000000005"))
    request = trace_request([{**span("a"), "trace_id": b"x" * 15}, good, {**span("b"), "trace_id": b"y" * 17}])
    decoded = decode(request)
    assert decoded.rejected == 2
    assert decoded.batch.span_id.tolist() == [5]


def test_parent_ids_mixed_present_and_absent() -> None:
    spans = [span(f"s{i}", parent_span_id=(i + 1).to_bytes(8, "big") if i % 2 else b"") for i in range(6)]
    batch = decode(trace_request(spans)).batch
    assert batch.parent_span_id.tolist() == [0, 2, 0, 4, 0, 6]


def test_accepted_range_is_inclusive_and_configurable() -> None:
    at_edge = span("edge", start_ns=NOW_NS - 10**9 - 10, duration_ns=10)  # ends exactly now - 1 s
    decoded = decode(trace_request([at_edge]), max_age_s=1.0)
    assert decoded.rejected == 0
    assert decode(trace_request([at_edge]), max_age_s=0.5).rejected == 1
    future = span("future", start_ns=NOW_NS, duration_ns=60 * 10**9)
    assert decode(trace_request([future]), max_future_s=60).rejected == 0
    assert decode(trace_request([future]), max_future_s=59).rejected == 1
    assert decode(trace_request([future]), max_age_s=float("inf"), max_future_s=float("inf")).rejected == 0


def test_all_rejected() -> None:
    decoded = decode(trace_request([{**span(), "span_id": b""}] * 3))
    assert len(decoded.batch) == 0 and decoded.rejected == 3
    assert decoded.error_message.startswith("rejected 3 of 3 spans: 3 with a span_id that is not 8 bytes")


def test_decode_is_bulk_fast() -> None:
    """A regression guard far below the measured ~1.6 M spans/s (pure-Python protobuf would be ~300x slower)."""
    request = trace_request([span(f"GET /{i % 20}", parent_span_id=b"\x01" * 8 if i % 3 else b"") for i in range(1000)])
    data = request.SerializeToString()
    best = float("inf")
    for _ in range(20):
        parsed = ExportTraceServiceRequest.FromString(data)
        started = time.perf_counter()
        decode(parsed)
        best = min(best, time.perf_counter() - started)
    assert 1000 / best > 200_000, f"{1000 / best:,.0f} spans/s"


def test_require_upb(monkeypatch: pytest.MonkeyPatch) -> None:
    require_upb()  # this environment has the upb wheel
    monkeypatch.setattr(api_implementation, "Type", lambda: "python")
    monkeypatch.delenv("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", raising=False)
    with pytest.raises(RuntimeError, match=r"'python' backend, not 'upb'.*install the binary protobuf wheel"):
        require_upb()
    monkeypatch.setenv("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    with pytest.raises(RuntimeError, match="PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION='python' is set; unset it"):
        require_upb()


def test_a_malformed_resource_or_status_is_invalid_data_naming_it() -> None:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    from trm_otel.receivers.otlp_errors import InvalidData
    from trm_otel.receivers.otlp_slim import SlimTraceRequest

    request = SlimTraceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource = b"\x0a\xff"  # a length running past the end
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.start_time_unix_nano, span.end_time_unix_nano = b"\x01" * 16, b"\x01" * 8, 1, 2
    with pytest.raises(InvalidData, match=r"resource_spans\[0\]\.resource: not a valid Resource message"):
        decode_traces(request, max_age_s=float("inf"))
    resource_spans.resource = b""
    span.status = b"\x1a\xff"
    with pytest.raises(InvalidData, match="status is not a valid Status message"):
        decode_traces(request, max_age_s=float("inf"))
    # The slim form keeps every field it does not declare: it re-serializes to what arrived.
    full = trace_service_pb2.ExportTraceServiceRequest()
    full_span = full.resource_spans.add().scope_spans.add().spans.add()
    full_span.name = "op"
    attribute = full_span.attributes.add()
    attribute.key, attribute.value.string_value = "http.route", "/x"
    data = full.SerializeToString()
    assert SlimTraceRequest.FromString(data).SerializeToString() == data
