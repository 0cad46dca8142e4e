"""Bad input never raises on the application's thread; every case is counted."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from trm_otel.processors import LatencyAggregator, LatencySpanProcessor, PercentileMetricReader
from trm_otel.processors.span_batch import batch_from_rows


def pipeline(resource: Resource | None = None, buffer_size: int = 1000):
    processor = LatencySpanProcessor(buffer_size)
    reader = PercentileMetricReader(LatencyAggregator(), span_processors=[processor], interval_s=None)
    provider = TracerProvider(resource=resource if resource is not None else Resource.create({"service.name": "svc"}))
    provider.add_span_processor(processor)
    return provider.get_tracer("test"), reader


def test_end_before_start_nan_and_zero_durations_are_counted_not_raised() -> None:
    tracer, reader = pipeline()
    now = time.time_ns()
    tracer.start_span("backwards", start_time=now).end(end_time=now - 1_000)
    tracer.start_span("nan", start_time=now).end(end_time=float("nan"))  # type: ignore[arg-type]
    tracer.start_span("inf", start_time=now).end(end_time=float("inf"))  # type: ignore[arg-type]
    tracer.start_span("zero", start_time=now).end(end_time=now)
    tracer.start_span("fine", start_time=now - 5_000_000).end(end_time=now)
    reader.drain()
    stats = reader.aggregator.stats.snapshot()
    assert stats.accepted == 2
    assert stats.rejected == {"end_before_start": 1, "invalid_duration": 2}
    assert stats.repaired == {"zero_duration": 1}
    counts = {d.endpoint: d.ok.count for d in reader.aggregator.endpoints(300)}
    assert counts == {"zero": 1, "fine": 1}
    zero = next(d for d in reader.aggregator.endpoints(300) if d.endpoint == "zero")
    assert zero.ok.quantile(0.5) == 0.0


def test_missing_service_name_becomes_unknown_service() -> None:
    tracer, reader = pipeline(Resource({}))
    tracer.start_span("GET /").end()
    tracer.start_span("GET /").end()
    reader.drain()
    (endpoint,) = reader.aggregator.endpoints(300)
    assert (endpoint.service, endpoint.ok.count) == ("unknown_service", 2)
    assert reader.aggregator.stats.snapshot().repaired == {"missing_service_name": 2}


def test_non_string_attributes_are_stringified_and_counted() -> None:
    tracer, reader = pipeline(Resource({"service.name": 42}))
    tracer.start_span(12345).end()  # type: ignore[arg-type]
    reader.drain()
    (endpoint,) = reader.aggregator.endpoints(300)
    assert (endpoint.service, endpoint.endpoint) == ("42", "12345")
    assert reader.aggregator.stats.snapshot().repaired == {"non_string_attribute": 2}


def test_on_end_never_raises_even_for_objects_that_are_not_spans() -> None:
    processor = LatencySpanProcessor()
    for junk in (None, object(), "span", 3):
        processor.on_end(junk)  # type: ignore[arg-type]
    assert processor.pending() == 0
    assert processor.stats.snapshot().rejected == {"malformed_span": 4}
    batch, rejected, repaired = batch_from_rows(*processor.drain())
    assert len(batch) == 0


def test_full_buffer_drops_and_counts_without_blocking() -> None:
    processor = LatencySpanProcessor(buffer_size=16)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    tracer = tracer_provider.get_tracer("test")
    for _ in range(20):
        tracer.start_span("x").end()
    assert processor.pending() == 16
    assert processor.stats.snapshot().dropped == 4


def _read_by_reader(buffer_size: int) -> tuple[LatencySpanProcessor, PercentileMetricReader, Any]:
    """A processor drained by a reader whose own timer never fires during a test."""
    processor = LatencySpanProcessor(buffer_size=buffer_size)
    reader = PercentileMetricReader(LatencyAggregator(), span_processors=[processor], interval_s=3600)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return processor, reader, provider.get_tracer("test")


def test_high_water_drains_on_the_thread_ending_the_span() -> None:
    processor, reader, tracer = _read_by_reader(buffer_size=64)
    try:
        for _ in range(17):  # the 17th append crosses a quarter of 64
            tracer.start_span("x").end()
        # Synchronously, before end() returned: no waiting on the reader's thread.
        assert reader.aggregator.stats.snapshot().accepted == 17
        assert processor.pending() == 0
    finally:
        reader.shutdown()


def test_a_drain_under_way_elsewhere_is_retried_at_three_quarters() -> None:
    processor, reader, tracer = _read_by_reader(buffer_size=64)
    try:
        with reader._drain_lock:  # a collection is draining on another thread
            for _ in range(40):
                tracer.start_span("x").end()
        assert processor.pending() == 40  # the high water passed while the lock was held
        for _ in range(9):  # the 49th append crosses three quarters of 64
            tracer.start_span("x").end()
        assert processor.pending() == 0 and reader.aggregator.stats.snapshot().accepted == 49
    finally:
        reader.shutdown()


def test_a_tight_loop_of_spans_drops_none() -> None:
    """With the drain on the reader's thread, GIL hand-offs made it 40-400 ms late and 5-20% were dropped."""
    processor, reader, tracer = _read_by_reader(buffer_size=2000)
    try:
        for _ in range(30_000):
            tracer.start_span("GET /items/{id}").end()
        reader.drain()
        stats = reader.aggregator.stats.snapshot()
        assert (stats.accepted, stats.dropped) == (30_000, 0)
    finally:
        reader.shutdown()


def test_spans_after_shutdown_are_dropped_and_counted() -> None:
    processor = LatencySpanProcessor()
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    span = tracer.start_span("late")
    processor.shutdown()
    span.end()
    assert processor.pending() == 0
    assert processor.stats.snapshot().dropped == 1
