"""OTLP metric requests, as the real Python SDK encodes them, become windows.

Each request here is what ``OTLPMetricExporter`` would send: a MeterProvider
with an ``InMemoryMetricReader`` (cumulative or delta), encoded by the
exporter's own ``encode_metrics``. Only the timestamps are then pinned, so
every point lands in a known 10 s window of a fake clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.otlp_metrics import DEFAULT_MAX_STREAMS, OtlpMetricsIngest
from trm_otel.processors.scalar_series import ScalarSeriesStore

T0 = 1_700_000_000.0  # the daemon starts here; windows are [T0 + 10k, T0 + 10k + 10)
ROUTE_A = {"http.request.method": "GET", "http.route": "/a", "http.response.status_code": 200}


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class App:
    """One instrumented process: a MeterProvider whose reader we collect by hand."""

    def __init__(self, service: str = "shop", *, delta: bool = False, exponential: bool = True) -> None:
        temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
        self.reader = InMemoryMetricReader(
            preferred_temporality={Histogram: temporality, Counter: temporality, UpDownCounter: temporality}
        )
        views = [View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())]
        self.provider = MeterProvider(
            metric_readers=[self.reader],
            resource=Resource.create({"service.name": service}),
            views=views if exponential else [],
        )
        self.meter = self.provider.get_meter("app.http")

    def request(self, at: float, start: float | None = None) -> ExportMetricsServiceRequest:
        """The OTLP request of one collection, stamped at ``at`` (and ``start``)."""
        request = encode_metrics(self.reader.get_metrics_data())
        for point in _points(request):
            point.time_unix_nano = int(at * 1e9)
            if start is not None:
                point.start_time_unix_nano = int(start * 1e9)
        return request


def _points(request: ExportMetricsServiceRequest) -> Iterator[Any]:
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                yield from getattr(metric, metric.WhichOneof("data")).data_points


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def aggregator(clock: Clock) -> LatencyAggregator:
    return LatencyAggregator(window_s=10, clock=clock)


@pytest.fixture
def store(clock: Clock) -> ScalarSeriesStore:
    return ScalarSeriesStore(window_s=10, clock=clock)


@pytest.fixture
def ingest(aggregator: LatencyAggregator, store: ScalarSeriesStore, clock: Clock) -> OtlpMetricsIngest:
    return OtlpMetricsIngest(aggregator, store, clock=clock)


def window_counts(aggregator: LatencyAggregator, clock: Clock) -> dict[float, int]:
    """Requests per closed window (offset from T0), all series merged."""
    clock.t = T0 + 1000
    counts: dict[float, int] = {}
    for series in aggregator.window_series(2000):
        for start, n in zip(series.window_start_s.tolist(), series.counts.tolist()):
            if n:
                counts[start - T0] = counts.get(start - T0, 0) + n
    return counts


# ----------------------------------------------------------- latency, cumulative


def test_cumulative_exponential_sequence_gives_exact_window_counts(ingest, aggregator, clock) -> None:
    app = App()
    duration = app.meter.create_histogram("http.server.request.duration", unit="s")
    for v in (0.010, 0.020, 0.030):
        duration.record(v, ROUTE_A)
    ingest.consume(app.request(at=T0 + 15, start=T0 + 1))  # began after us: taken whole
    for v in (0.040, 0.050, 4.0):  # 4 s widens the range: the SDK downscales its buckets
        duration.record(v, ROUTE_A)
    ingest.consume(app.request(at=T0 + 25, start=T0 + 1))
    ingest.consume(app.request(at=T0 + 35, start=T0 + 1))  # nothing new: an empty delta

    assert window_counts(aggregator, clock) == {10.0: 3, 20.0: 3}
    (data,) = aggregator.endpoints(2000)
    assert (data.service, data.endpoint, data.ok.count, data.errors.count) == ("shop", "GET /a", 6, 0)
    assert data.ok.sum == pytest.approx(4150.0)
    assert data.ok.max == 4000.0 and not data.ok.approximate
    expected = ExponentialHistogram()
    expected.record([10.0, 20.0, 30.0, 40.0, 50.0, 4000.0])
    # 10 ms .. 4 s in the SDK's 160 buckets needs scale 4: buckets 4.4% wide.
    assert data.ok.scale == 4
    for q in (0.25, 0.5, 0.75):
        assert data.ok.quantile(q) == pytest.approx(expected.quantile(q), rel=0.045)
    stats = ingest.stats
    assert stats.taken == {"latency": 2}
    assert stats.skipped == {"empty": 1}
    assert (stats.resets, stats.streams) == (0, 1)


def test_second_window_holds_only_the_difference(ingest, aggregator, clock) -> None:
    app = App()
    duration = app.meter.create_histogram("http.server.request.duration", unit="s")
    duration.record(0.010, ROUTE_A)
    ingest.consume(app.request(at=T0 + 15, start=T0 + 1))
    for v in (0.100, 0.200):
        duration.record(v, ROUTE_A)
    ingest.consume(app.request(at=T0 + 25, start=T0 + 1))
    clock.t = T0 + 30
    (second,) = aggregator.window_series(10)  # only the window [T0+20, T0+30)
    assert second.counts.tolist() == [2]
    assert second.p95_ms[0] == pytest.approx(200.0, rel=0.01)  # the max moved: exact


def test_reset_takes_the_new_point_whole(ingest, aggregator, clock) -> None:
    first = App()
    duration = first.meter.create_histogram("http.server.request.duration", unit="s")
    for v in (0.01, 0.02, 0.03, 0.04):
        duration.record(v, ROUTE_A)
    ingest.consume(first.request(at=T0 + 15, start=T0 + 1))

    restarted = App()  # the process restarted: a new start time, counts from zero
    duration = restarted.meter.create_histogram("http.server.request.duration", unit="s")
    for v in (0.5, 0.6, 0.7):
        duration.record(v, ROUTE_A)
    ingest.consume(restarted.request(at=T0 + 25, start=T0 + 21))

    again = App()  # restarted without a new start time: the count went down
    duration = again.meter.create_histogram("http.server.request.duration", unit="s")
    for v in (0.5, 0.6):
        duration.record(v, ROUTE_A)
    ingest.consume(again.request(at=T0 + 35, start=T0 + 21))

    assert window_counts(aggregator, clock) == {10.0: 4, 20.0: 3, 30.0: 2}
    assert ingest.stats.resets == 2


def test_a_bucket_that_went_down_is_a_reset(ingest, aggregator, clock) -> None:
    app = App()
    duration = app.meter.create_histogram("http.server.request.duration", unit="s")
    for v in (0.01, 0.01, 0.01):
        duration.record(v, ROUTE_A)
    ingest.consume(app.request(at=T0 + 15, start=T0 + 1))
    other = App()  # same start, more requests in total, but fewer at 10 ms
    duration = other.meter.create_histogram("http.server.request.duration", unit="s")
    for v in (0.01, 0.5, 0.6, 0.7):
        duration.record(v, ROUTE_A)
    ingest.consume(other.request(at=T0 + 25, start=T0 + 1))
    assert window_counts(aggregator, clock) == {10.0: 3, 20.0: 4}
    assert ingest.stats.resets == 1


latencies = st.lists(st.floats(min_value=0.0, max_value=1e5, allow_subnormal=False), max_size=40)


@settings(max_examples=150, deadline=None)
@given(before=latencies, after=latencies, max_size=st.integers(4, 160))
def test_cumulative_difference_is_the_new_values_at_the_common_scale(
    before: list[float], after: list[float], max_size: int
) -> None:
    """Any SDK's cumulative pair: the window gets exactly what was recorded in between."""
    clock = Clock()
    aggregator = LatencyAggregator(window_s=10, clock=clock)
    ingest = OtlpMetricsIngest(aggregator, ScalarSeriesStore(window_s=10, clock=clock), clock=clock)
    cumulative = ExponentialHistogram(max_scale=8, max_size=max_size)
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="http.server.duration", unit="ms")
    metric.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    for at, values in ((15, before), (25, after)):
        cumulative.record(values)  # downscales as the range grows, like the SDK
        point = cumulative.to_proto({"http.route": "/a"}, start_time_unix_nano=1, time_unix_nano=int((T0 + at) * 1e9))
        metric.exponential_histogram.data_points.append(point)
    ingest.consume(request)  # the first point began before us: only the second one's difference counts

    expected = ExponentialHistogram(max_scale=8, max_size=max_size)
    expected.record(after)
    found = aggregator.endpoints(2000)
    if not after:
        assert found == [] and ingest.stats.skipped == {"baseline": 1, "empty": 1}
        return
    (data,) = found
    delta = data.ok
    expected.downscale(expected.scale - cumulative.scale)
    if expected.counts.size == 0:  # only zeros: no positive buckets, so the scale says nothing
        assert delta.counts.size == 0
    else:
        assert (delta.scale, delta.offset, delta.counts.tolist()) == (
            expected.scale,
            expected.offset,
            expected.counts.tolist(),
        )
    assert (delta.count, delta.zero_count) == (len(after), expected.zero_count)
    assert delta.sum == pytest.approx(sum(after), rel=1e-9, abs=1e-6)
    assert delta.min <= min(after) and delta.max >= max(after)


