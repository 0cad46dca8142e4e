"""OTLP export against a real gRPC server: spanmetrics arrive and their quantiles match."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.trace import Status, StatusCode

import trm_otel
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.spanmetrics import CALLS_METRIC, DURATION_METRIC

from .otlp_sink import HttpOtlpSink, OtlpSink


def attributes(point) -> dict:
    return {kv.key: kv.value.string_value or kv.value.bool_value for kv in point.attributes}


def test_spanmetrics_exponential_histogram_arrives_with_matching_quantiles() -> None:
    rng = np.random.default_rng(3)
    durations = rng.lognormal(np.log(80), 0.7, 2000)
    with OtlpSink() as sink:
        telemetry = trm_otel.configure(service_name="shop", otlp_endpoint=sink.endpoint, set_global=False)
        tracer = telemetry.tracer_provider.get_tracer("test")
        now = time.time_ns()
        for i, duration in enumerate(durations.tolist()):
            end = now - i * 1_000_000
            span = tracer.start_span("GET /cart", start_time=end - int(duration * 1e6))
            if i % 50 == 0:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=end)
        telemetry.shutdown()

        durations_points = sink.metric_points(DURATION_METRIC)
        calls_points = sink.metric_points(CALLS_METRIC)
        traces = sum(len(ss.spans) for r in sink.traces for rs in r.resource_spans for ss in rs.scope_spans)

    assert traces == 2000, "the spans themselves also went out by OTLP"
    latest = {}
    for resource, point in durations_points:
        assert resource["service.name"] == "shop"
        assert isinstance(point, metrics_pb2.ExponentialHistogramDataPoint)
        latest[attributes(point)["status.code"]] = point
    assert set(latest) == {"STATUS_CODE_UNSET", "STATUS_CODE_ERROR"}
    ok = latest["STATUS_CODE_UNSET"]
    assert attributes(ok) == {
        "service.name": "shop",
        "span.name": "GET /cart",
        "span.kind": "SPAN_KIND_INTERNAL",
        "status.code": "STATUS_CODE_UNSET",
    }
    merged = ExponentialHistogram.from_proto(ok)
    merged.merge(ExponentialHistogram.from_proto(latest["STATUS_CODE_ERROR"]))
    assert merged.count == 2000
    ordered = np.sort(durations)
    for q in (0.5, 0.95, 0.99):
        truth = ordered[max(1, math.ceil(q * 2000)) - 1]
        assert merged.quantile(q) == pytest.approx(truth, rel=0.01)
    assert ok.start_time_unix_nano < ok.time_unix_nano

    calls = {attributes(p)["status.code"]: p.as_int for _, p in calls_points}
    assert calls == {"STATUS_CODE_UNSET": 1960, "STATUS_CODE_ERROR": 40}


def test_http_protobuf_export_reaches_a_real_http_endpoint() -> None:
    with HttpOtlpSink() as sink:
        telemetry = trm_otel.configure(
            service_name="shop", otlp_endpoint=sink.endpoint, otlp_protocol="http/protobuf", set_global=False
        )
        tracer = telemetry.tracer_provider.get_tracer("test")
        tracer.start_span("GET /x").end()
        telemetry.shutdown()
    assert "/v1/traces" in sink.bodies
    assert {DURATION_METRIC, CALLS_METRIC, "trm_otel.spans.accepted"} <= sink.metric_names()


def test_unknown_protocol_is_rejected() -> None:
    with pytest.raises(trm_otel.ConfigError, match="otlp_protocol"):
        trm_otel.configure(otlp_endpoint="127.0.0.1:4317", otlp_protocol="udp", set_global=False)  # type: ignore[arg-type]
