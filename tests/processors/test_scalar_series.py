"""The per-window store of gauges, sums and non-latency histograms."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from trm_otel.processors.scalar_series import Latest, ScalarSeriesStore

T0 = 1_700_000_000.0
GAUGE = ("memory.used", "shop", (("pool", "heap"),))
COUNTER = ("orders", "shop", ())
SIZES = ("body.size", "shop", ())


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ns(seconds_after_t0: float) -> int:
    return int((T0 + seconds_after_t0) * 1e9)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> ScalarSeriesStore:
    return ScalarSeriesStore(window_s=10, history_s=600, clock=clock)


def test_gauge_keeps_each_windows_latest_point(store, clock) -> None:
    assert store.record_gauge(GAUGE, ns(12), 1.0, unit="By")
    assert store.record_gauge(GAUGE, ns(18), 3.0)
    assert store.record_gauge(GAUGE, ns(15), 2.0)  # arrives late: older than 18 s
    assert store.record_gauge(GAUGE, ns(31), 4.0)
    clock.t = T0 + 40
    starts, values = store.window_values(GAUGE, 60)
    assert (starts - T0).tolist() == [10.0, 30.0]  # a gap stays a gap
    assert values.tolist() == [3.0, 4.0]
    assert store.latest(GAUGE) == Latest(T0 + 31, 4.0)


def test_sum_windows_hold_deltas_and_latest_the_running_total(store, clock) -> None:
    store.record_sum(COUNTER, ns(11), None, history=1000.0)  # a baseline: no window
    store.record_sum(COUNTER, ns(12), 5.0)
    store.record_sum(COUNTER, ns(17), 2.0)
    store.record_sum(COUNTER, ns(25), 0.0)
    clock.t = T0 + 30
    starts, values = store.window_values(COUNTER, 60)
    assert ((starts - T0).tolist(), values.tolist()) == ([10.0, 20.0], [7.0, 0.0])
    assert store.latest(COUNTER) == Latest(T0 + 25, 1007.0)


def test_histogram_fields(store, clock) -> None:
    store.record_histogram(SIZES, ns(12), 2, 400.0, unit="By")
    store.record_histogram(SIZES, ns(14), 2, 200.0)
    store.record_histogram(SIZES, ns(22), 0, 0.0)
    store.record_histogram(SIZES, ns(23), None, float("nan"), history_count=10, history_sum=5.0)
    clock.t = T0 + 30
    assert store.window_values(SIZES, 60)[1].tolist() == [4.0, 0.0]
    assert store.window_values(SIZES, 60, "count")[1].tolist() == [4.0, 0.0]
    assert store.window_values(SIZES, 60, "sum")[1].tolist() == [600.0, 0.0]
    mean = store.window_values(SIZES, 60, "mean")[1]
    assert mean[0] == 150.0 and np.isnan(mean[1])
    assert store.latest(SIZES) == Latest(T0 + 23, 605.0, 14)


def test_histogram_fields_are_refused_for_other_kinds(store) -> None:
    store.record_gauge(GAUGE, ns(12), 1.0)
    with pytest.raises(ValueError, match="field 'mean' needs a histogram series; 'memory.used' is a gauge"):
        store.window_values(GAUGE, 60, "mean")
    with pytest.raises(ValueError, match="field must be one of value, count, sum, mean; got 'p99'"):
        store.window_values(GAUGE, 60, "p99")  # type: ignore[arg-type]


def test_range_selects_recent_windows(store, clock) -> None:
    for second in range(0, 100, 10):
        store.record_sum(COUNTER, ns(second + 1), 1.0)
    clock.t = T0 + 100
    starts, _ = store.window_values(COUNTER, 30)
    assert (starts - T0).tolist() == [70.0, 80.0, 90.0]


def test_series_listing_filters_and_sorts(store) -> None:
    store.record_gauge(GAUGE, ns(1), 1.0, unit="By")
    store.record_sum(COUNTER, ns(2), 1.0, monotonic=True)
    store.record_sum(("orders", "billing", (("region", "eu"),)), ns(3), 1.0)
    assert [(s.name, s.service) for s in store.series()] == [
        ("memory.used", "shop"),
        ("orders", "billing"),
        ("orders", "shop"),
    ]
    assert [s.service for s in store.series("orders")] == ["billing", "shop"]
    (info,) = store.series(service="shop", name="memory.used")
    assert (info.key, info.attributes, info.kind, info.unit, info.last_s) == (
        GAUGE,
        {"pool": "heap"},
        "gauge",
        "By",
        T0 + 1,
    )
    assert store.latest(("nothing", "shop", ())) is None
    assert [a.size for a in store.window_values(("nothing", "shop", ()), 60)] == [0, 0]


def test_old_windows_and_silent_series_are_evicted(store, clock) -> None:
    store.record_sum(COUNTER, ns(5), 1.0)
    store.record_gauge(GAUGE, ns(5), 1.0)
    clock.t = T0 + 300
    store.record_sum(COUNTER, ns(295), 2.0)
    clock.t = T0 + 650  # the 5 s window is now older than the 600 s history
    store.record_sum(COUNTER, ns(645), 3.0)
    assert store.window_values(COUNTER, 10_000)[1].tolist() == [2.0, 3.0]
    assert [s.name for s in store.series()] == ["orders"]  # the gauge said nothing since
    assert store.latest(COUNTER).value == 6.0  # the running total outlives windows


def test_points_outside_the_history_are_refused(store, clock) -> None:
    clock.t = T0 + 1000
    assert not store.record_sum(COUNTER, ns(100), 1.0)
    assert not store.record_gauge(GAUGE, ns(1000 + 7 * 3600), 1.0)  # hours in the future
    assert store.refused() == {"outside_history": 2}
    assert len(store) == 0


def test_per_service_series_limit_drops_and_counts(clock) -> None:
    store = ScalarSeriesStore(window_s=10, series_limit=2, clock=clock)
    for i in range(4):
        store.record_gauge(("g", "shop", (("i", i),)), ns(1), float(i))
    store.record_gauge(("g", "shop", (("i", 0),)), ns(2), 9.0)  # a known series still records
    store.record_gauge(("g", "billing", ()), ns(1), 1.0)
    assert [s.attributes for s in store.series(service="shop")] == [{"i": 0}, {"i": 1}]
    assert store.latest(("g", "shop", (("i", 0),))).value == 9.0
    assert store.overflow() == {"shop": 2}
    assert len(store) == 3


def test_global_series_limit(clock) -> None:
    store = ScalarSeriesStore(window_s=10, max_series=2, clock=clock)
    for service in ("a", "b", "c"):
        store.record_gauge(("g", service, ()), ns(1), 1.0)
    assert store.overflow() == {"c": 1}


def test_a_key_keeps_its_first_kind(store) -> None:
    store.record_gauge(GAUGE, ns(1), 1.0)
    assert not store.record_sum(GAUGE, ns(2), 1.0)
    assert store.refused() == {"kind_conflict": 1}


def test_constructor_errors_name_the_rule() -> None:
    with pytest.raises(ValueError, match="window_s must be > 0, got 0"):
        ScalarSeriesStore(window_s=0)
    with pytest.raises(ValueError, match=r"history_s \(5\) must be at least window_s \(10\)"):
        ScalarSeriesStore(window_s=10, history_s=5)
    with pytest.raises(ValueError, match="series_limit and max_series must be >= 1, got 0 and 200000"):
        ScalarSeriesStore(series_limit=0)


def test_concurrent_writers_lose_nothing(store, clock) -> None:
    def write() -> None:
        for i in range(2000):
            store.record_sum(COUNTER, ns(i % 50), 1.0)
            store.series()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    clock.t = T0 + 60
    assert store.window_values(COUNTER, 100)[1].sum() == 8000.0
    assert store.latest(COUNTER).value == 8000.0