def test_history_before_the_daemon_is_a_baseline(ingest, aggregator, clock) -> None:
    app = App()
    duration = app.meter.create_histogram("http.server.request.duration", unit="s")
    for v in (0.01, 0.02, 0.03):
        duration.record(v, ROUTE_A)
    ingest.consume(app.request(at=T0 + 15, start=T0 - 3600))  # began an hour before us
    duration.record(0.04, ROUTE_A)
    ingest.consume(app.request(at=T0 + 25, start=T0 - 3600))
    assert window_counts(aggregator, clock) == {20.0: 1}
    assert ingest.stats.skipped == {"baseline": 1}


def test_a_retried_request_is_stale(ingest, aggregator, clock) -> None:
    app = App()
    duration = app.meter.create_histogram("http.server.request.duration", unit="s")
    duration.record(0.01, ROUTE_A)
    request = app.request(at=T0 + 15, start=T0 + 1)
    ingest.consume(request)
    ingest.consume(request)
    assert window_counts(aggregator, clock) == {10.0: 1}
    assert ingest.stats.skipped == {"stale": 1}


def test_cumulative_explicit_buckets_are_exact_per_window_and_approximate(ingest, aggregator, clock) -> None:
    app = App(exponential=False)
    duration = app.meter.create_histogram(
        "http.server.duration", unit="ms", explicit_bucket_boundaries_advisory=[10, 25, 50, 100, 250, 500]
    )
    errors = {"http.method": "POST", "http.target": "/pay", "http.status_code": 503}
    for v in (12.0, 30.0, 80.0):
        duration.record(v, errors)
    ingest.consume(app.request(at=T0 + 15, start=T0 + 1))
    for v in (200.0, 220.0):
        duration.record(v, errors)
    ingest.consume(app.request(at=T0 + 25, start=T0 + 1))

    assert window_counts(aggregator, clock) == {10.0: 3, 20.0: 2}
    (data,) = aggregator.endpoints(2000)
    assert (data.endpoint, data.ok.count, data.errors.count) == ("POST /pay", 0, 5)
    assert data.errors.approximate
    assert data.errors.sum == pytest.approx(542.0)
    assert 100.0 < data.errors.quantile(0.8) <= 250.0  # inside the right explicit bucket


