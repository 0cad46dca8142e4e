"""Dimensions: extra series labels from span (then resource) attributes, and the overflow they cause."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.processors.series import Dimension, SeriesRegistry
from trm_otel.query import Evaluator, MemorySource
from trm_otel.receivers.otlp_slim import attribute_values
from trm_otel.receivers.otlp_traces import decode_traces

DIMENSIONS = (Dimension("http.route"), Dimension("enduser.id", "anonymous"), Dimension("deployment.environment"))


def any_value(value: object) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    return common_pb2.AnyValue(string_value=str(value))


def request(spans: list[tuple[str, float, dict]], service: str = "shop", resource: dict | None = None,
            now_ns: int | None = None) -> trace_service_pb2.ExportTraceServiceRequest:
    """One resource of ``(name, duration ms, attributes)`` spans ending now."""
    now = time.time_ns() if now_ns is None else now_ns
    message = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    for key, value in {"service.name": service, **(resource or {})}.items():
        resource_spans.resource.attributes.add(key=key, value=any_value(value))
    scope = resource_spans.scope_spans.add()
    for i, (name, duration_ms, attributes) in enumerate(spans):
        span = scope.spans.add(
            trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name=name, kind=2,
            start_time_unix_nano=now - int(duration_ms * 1e6), end_time_unix_nano=now,
        )
        for key, value in attributes.items():
            span.attributes.add(key=key, value=any_value(value))
        event = span.events.add(name="retry", time_unix_nano=now)
        event.attributes.add(key="http.route", value=any_value("/from-an-event"))
    return message


def test_attribute_values_reads_each_type_and_ignores_event_attributes() -> None:
    message = request([
        ("a", 1.0, {"http.route": "/cart", "n": 7, "ok": True, "ratio": 0.25, "neg": -3}),
        ("b", 1.0, {"other": "x"}),
        ("c", 1.0, {"http.route": "é" * 300}),  # a two-byte length, cut at 256 characters
    ])
    raw = [span.SerializeToString() for span in message.resource_spans[0].scope_spans[0].spans]
    route, n, ok, ratio, neg = attribute_values(raw, ["http.route", "n", "ok", "ratio", "neg"])
    assert route == ["/cart", None, "é" * 256]  # b has the key only in an event: not a span attribute
    assert (n[0], ok[0], ratio[0], neg[0]) == ("7", "true", "0.25", "-3")


def test_registry_labels_use_defaults_and_leave_out_missing_dimensions() -> None:
    registry = SeriesRegistry(dimensions=DIMENSIONS)
    labels = registry[registry.series_id(("shop", "GET", 2, 0, "/cart", None, None))].attributes()
    assert labels == {
        "service.name": "shop", "span.name": "GET", "span.kind": "SPAN_KIND_SERVER",
        "status.code": "STATUS_CODE_UNSET", "http.route": "/cart", "enduser.id": "anonymous",
    }
    with pytest.raises(ValueError, match="must be unique and not one of"):
        SeriesRegistry(dimensions=(Dimension("span.name"),))


def test_dimensions_come_from_span_then_resource_attributes_and_split_series() -> None:
    aggregator = LatencyAggregator(window_s=10, dimensions=DIMENSIONS)
    decoded = decode_traces(
        request(
            [("GET", 10.0, {"http.route": "/a", "enduser.id": "u-1"}), ("GET", 20.0, {"http.route": "/b"}),
             ("GET", 30.0, {"http.route": "/a", "enduser.id": "u-1", "deployment.environment": "canary"})],
            resource={"deployment.environment": "prod"},
        ),
        max_age_s=3600,
    )
    assert aggregator.add_spans(decoded.batch) == 3
    labels = sorted(
        tuple(sorted((k, v) for k, v in aggregator.registry[i].attributes().items() if k not in ("span.kind",)))
        for i in range(len(aggregator.registry))
    )
    common = [("service.name", "shop"), ("span.name", "GET"), ("status.code", "STATUS_CODE_UNSET")]
    assert labels == sorted([
        tuple(sorted([*common, ("http.route", "/a"), ("enduser.id", "u-1"), ("deployment.environment", "prod")])),
        tuple(sorted([*common, ("http.route", "/b"), ("enduser.id", "anonymous"), ("deployment.environment", "prod")])),
        tuple(sorted([*common, ("http.route", "/a"), ("enduser.id", "u-1"), ("deployment.environment", "canary")])),
    ])
    # The endpoint view still merges the series of one span name.
    (endpoint,) = aggregator.endpoints(300)
    assert endpoint.ok.count == 3


def test_a_dimension_slices_p95_in_queries() -> None:
    aggregator = LatencyAggregator(window_s=10, dimensions=(Dimension("http.route"),))
    rng = np.random.default_rng(5)
    fast, slow = rng.lognormal(np.log(10), 0.3, 400), rng.lognormal(np.log(200), 0.3, 400)
    spans = [("GET", float(d), {"http.route": "/fast"}) for d in fast]
    spans += [("GET", float(d), {"http.route": "/slow"}) for d in slow]
    for start in range(0, len(spans), 100):
        aggregator.add_spans(decode_traces(request(spans[start : start + 100]), max_age_s=3600).batch)
    evaluator = Evaluator(MemorySource(aggregator, ScalarSeriesStore()))
    found = evaluator.instant("p95(traces.span.metrics.duration[5m]) by (http.route)", time_s=time.time() + 10)
    p95 = {sample.labels["http.route"]: sample.value for sample in found}
    assert p95["/fast"] == pytest.approx(np.quantile(fast, 0.95, method="inverted_cdf"), rel=0.01)
    assert p95["/slow"] == pytest.approx(np.quantile(slow, 0.95, method="inverted_cdf"), rel=0.01)


def test_crossing_the_cardinality_limit_folds_into_overflow_and_names_the_dimension(
    caplog: pytest.LogCaptureFixture,
) -> None:
    aggregator = LatencyAggregator(window_s=10, cardinality_limit=5, dimensions=(Dimension("http.route"),))
    spans = [("GET", 5.0, {"http.route": f"/item/{i}"}) for i in range(40)]
    with caplog.at_level(logging.WARNING, logger="trm_otel.series"):
        aggregator.add_spans(decode_traces(request(spans), max_age_s=3600).batch)
    attributes = [aggregator.registry[i].attributes() for i in range(len(aggregator.registry))]
    overflow = [a for a in attributes if a.get("otel.metric.overflow")]
    assert len(attributes) == 6 and len(overflow) == 1
    assert aggregator.registry.overflow_by_dimension() == {("shop", "http.route"): 35}
    (message,) = [r.getMessage() for r in caplog.records]
    assert "service 'shop' reached cardinality_limit 5" in message
    assert "http.route has the most distinct values (6)" in message  # when the first key folded
    assert "http.route (40)" in aggregator.registry.overflow_summary()
    (folded,) = [d for d in aggregator.endpoints(300) if d.endpoint == "(overflow)"]
    assert folded.ok.count == 35


@pytest.mark.parametrize(
    ("dimensions", "message"),
    [
        ([{"name": "http.route"}, {"name": "http.route"}],
         "processors.latency.dimensions: dimension 'http.route' is listed more than once"),
        ([{"name": "span.name"}], "processors.latency.dimensions[0].name: 'span.name' is already a label of every"),
        ([{"name": "a", "defualt": "x"}], "processors.latency.dimensions[0].defualt: unknown key (did you mean 'default'?)"),
        ([{"name": f"d{i}"} for i in range(9)], "processors.latency.dimensions: "),
    ],
)
def test_dimension_config_errors_name_the_key(dimensions: list, message: str) -> None:
    from trm_otel.config import latency_processor_config
    from trm_otel.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        latency_processor_config(dimensions=dimensions)
    assert str(caught.value).startswith(message), str(caught.value)


def test_dimension_config_builds_the_aggregator_dimensions() -> None:
    from trm_otel.config import parse_config

    config = parse_config({"processors": {"latency": {
        "dimensions": [{"name": "http.route"}, {"name": "enduser.id", "default": "anonymous"}],
        "exemplars": {"slowest": 5, "sampled": 0},
    }}})
    latency = config.latency()
    assert [(d.name, d.default) for d in latency.dimensions] == [("http.route", None), ("enduser.id", "anonymous")]
    assert (latency.exemplars.slowest, latency.exemplars.sampled) == (5, 0)
