"""The aggregator in isolation: windows, history, grouping, parent/child time."""

from __future__ import annotations

import numpy as np
import pytest

from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.span_batch import SpanBatch

NOW = 1_800_000_000.0  # a fixed clock, seconds


def batch(
    names: list[str],
    end_s: list[float],
    duration_ms: list[float],
    *,
    status: list[int] | None = None,
    span_id: list[int] | None = None,
    parent: list[int] | None = None,
    service: str = "svc",
) -> SpanBatch:
    n = len(names)
    return SpanBatch(
        service=[service] * n,
        name=names,
        kind=np.full(n, 2, dtype=np.int8),
        status=np.asarray(status or [0] * n, dtype=np.int8),
        end_ns=(np.asarray(end_s) * 1e9).astype(np.int64),
        duration_ms=np.asarray(duration_ms, dtype=np.float64),
        span_id=np.asarray(span_id or [0] * n, dtype=np.uint64),
        parent_span_id=np.asarray(parent or [0] * n, dtype=np.uint64),
    )


def aggregator(**kwargs) -> LatencyAggregator:
    return LatencyAggregator(window_s=10, history_s=600, clock=lambda: NOW, **kwargs)


def test_views_merge_windows_exactly_like_one_histogram() -> None:
    agg = aggregator()
    rng = np.random.default_rng(0)
    ends = NOW - rng.uniform(0, 290, 20_000)
    durations = rng.lognormal(3, 1, 20_000)
    agg.add_spans(batch(["op"] * 20_000, ends.tolist(), durations.tolist()))
    (data,) = agg.endpoints(300)
    single = ExponentialHistogram()
    single.record(durations)
    assert data.ok.quantiles([0.5, 0.95, 0.99]) == single.quantiles([0.5, 0.95, 0.99])
    assert data.ok.count == 20_000
    assert len(agg._span_windows) >= 29


def test_spans_older_than_history_are_rejected_and_counted() -> None:
    agg = aggregator()
    kept = agg.add_spans(batch(["op", "op"], [NOW - 5, NOW - 4000], [1.0, 1.0]))
    assert kept == 1
    assert agg.stats.snapshot().rejected == {"outside_history": 1}


def test_old_windows_are_evicted_as_the_clock_moves() -> None:
    clock = [NOW]
    agg = LatencyAggregator(window_s=10, history_s=60, clock=lambda: clock[0])
    agg.add_spans(batch(["op"], [NOW - 1], [1.0]))
    clock[0] = NOW + 120
    agg.add_spans(batch(["op"], [clock[0] - 1], [2.0]))
    assert len(agg._span_windows) == 1
    assert [d.ok.count for d in agg.endpoints(3600)] == [1]


def test_rps_uses_the_covered_part_of_the_range() -> None:
    agg = aggregator()
    agg.add_spans(batch(["op"] * 100, [NOW - 20 + i * 0.2 for i in range(100)], [1.0] * 100))
    (data,) = agg.endpoints(300)
    assert data.seconds == pytest.approx(30, abs=10)


def test_child_time_matches_children_to_parents_across_batches() -> None:
    agg = aggregator()
    # Children end in one batch, their parents in the next.
    agg.add_spans(batch(["db", "db", "cache"], [NOW - 2] * 3, [30.0, 40.0, 5.0], span_id=[11, 12, 13], parent=[1, 2, 2]))
    agg.add_spans(batch(["handler", "handler"], [NOW - 1] * 2, [50.0, 60.0], span_id=[1, 2]))
    times = {(c.parent_endpoint, c.child_endpoint): c for c in agg.child_times(300)}
    db = times[("handler", "db")]
    assert (db.parents, db.child_total_ms, db.parent_total_ms) == (2, 70.0, 110.0)
    assert db.parent_self_ms == pytest.approx((50 - 30) + (60 - 45))
    assert times[("handler", "cache")].child_total_ms == 5.0


def test_metric_histograms_fill_endpoints_without_spans() -> None:
    agg = aggregator()
    histogram = ExponentialHistogram()
    histogram.record(np.array([10.0, 20.0, 30.0]))
    agg.add_histogram(("svc", "GET /m", 2, 0), int((NOW - 1) * 1e9), histogram)
    (data,) = agg.endpoints(300)
    assert (data.endpoint, data.source, data.ok.count) == ("GET /m", "metrics", 3)


def test_window_series_has_one_point_per_closed_window() -> None:
    agg = aggregator()
    ends = [NOW - 95 + 10 * w for w in range(9) for _ in range(3)]
    agg.add_spans(batch(["op"] * len(ends), ends, [float(w + 1) for w in range(9) for _ in range(3)]))
    (series,) = agg.window_series(300)
    # Nine windows with data, then the closed but empty one before the open window.
    assert series.counts.tolist() == [3] * 9 + [0]
    assert np.all(np.diff(series.p95_ms[:9]) > 0)
    assert np.isnan(series.p95_ms[9])


def test_take_flushable_hands_each_span_to_storage_once_even_when_late() -> None:
    agg = aggregator()
    window = int(NOW * 1e9) // agg.window_ns
    agg.add_spans(batch(["op"] * 3, [NOW - 25, NOW - 15, NOW + 1], [1.0, 2.0, 3.0]))
    first = agg.take_flushable(window - 1)  # everything but the open window
    assert {w - window: t.count.sum() for w, t in first.spans.items()} == {-3: 1, -2: 1}
    agg.add_spans(batch(["op"], [NOW - 16], [4.0]))  # late, for a flushed window
    second = agg.take_flushable(window)
    assert {w - window: int(t.count.sum()) for w, t in second.spans.items()} == {-2: 1, 0: 1}
    assert [d.ok.count for d in agg.endpoints(300)] == [4], "memory still has everything"
    assert agg.take_flushable(window).spans == {}