# --------------------------------------------------------------- latency, delta


@pytest.mark.parametrize("exponential", [True, False], ids=["exponential", "explicit"])
def test_delta_points_are_taken_as_they_are(ingest, aggregator, clock, exponential: bool) -> None:
    app = App(delta=True, exponential=exponential)
    duration = app.meter.create_histogram("http.server.request.duration", unit="s")
    for v in (0.01, 0.02):
        duration.record(v, ROUTE_A)
    ingest.consume(app.request(at=T0 + 15))
    duration.record(0.03, ROUTE_A)
    ingest.consume(app.request(at=T0 + 25))
    assert window_counts(aggregator, clock) == {10.0: 2, 20.0: 1}
    assert aggregator.endpoints(2000)[0].ok.approximate is not exponential
    assert ingest.stats.streams == 0  # deltas need no memory


def test_points_too_old_for_the_aggregator_are_counted(ingest, aggregator) -> None:
    app = App(delta=True)
    app.meter.create_histogram("http.server.request.duration", unit="s").record(0.01, ROUTE_A)
    ingest.consume(app.request(at=T0 - 2 * 3600))
    assert ingest.stats.skipped == {"outside_history": 1}
    assert aggregator.endpoints(10_000) == []


# ------------------------------------------------------------------- http/dup


