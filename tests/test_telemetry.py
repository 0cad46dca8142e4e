"""End to end through the real OTel SDK: spans and meters in, views out."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import Status, StatusCode

import trm_otel
from trm_otel import ConfigError, LatencyView


def exact(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


@pytest.fixture
def telemetry():
    handle = trm_otel.configure(service_name="shop", set_global=False, system_metrics=False)
    yield handle
    handle.shutdown()


def emit(tracer, name: str, durations_ms: np.ndarray, *, errors_every: int = 0, spread_s: float = 60.0) -> None:
    """Spans with explicit start/end times, ends spread over the last ``spread_s``."""
    now = time.time_ns()
    for i, duration in enumerate(durations_ms.tolist()):
        end = now - int(spread_s * 1e9 * i / len(durations_ms))
        span = tracer.start_span(name, start_time=end - int(duration * 1e6))
        if errors_every and i % errors_every == 0:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)


def test_spans_read_back_with_exact_counts_errors_and_percentiles(telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    rng = np.random.default_rng(1)
    durations = rng.lognormal(np.log(40), 0.6, 3000)
    emit(tracer, "GET /cart", durations, errors_every=10)
    emit(tracer, "GET /products", rng.lognormal(np.log(5), 0.3, 500))

    views = telemetry.latency(range="5m")
    assert [v.endpoint for v in views] == ["GET /cart", "GET /products"]
    cart = views[0]
    assert isinstance(cart, LatencyView)
    assert (cart.service, cart.count, cart.errors) == ("shop", 3000, 300)
    assert cart.error_rate == pytest.approx(0.1)
    for q, got in ((0.5, cart.p50_ms), (0.95, cart.p95_ms), (0.99, cart.p99_ms)):
        assert got == pytest.approx(exact(durations, q), rel=0.01)
    assert cart.max_ms == pytest.approx(durations.max(), rel=1e-6)
    assert cart.rps == pytest.approx(3000 / 60, rel=0.25)
    assert 0 < cart.apdex <= 1
    assert cart.level in ("excellent", "good", "fair", "poor", "critical")
    assert not cart.approximate


def test_latency_collects_first_so_a_just_ended_span_counts(telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("GET /now"):
        pass
    (view,) = telemetry.latency(endpoint="GET /now")
    assert view.count == 1


def test_filters_by_service_and_endpoint(telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    emit(tracer, "GET /a", np.full(10, 5.0))
    emit(tracer, "GET /b", np.full(7, 5.0))
    assert [v.count for v in telemetry.latency(endpoint="GET /b")] == [7]
    assert telemetry.latency(service="other") == []


def test_level_follows_the_endpoint_slo() -> None:
    slo = {"default": {"p95_ms": 1000}, "services": {"shop": {"endpoints": {"GET /slow": {"p95_ms": 10}}}}}
    with trm_otel.configure(service_name="shop", slo=slo, set_global=False) as telemetry:
        tracer = telemetry.tracer_provider.get_tracer("test")
        emit(tracer, "GET /slow", np.full(100, 100.0))
        emit(tracer, "GET /fast", np.full(100, 100.0))
        levels = {v.endpoint: v.level for v in telemetry.latency()}
    assert levels == {"GET /fast": "excellent", "GET /slow": "critical"}


def test_range_limits_what_is_merged(telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    now = time.time_ns()
    for age_s in (5, 100, 1000):
        span = tracer.start_span("GET /aged", start_time=now - int(age_s * 1e9) - 1_000_000)
        span.end(end_time=now - int(age_s * 1e9))
    counts = {r: telemetry.latency(range=r)[0].count for r in ("30s", "5m", "1h")}
    assert counts == {"30s": 1, "5m": 2, "1h": 3}


def test_cardinality_limit_folds_extra_span_names_into_an_overflow_series() -> None:
    with trm_otel.configure(service_name="shop", cardinality_limit=3, set_global=False) as telemetry:
        tracer = telemetry.tracer_provider.get_tracer("test")
        for i in range(8):
            emit(tracer, f"GET /user/{i}", np.full(5, 2.0))
        emit(tracer, "GET /user/9", np.full(2, 2.0), errors_every=1)
        views = {v.endpoint: v for v in telemetry.latency()}
    assert sorted(views) == ["(overflow)", "GET /user/0", "GET /user/1", "GET /user/2"]
    overflow = views["(overflow)"]
    assert (overflow.count, overflow.errors) == (27, 2), "errors stay errors in the overflow series"
    assert sum(v.count for v in views.values()) == 42
    assert telemetry.aggregator.registry.overflowed_keys() == {"shop": 6}


def test_bottlenecks_point_at_the_child_that_dominates_its_parent(telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    now = time.time_ns()
    for i in range(50):
        end = now - i * 100_000_000
        parent = tracer.start_span("POST /checkout", start_time=end - 100_000_000)
        context = trace.set_span_in_context(parent)
        child = tracer.start_span("SELECT orders", context=context, start_time=end - 95_000_000)
        child.end(end_time=end - 15_000_000)
        other = tracer.start_span("cache.get", context=context, start_time=end - 10_000_000)
        other.end(end_time=end - 9_000_000)
        parent.end(end_time=end)
    found = telemetry.bottlenecks(range="5m")
    dominant = [b for b in found if b.kind == "dominant_child"]
    assert len(dominant) == 1
    assert dominant[0].endpoint == "SELECT orders"
    assert dominant[0].evidence["parent_endpoint"] == "POST /checkout"
    assert dominant[0].evidence["child_share"] == pytest.approx(0.8, rel=1e-3)
    assert "80%" in dominant[0].summary
    assert found == sorted(found, key=lambda b: b.score, reverse=True)


def test_trends_see_a_rising_p95(telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    window_ns = 10_000_000_000
    current = time.time_ns() // window_ns * window_ns
    for w in range(30):  # 30 whole windows, oldest first, P95 rising 10 ms per window
        end_base = current - (30 - w) * window_ns + 1_000_000_000
        for i in range(40):
            duration_ms = 50 + 10 * w + i * 0.5
            end = end_base + i * 100_000_000
            span = tracer.start_span("GET /report", start_time=end - int(duration_ms * 1e6))
            span.end(end_time=end)
    (trend,) = telemetry.trends(range="10m")
    assert trend.direction == "degrading"
    assert trend.p95_ms.slope == pytest.approx(1.0, rel=0.1)  # 10 ms per 10 s window
    assert trend.throughput_direction == "stable"


def test_asgi_duration_metrics_become_views_and_are_not_double_counted(telemetry) -> None:
    meter = telemetry.meter_provider.get_meter("opentelemetry.instrumentation.asgi")
    stable = meter.create_histogram("http.server.request.duration", unit="s")
    # An old-conventions instrumentation in another scope (dup within one scope is tested with ASGI itself).
    old = telemetry.meter_provider.get_meter("opentelemetry.instrumentation.wsgi").create_histogram(
        "http.server.duration", unit="ms"
    )
    for value in (0.010, 0.020, 0.030, 0.040):
        stable.record(value, {"http.request.method": "GET", "http.route": "/items/{id}", "http.response.status_code": 200})
    stable.record(0.5, {"http.request.method": "GET", "http.route": "/items/{id}", "http.response.status_code": 503})
    old.record(7.0, {"http.method": "POST", "http.target": "/legacy", "http.status_code": 201})
    views = {v.endpoint: v for v in telemetry.latency()}
    assert set(views) == {"GET /items/{id}", "POST /legacy"}
    items = views["GET /items/{id}"]
    assert (items.count, items.errors) == (5, 1)
    assert items.p50_ms == pytest.approx(30.0, rel=0.01)
    assert items.max_ms == pytest.approx(500.0, rel=0.01)
    assert views["POST /legacy"].p50_ms == pytest.approx(7.0, rel=0.01)

    # The same endpoint also traced: spans win, the metric is not added on top.
    tracer = telemetry.tracer_provider.get_tracer("test")
    emit(tracer, "GET /items/{id}", np.full(3, 10.0))
    stable.record(0.010, {"http.request.method": "GET", "http.route": "/items/{id}", "http.response.status_code": 200})
    assert {v.endpoint: v.count for v in telemetry.latency()}["GET /items/{id}"] == 3


def test_bad_arguments_raise_config_errors_naming_them() -> None:
    with pytest.raises(ConfigError) as caught:
        trm_otel.configure(window="ten seconds", slo={"default": {"p95_ms": -1}}, set_global=False)
    assert "slo.default.p95_ms" in str(caught.value)
    with pytest.raises(ConfigError, match="window: .*not a duration"):
        trm_otel.configure(window="ten seconds", set_global=False)
    with pytest.raises(ConfigError, match="otlp_endpoint: not host:port"):
        trm_otel.configure(otlp_endpoint="nowhere", set_global=False)
    with pytest.raises(ConfigError, match="cardinality_limit"):
        trm_otel.configure(cardinality_limit=0, set_global=False)


def test_bad_range_is_a_config_error(telemetry) -> None:
    with pytest.raises(ConfigError, match="range: not a duration"):
        telemetry.latency(range="yesterday")


def test_pipeline_counters_are_exported_as_otel_metrics() -> None:
    memory = InMemoryMetricReader()
    with trm_otel.configure(service_name="shop", set_global=False, metric_readers=[memory]) as telemetry:
        tracer = telemetry.tracer_provider.get_tracer("test")
        now = time.time_ns()
        tracer.start_span("GET /bad", start_time=now).end(end_time=now - 5)
        tracer.start_span("GET /ok", start_time=now - 5).end(end_time=now)
        telemetry.latency()
        data = memory.get_metrics_data()
    points = {
        (m.name, tuple(sorted((p.attributes or {}).items()))): p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name.startswith("trm_otel.spans.")
        for p in m.data.data_points
    }
    assert points[("trm_otel.spans.accepted", ())] == 1
    assert points[("trm_otel.spans.rejected", (("reason", "end_before_start"),))] == 1


def test_shutdown_twice_is_safe_and_reads_still_answer() -> None:
    telemetry = trm_otel.configure(service_name="shop", set_global=False)
    tracer = telemetry.tracer_provider.get_tracer("test")
    emit(tracer, "GET /x", np.full(4, 1.0))
    telemetry.shutdown()
    telemetry.shutdown()
    assert telemetry.latency()[0].count == 4
