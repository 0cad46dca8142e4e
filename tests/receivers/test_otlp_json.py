"""parse_json: OTLP/JSON (hex ids, int64 strings, int enums, unknown fields) -> the protobuf request."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from trm_otel.receivers.otlp_errors import InvalidData
from trm_otel.receivers.otlp_json import parse_json

TRACE_HEX = "5B8EFFF798038103D269B633813FC60C"
SPAN_HEX = "EEE19B7EC3C1B174"


def traces_body(**span_fields: Any) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span_fields]}]}]}).encode()


def first_span(request: ExportTraceServiceRequest) -> Any:
    return request.resource_spans[0].scope_spans[0].spans[0]


def test_spec_example_shape() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "spans": [
                            {
                                "traceId": TRACE_HEX,
                                "spanId": SPAN_HEX.lower(),
                                "parentSpanId": "",
                                "name": "I'm a server span",
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": 1544712661000000000,
                                "kind": 2,
                                "status": {"code": 2, "message": "boom"},
                                "links": [{"traceId": TRACE_HEX.lower(), "spanId": SPAN_HEX}],
                                "attributes": [{"key": "n", "value": {"intValue": "42"}}],
                                "someFutureField": {"nested": [1, 2]},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    request = parse_json(json.dumps(body).encode(), ExportTraceServiceRequest)
    span = first_span(request)
    assert span.trace_id == bytes.fromhex(TRACE_HEX)
    assert span.span_id == bytes.fromhex(SPAN_HEX)
    assert span.parent_span_id == b""
    assert span.start_time_unix_nano == 1544712660000000000  # int64 as a string
    assert span.end_time_unix_nano == 1544712661000000000  # ... or as a number
    assert span.kind == 2 and span.status.code == 2
    assert span.links[0].trace_id == bytes.fromhex(TRACE_HEX) and span.links[0].span_id == bytes.fromhex(SPAN_HEX)
    assert span.attributes[0].value.int_value == 42
    assert request.resource_spans[0].resource.attributes[0].value.string_value == "my.service"


def test_round_trip_of_real_sdk_spans() -> None:
    """SDK spans -> protobuf -> OTLP/JSON (ids rewritten as hex) -> parse_json == the original protobuf."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("child", links=[Link(root.get_span_context())]):
            pass
    original = encode_spans(memory.get_finished_spans())
    document = json_format.MessageToDict(original)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for holder in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in holder:
                            holder[key] = base64.b64decode(holder[key]).hex().upper()
    assert parse_json(json.dumps(document), ExportTraceServiceRequest) == original


def test_log_record_and_exemplar_ids_are_hex() -> None:
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX}]}]}]}
    record = parse_json(json.dumps(logs), ExportLogsServiceRequest).resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id.hex().upper() == TRACE_HEX and record.span_id.hex().upper() == SPAN_HEX

    exemplar = {"asDouble": 1.5, "traceId": TRACE_HEX, "spanId": SPAN_HEX}
    metrics = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {"name": "h", "histogram": {"dataPoints": [{"count": "3", "exemplars": [exemplar]}]}},
                            {
                                "name": "s",
                                "sum": {"aggregationTemporality": 1, "dataPoints": [{"exemplars": [exemplar]}]},
                            },
                        ]
                    }
                ]
            }
        ]
    }
    request = parse_json(json.dumps(metrics), ExportMetricsServiceRequest)
    histogram, total = request.resource_metrics[0].scope_metrics[0].metrics
    assert histogram.histogram.data_points[0].count == 3
    assert histogram.histogram.data_points[0].exemplars[0].trace_id.hex().upper() == TRACE_HEX
    assert total.sum.data_points[0].exemplars[0].span_id.hex().upper() == SPAN_HEX
    assert total.sum.aggregation_temporality == 1


def test_proto_field_names_get_hex_ids_too() -> None:
    body = {"resource_spans": [{"scope_spans": [{"spans": [{"trace_id": TRACE_HEX, "span_id": SPAN_HEX}]}]}]}
    span = first_span(parse_json(json.dumps(body), ExportTraceServiceRequest))
    assert span.trace_id == bytes.fromhex(TRACE_HEX) and span.span_id == bytes.fromhex(SPAN_HEX)


def test_empty_object_is_an_empty_request() -> None:
    assert parse_json(b"{}", ExportTraceServiceRequest) == ExportTraceServiceRequest()


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (traces_body(traceId="xyz!"), "resourceSpans[0].scopeSpans[0].spans[0].traceId", "must be a hex string"),
        (traces_body(spanId="abc"), "resourceSpans[0].scopeSpans[0].spans[0].spanId", "must be a hex string"),
        (traces_body(parentSpanId=12), "resourceSpans[0].scopeSpans[0].spans[0].parentSpanId", "got a number"),
        (
            traces_body(links=[{}, {"spanId": "zz"}]),
            "resourceSpans[0].scopeSpans[0].spans[0].links[1].spanId",
            "must be a hex string",
        ),
        (
            traces_body(startTimeUnixNano="soon"),
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano",
            "invalid literal for int()",
        ),
        (traces_body(name=5), "resourceSpans[0].scopeSpans[0].spans[0].name", "expected string"),
        (
            json.dumps({"resourceSpans": [{}, {"scopeSpans": [{"spans": {"not": "a list"}}]}]}).encode(),
            "resourceSpans[1].scopeSpans[0].spans",
            "must be a JSON array, got an object",
        ),
        (json.dumps({"resourceSpans": [7]}).encode(), "resourceSpans[0]", "must be a JSON object, got a number"),
    ],
)
def test_bad_values_name_the_field(body: bytes, field: str, problem: str) -> None:
    with pytest.raises(InvalidData) as caught:
        parse_json(body, ExportTraceServiceRequest)
    assert caught.value.field == field
    assert problem in caught.value.message
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body is not valid JSON"),
        (b"\xff\xfe", "request body is not valid JSON"),
        (b"[]", "request body must be a JSON object, got an array"),
        (b'"text"', "request body must be a JSON object, got a string"),
    ],
)
def test_unparsable_bodies(body: bytes, problem: str) -> None:
    with pytest.raises(InvalidData, match=problem):
        parse_json(body, ExportTraceServiceRequest)