def _dup_app(stable_route: bool) -> App:
    """An instrumentation in ``http/dup`` mode: every request under both names."""
    app = App(delta=True)
    stable = app.meter.create_histogram("http.server.request.duration", unit="s")
    old = app.meter.create_histogram("http.server.duration", unit="ms")
    for i, seconds in enumerate((0.01, 0.02, 0.03, 0.04)):
        stable_attributes = {"http.request.method": "GET", "http.response.status_code": 200}
        if stable_route:
            stable_attributes["http.route"] = "/items/{id}"
        stable.record(seconds, stable_attributes)
        old.record(seconds * 1000, {"http.method": "GET", "http.target": "/items/{id}", "http.status_code": 200})
    return app


@pytest.mark.parametrize(
    ("stable_route", "endpoint"),
    [(True, "GET /items/{id}"), (False, "GET /items/{id}")],  # unrouted: the old name's http.target, not "GET"
    ids=["stable-routed", "stable-unrouted"],
)
def test_http_dup_counts_each_request_once(ingest, aggregator, clock, stable_route: bool, endpoint: str) -> None:
    app = _dup_app(stable_route)
    ingest.consume(app.request(at=T0 + 15))
    (data,) = aggregator.endpoints(2000)
    assert (data.endpoint, data.ok.count) == (endpoint, 4)
    assert ingest.stats.skipped == {"http_dup": 1}
    assert ingest.stats.taken == {"latency": 1}


def test_dup_rule_is_per_scope(ingest, aggregator) -> None:
    app = App(delta=True)
    # Two instrumentations (scopes), each recording its own requests under one name.
    app.provider.get_meter("wsgi").create_histogram("http.server.duration", unit="ms").record(
        5.0, {"http.method": "GET", "http.target": "/old"}
    )
    app.meter.create_histogram("http.server.request.duration", unit="s").record(0.005, ROUTE_A)
    ingest.consume(app.request(at=T0 + 15))
    assert sorted((d.endpoint, d.ok.count) for d in aggregator.endpoints(2000)) == [("GET /a", 1), ("GET /old", 1)]


def test_unknown_latency_unit_is_skipped(ingest, aggregator) -> None:
    app = App(delta=True)
    app.meter.create_histogram("http.server.request.duration", unit="us").record(5.0, ROUTE_A)
    ingest.consume(app.request(at=T0 + 15))
    assert ingest.stats.skipped == {"latency_unknown_unit": 1}


def test_negative_latencies_are_invalid_not_raised(ingest, aggregator) -> None:
    app = App(delta=True)
    app.meter.create_histogram("http.server.request.duration", unit="s").record(0.5, ROUTE_A)
    request = app.request(at=T0 + 15)
    (point,) = _points(request)
    point.negative.bucket_counts[:] = [1]  # another SDK, less careful: a negative duration
    point.count += 1
    ingest.consume(request)
    assert ingest.stats.skipped == {"invalid": 1}
    assert aggregator.endpoints(2000) == []


# -------------------------------------------------------------- gauges and sums


def test_cumulative_counter_becomes_window_deltas_and_a_running_total(ingest, store, clock) -> None:
    app = App()
    orders = app.meter.create_counter("orders", unit="{order}")
    orders.add(5, {"region": "eu"})
    ingest.consume(app.request(at=T0 + 15, start=T0 + 1))
    orders.add(3, {"region": "eu"})
    ingest.consume(app.request(at=T0 + 25, start=T0 + 1))
    ingest.consume(app.request(at=T0 + 35, start=T0 + 1))
    clock.t = T0 + 40

    (info,) = store.series("orders")
    assert (info.service, info.attributes, info.kind, info.unit, info.monotonic) == (
        "shop",
        {"region": "eu"},
        "sum",
        "{order}",
        True,
    )
    starts, values = store.window_values(info.key, 60)
    assert (starts - T0).tolist() == [10.0, 20.0, 30.0]
    assert values.tolist() == [5.0, 3.0, 0.0]
    assert store.latest(info.key).value == 8.0
    assert ingest.stats.taken == {"sum": 3}


def test_counter_history_goes_only_into_the_running_total(ingest, store, clock) -> None:
    app = App()
    orders = app.meter.create_counter("orders")
    orders.add(100)
    ingest.consume(app.request(at=T0 + 15, start=T0 - 600))
    orders.add(2)
    ingest.consume(app.request(at=T0 + 25, start=T0 - 600))
    clock.t = T0 + 30
    (info,) = store.series("orders")
    starts, values = store.window_values(info.key, 60)
    assert ((starts - T0).tolist(), values.tolist()) == ([20.0], [2.0])
    assert store.latest(info.key).value == 102.0
    assert ingest.stats.skipped == {"baseline": 1}


def test_counter_reset_and_updown_counter(ingest, store, clock) -> None:
    app = App()
    app.meter.create_counter("jobs").add(10)
    queue = app.meter.create_up_down_counter("queue.size")
    queue.add(7)
    ingest.consume(app.request(at=T0 + 15, start=T0 + 1))
    queue.add(-4)  # goes down: not a reset for an up-down counter
    ingest.consume(app.request(at=T0 + 25, start=T0 + 1))
    restarted = App()
    restarted.meter.create_counter("jobs").add(1)  # went down with the same start: a reset
    ingest.consume(restarted.request(at=T0 + 35, start=T0 + 1))
    clock.t = T0 + 40

    jobs = store.series("jobs")[0].key
    assert store.window_values(jobs, 60)[1].tolist() == [10.0, 0.0, 1.0]
    assert store.latest(jobs).value == 11.0
    (queue_info,) = store.series("queue.size")
    assert not queue_info.monotonic
    assert store.window_values(queue_info.key, 60)[1].tolist() == [7.0, -4.0]
    assert store.latest(queue_info.key).value == 3.0
    assert ingest.stats.resets == 1


def test_delta_counter_and_observable_gauge(ingest, store, clock) -> None:
    app = App(delta=True)
    app.meter.create_counter("bytes").add(1024, {"dir": "in"})
    readings = iter([3.5, 4.25])

    def memory(_: CallbackOptions) -> list[Observation]:
        return [Observation(next(readings), {"pool": "heap"})]

    app.meter.create_observable_gauge("memory.used", [memory], unit="By")
    ingest.consume(app.request(at=T0 + 15))
    app.meter.create_counter("bytes").add(1, {"dir": "in"})
    ingest.consume(app.request(at=T0 + 25))
    clock.t = T0 + 30

    (gauge,) = store.series("memory.used", service="shop")
    assert gauge.kind == "gauge"
    starts, values = store.window_values(gauge.key, 60)
    assert ((starts - T0).tolist(), values.tolist()) == ([10.0, 20.0], [3.5, 4.25])
    assert store.latest(gauge.key).value == 4.25
    (counter,) = store.series("bytes")
    assert store.window_values(counter.key, 60)[1].tolist() == [1024.0, 1.0]
    assert store.series(service="nobody") == []


@pytest.mark.parametrize("exponential", [True, False], ids=["exponential", "explicit"])
def test_other_histograms_keep_count_and_sum_per_window(ingest, store, clock, aggregator, exponential: bool) -> None:
    app = App(exponential=exponential)
    sizes = app.meter.create_histogram("http.server.request.body.size", unit="By")
    for v in (100, 300):
        sizes.record(v)
    ingest.consume(app.request(at=T0 + 15, start=T0 + 1))
    sizes.record(1000)
    ingest.consume(app.request(at=T0 + 25, start=T0 + 1))
    clock.t = T0 + 30

    (info,) = store.series("http.server.request.body.size")
    assert info.kind == "histogram"
    assert store.window_values(info.key, 60, "count")[1].tolist() == [2.0, 1.0]
    assert store.window_values(info.key, 60, "sum")[1].tolist() == [400.0, 1000.0]
    assert store.window_values(info.key, 60, "mean")[1].tolist() == [200.0, 1000.0]
    latest = store.latest(info.key)
    assert (latest.count, latest.value) == (3, 1400.0)
    assert aggregator.endpoints(2000) == []


def test_summaries_are_cumulative_histograms(ingest, store, clock) -> None:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="rpc.latency", unit="ms")
    for at, count, total in ((15, 4, 40.0), (25, 6, 70.0)):
        point = metric.summary.data_points.add(
            start_time_unix_nano=int((T0 + 1) * 1e9), time_unix_nano=int((T0 + at) * 1e9), count=count, sum=total
        )
        point.quantile_values.add(quantile=0.5, value=10.0)
    ingest.consume(request)
    clock.t = T0 + 30
    (info,) = store.series("rpc.latency", service="unknown_service")
    assert store.window_values(info.key, 60, "count")[1].tolist() == [4.0, 2.0]
    assert store.window_values(info.key, 60, "sum")[1].tolist() == [40.0, 30.0]


def test_points_without_values_are_skipped(ingest, store) -> None:
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    gauge = metrics.add(name="g").gauge
    gauge.data_points.add(time_unix_nano=int((T0 + 5) * 1e9))  # no value
    gauge.data_points.add(as_int=1, flags=metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK, time_unix_nano=1)
    gauge.data_points.add(as_int=1)  # no time
    metrics.add(name="empty")
    metrics.add(name="s").sum.data_points.add(as_double=1.0, time_unix_nano=int((T0 + 5) * 1e9))
    ingest.consume(request)
    assert ingest.stats.skipped == {
        "no_value": 1,
        "no_recorded_value": 1,
        "missing_time": 1,
        "no_data": 1,
        "unspecified_temporality": 1,
    }
    assert len(store) == 0


# ------------------------------------------------------------------ the bound


def test_streams_are_bounded_and_an_evicted_stream_is_not_counted_twice(aggregator, store, clock) -> None:
    ingest = OtlpMetricsIngest(aggregator, store, max_streams=2, clock=clock)
    apps = {name: App(name) for name in "abc"}
    counters = {name: app.meter.create_counter("orders") for name, app in apps.items()}
    for name in "ab":
        counters[name].add(5)
        ingest.consume(apps[name].request(at=T0 + 15, start=T0 + 1))
    counters["c"].add(1)
    ingest.consume(apps["c"].request(at=T0 + 25, start=T0 + 20))  # new, began after us: whole; evicts a
    counters["a"].add(2)
    ingest.consume(apps["a"].request(at=T0 + 35, start=T0 + 1))  # a is back: its 7 are not new
    clock.t = T0 + 40

    totals = {}
    for info in store.series("orders"):
        totals[info.service] = store.window_values(info.key, 60)[1].tolist()
    assert totals == {"a": [5.0], "b": [5.0], "c": [1.0]}
    stats = ingest.stats
    assert (stats.streams, stats.evicted_streams) == (2, 2)
    assert stats.skipped == {"baseline": 1}
    assert DEFAULT_MAX_STREAMS == 100_000


def test_one_consumer_handles_many_services_and_scopes(ingest, aggregator, store, clock) -> None:
    apps = [App(f"svc{i}", delta=True) for i in range(3)]
    for i, app in enumerate(apps):
        app.meter.create_histogram("http.server.request.duration", unit="s").record(0.01 * (i + 1), ROUTE_A)
        app.meter.create_counter("c").add(i + 1)
    for app in apps:
        ingest.consume(app.request(at=T0 + 15))
    assert [(d.service, d.ok.count) for d in aggregator.endpoints(2000)] == [("svc0", 1), ("svc1", 1), ("svc2", 1)]
    assert [s.service for s in store.series("c")] == ["svc0", "svc1", "svc2"]
    assert np.isclose(aggregator.endpoints(2000, service="svc2")[0].ok.max, 30.0)
