"""Tests of the latency sketch against exact order statistics and the real OTel classes."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Buckets, ExponentialHistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from trm_otel.histogram import DEFAULT_MAX_SCALE, DEFAULT_MAX_SIZE, ExponentialHistogram

N = 100_000
QS = (0.5, 0.95, 0.99)


def exact_quantile(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * ordered.size)) - 1])


def error_bound(scale: int) -> float:
    """Worst-case relative error of a log-midpoint at this scale (sqrt(base) - 1)."""
    return 2.0 ** (2.0**-scale / 2) - 1


def build(values, max_scale: int = DEFAULT_MAX_SCALE, max_size: int = DEFAULT_MAX_SIZE) -> ExponentialHistogram:
    h = ExponentialHistogram(max_scale, max_size)
    h.record(np.asarray(values, dtype=np.float64))
    return h


def check_invariants(h: ExponentialHistogram) -> None:
    assert h.counts.dtype == np.int64
    assert h.scale <= h.max_scale
    assert h.counts.size <= h.max_size
    if h.counts.size:
        assert h.counts[0] > 0 and h.counts[-1] > 0, "counts must stay trimmed"
        assert (h.counts >= 0).all()
    else:
        assert h.scale == h.max_scale
    assert int(h.counts.sum()) + h.zero_count == h.count
    if h.count == 0:
        assert h.min == math.inf and h.max == -math.inf


# --------------------------------------------------------------- accuracy


def _distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261130)
    fast = rng.lognormal(math.log(1e-3), 0.2, int(N * 0.7))
    slow = rng.lognormal(math.log(0.2), 0.3, N - fast.size)
    return {
        "lognormal": rng.lognormal(math.log(0.05), 0.8, N),
        "bimodal": rng.permutation(np.concatenate([fast, slow])),
        "pareto": (rng.pareto(1.2, N) + 1.0) * 0.01,
        "constant": np.full(N, 0.123),
        "loguniform_1us_1s": np.exp(rng.uniform(math.log(1e-6), 0.0, N)),
    }


DISTRIBUTIONS = _distributions()


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_quantiles_within_one_percent_of_exact(name: str) -> None:
    values = DISTRIBUTIONS[name]
    h = build(values)
    check_invariants(h)
    assert h.scale == DEFAULT_MAX_SCALE  # 32 octaves: none of these downscales
    estimates = h.quantiles(QS)
    for q, estimate in zip(QS, estimates):
        exact = exact_quantile(values, q)
        rel = abs(estimate / exact - 1)
        assert rel <= 0.01, f"{name} p{q * 100:g}: {estimate} vs {exact}"
        assert rel <= error_bound(h.scale) + 1e-12
        assert h.quantile(q) == estimate
    assert h.quantile(0.0) == values.min()
    assert h.quantile(1.0) == values.max()
    assert h.count == values.size
    assert math.isclose(h.sum, math.fsum(values), rel_tol=1e-9)
    assert math.isclose(h.mean, float(values.mean()), rel_tol=1e-9)


def test_constant_series_reads_back_exactly() -> None:
    h = build(DISTRIBUTIONS["constant"])
    assert h.quantiles([0.0, 0.5, 0.99, 1.0]) == [0.123] * 4
    assert h.counts.size == 1


def test_exact_powers_of_two_land_in_their_own_bucket() -> None:
    for scale in (-3, 0, 6, 10, 20):
        k = np.array([-3, 0, 3]) if scale < 20 else np.array([5])
        h = build(2.0**k, max_scale=scale, max_size=16384)
        assert h.scale == scale
        if scale >= 0:
            expected = (k << scale) - 1
        else:  # index at scale 0 is k - 1, then floor-shifted
            expected = (k - 1) >> -scale
        occupied = h.offset + np.flatnonzero(h.counts)
        assert sorted(set(expected.tolist())) == occupied.tolist()
        # the next float above a power of two starts the next bucket
        above = build(np.nextafter(2.0**k, np.inf), max_scale=scale, max_size=16384)
        above_index = above.offset + np.flatnonzero(above.counts)
        expected_above = (k << scale) if scale >= 0 else k >> -scale
        assert sorted(set(expected_above.tolist())) == above_index.tolist()


def test_zero_values_go_to_zero_count() -> None:
    h = build([0.0, 0.0, 1.0, 3.0])
    assert h.zero_count == 2 and h.count == 4 and h.min == 0.0
    assert h.quantile(0.25) == 0.0 and h.quantile(0.5) == 0.0
    assert h.quantile(0.75) > 0.0
    zeros = build([0.0, 0.0])
    assert zeros.counts.size == 0 and zeros.quantile(0.99) == 0.0
    check_invariants(zeros)


def test_empty_histogram() -> None:
    h = ExponentialHistogram()
    assert h.is_empty() and bool(h)
    assert math.isnan(h.quantile(0.5)) and math.isnan(h.mean)
    assert h.quantiles([0.5, 0.9]) == [] or all(math.isnan(x) for x in h.quantiles([0.5, 0.9]))
    assert h.count_at_most(1.0) == 0.0
    h.record([])
    h.record(np.zeros(0))
    check_invariants(h)
    assert "count=0" in repr(h)


def test_repr_is_short() -> None:
    text = repr(build(DISTRIBUTIONS["lognormal"]))
    assert "count=100000" in text and "scale=6" in text and "p50=" in text and "p99=" in text


# ------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        ([1.0, math.nan], "NaN"),
        ([1.0, -2.0, -3.0], "negative"),
        ([math.inf, 1.0], "infinite"),
        ([-math.inf], "infinite"),
    ],
)
def test_invalid_values_raise_and_leave_histogram_unchanged(bad: list[float], word: str) -> None:
    h = build([1.0, 2.0])
    before = h.copy()
    with pytest.raises(ValueError, match=word) as info:
        h.record(bad)
    assert f"of {len(bad)} values" in str(info.value)
    assert h == before
    with pytest.raises(ValueError, match=word):
        h.record_counts(bad, [1] * len(bad))


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan])
def test_quantile_outside_unit_interval_raises(q: float) -> None:
    h = build([1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        h.quantile(q)
    with pytest.raises(ValueError):
        h.quantiles([0.5, q])


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"max_scale": 21}, "max_scale"), ({"max_scale": -11}, "max_scale"), ({"max_size": 1}, "max_size"),
     ({"max_size": 16385}, "max_size"), ({"max_scale": 2.5}, "max_scale")],
)
def test_constructor_validates(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        ExponentialHistogram(**kwargs)


def test_downscale_rejects_negative() -> None:
    with pytest.raises(ValueError, match="by"):
        build([1.0]).downscale(-1)


# ------------------------------------------------------------- downscale


def test_auto_downscale_picks_the_smallest_reduction() -> None:
    values = np.array([1e-3, 0.5, 30.0, 1e4])
    h = build(values, max_scale=6, max_size=32)
    check_invariants(h)
    assert h.scale < 6
    # one scale finer would not have fitted
    finer = build(values, max_scale=h.scale + 1, max_size=16384)
    assert finer.counts.size > 32
    for q in (0.25, 0.5, 0.75):
        exact = exact_quantile(values, q)
        assert abs(h.quantile(q) / exact - 1) <= error_bound(h.scale) + 1e-12


def test_record_downscales_existing_data() -> None:
    h = build([1.0], max_size=64)
    h.record([1e6])
    check_invariants(h)
    assert h == build([1.0, 1e6], max_size=64)


def test_whole_float_range_fits_even_two_buckets() -> None:
    h = build([5e-324, 1e-300, 1.0, 1.7e308], max_scale=20, max_size=2)
    check_invariants(h)
    assert h.counts.size <= 2 and h.count == 4


def test_downscale_on_empty_keeps_scale() -> None:
    h = ExponentialHistogram()
    h.downscale(3)
    assert h.scale == h.max_scale
    h.record([0.0])
    h.downscale(3)
    assert h.scale == h.max_scale


# ------------------------------------------------------- property tests

latencies = st.lists(
    st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False), max_size=30
)
configs = st.tuples(st.sampled_from([-4, 0, 3, 6, 20]), st.sampled_from([2, 8, 17, 32, DEFAULT_MAX_SIZE]))
PROPS = settings(max_examples=150, deadline=None)


@PROPS
@given(configs, latencies, latencies, latencies)
def test_merge_is_commutative_and_associative(cfg, a_vals, b_vals, c_vals) -> None:
    a, b, c = (build(v, *cfg) for v in (a_vals, b_vals, c_vals))
    ab = a.copy()
    ab.merge(b)
    ba = b.copy()
    ba.merge(a)
    assert ab == ba
    left = ab.copy()
    left.merge(c)
    bc = b.copy()
    bc.merge(c)
    right = a.copy()
    right.merge(bc)
    assert left == right
    assert ExponentialHistogram.merged([a, b, c]) == left
    for h in (ab, ba, left, right):
        check_invariants(h)
    # inputs untouched
    assert a == build(a_vals, *cfg) and b == build(b_vals, *cfg)


@PROPS
@given(configs, st.lists(latencies, min_size=1, max_size=5))
def test_merge_equals_recording_everything_once(cfg, parts) -> None:
    everything = np.array([v for part in parts for v in part], dtype=np.float64)
    single = build(everything, *cfg)
    pieces = [build(part, *cfg) for part in parts]
    merged = reduce(lambda acc, h: (acc.merge(h), acc)[1], pieces[1:], pieces[0].copy())
    assert merged == single
    assert ExponentialHistogram.merged(pieces) == single
    qs = [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0]
    assert merged.quantiles(qs) == single.quantiles(qs) or single.count == 0
    assert merged.count == everything.size
    assert merged.zero_count == int((everything == 0).sum())
    assert int(merged.counts.sum()) + merged.zero_count == merged.count
    assert math.isclose(merged.sum, math.fsum(everything), rel_tol=1e-9)
    # several record calls on one histogram give the same as one call
    incremental = ExponentialHistogram(*cfg)
    for part in parts:
        incremental.record(part)
    assert incremental == single
    check_invariants(merged)


@PROPS
@given(configs, latencies, st.lists(st.integers(min_value=0, max_value=5), min_size=30, max_size=30))
def test_record_counts_equals_repeated_record(cfg, values, weights) -> None:
    weights = weights[: len(values)]
    h = ExponentialHistogram(*cfg)
    h.record_counts(values, weights)
    repeated = build(np.repeat(np.array(values, dtype=np.float64), weights), *cfg)
    assert h == repeated
    check_invariants(h)


@PROPS
@given(latencies, st.integers(min_value=0, max_value=30))
def test_downscale_keeps_count_and_agrees_with_direct_indexing(values, by) -> None:
    h = build(values, max_scale=20, max_size=16384)
    target = h.scale - by
    lowered = h.copy()
    if h.counts.size and target < -11:  # every positive double fits 2 buckets at -11
        with pytest.raises(ValueError, match="below scale"):
            lowered.downscale(by)
        return
    lowered.downscale(by)
    check_invariants(lowered)
    assert lowered.count == h.count and lowered.zero_count == h.zero_count
    assert int(lowered.counts.sum()) == int(h.counts.sum())
    if h.counts.size and target >= -10:
        direct = build(values, max_scale=target, max_size=16384)
        assert direct == lowered


@PROPS
@given(configs, latencies, st.floats(min_value=1e-6, max_value=1e6))
def test_scaled_keeps_totals_and_stays_within_a_bucket(cfg, values, factor) -> None:
    h = build(values, *cfg)
    out = h.scaled(factor)
    check_invariants(out)
    assert out.count == h.count and out.zero_count == h.zero_count
    assert out.approximate == h.approximate
    if h.count:
        assert out.min == h.min * factor and out.max == h.max * factor
        truth = build(np.asarray(values) * factor, *cfg)
        # the scaled sketch is a bucket or so away from recording scaled values
        for q in (0.25, 0.5, 0.75):
            a, b = out.quantile(q), truth.quantile(q)
            if b > 0 and a > 0:
                assert abs(math.log2(a) - math.log2(b)) <= 2.0 * 2.0 ** -min(out.scale, truth.scale) + 1e-9


@PROPS
@given(
    st.lists(st.floats(min_value=-5.0, max_value=1e6), min_size=1, max_size=12, unique=True),
    st.data(),
    st.sampled_from([(6, DEFAULT_MAX_SIZE), (0, 8), (20, 160)]),
)
def test_from_explicit_totals_exact(bounds, data, cfg) -> None:
    bounds = sorted(bounds)
    counts = data.draw(st.lists(st.integers(0, 1000), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    if counts[-1] and bounds[-1] <= 0:
        with pytest.raises(ValueError, match="max"):
            ExponentialHistogram.from_explicit(bounds, counts, max_scale=cfg[0], max_size=cfg[1])
        return
    h = ExponentialHistogram.from_explicit(bounds, counts, max_scale=cfg[0], max_size=cfg[1])
    check_invariants(h)
    assert h.count == sum(counts) and h.approximate
    nonpositive = sum(c for k, c in enumerate(counts) if k < len(bounds) and bounds[k] <= 0)
    assert h.zero_count == nonpositive


def test_record_counts_with_counts_beyond_float_precision() -> None:
    h = ExponentialHistogram()
    big = 2**60
    h.record_counts([1.0, 1.0, 2.0, 0.0], [big, 3, 1, 5])
    assert h.count == big + 9 and int(h.counts.sum()) == big + 4 and h.zero_count == 5
    merged = ExponentialHistogram.merged([h, h])
    assert merged.count == 2 * (big + 9) and int(merged.counts.sum()) == 2 * (big + 4)
    with pytest.raises(ValueError, match="non-negative"):
        h.record_counts([1.0], [-1])
    with pytest.raises(ValueError, match="same length"):
        h.record_counts([1.0, 2.0], [1])


def test_merged_of_nothing_and_of_empties() -> None:
    assert ExponentialHistogram.merged([]) == ExponentialHistogram()
    assert ExponentialHistogram.merged(iter([])).max_size == DEFAULT_MAX_SIZE
    empties = [ExponentialHistogram(), ExponentialHistogram()]
    assert ExponentialHistogram.merged(empties).is_empty()


def test_merged_many_windows_equals_sequential_merge() -> None:
    rng = np.random.default_rng(7)
    windows = [build(rng.lognormal(math.log(0.05), 1.0, 200)) for _ in range(1000)]
    windows[10] = build(rng.lognormal(math.log(0.05), 1.0, 200), max_size=64)  # a downscaled one
    sequential = windows[0].copy()
    for w in windows[1:]:
        sequential.merge(w)
    merged = ExponentialHistogram.merged(windows)
    assert merged == sequential
    assert merged.count == 200_000 and merged.scale == windows[10].scale


def test_self_merge_doubles() -> None:
    h = build([1.0, 2.0, 0.0])
    h.merge(h)
    assert h == build([1.0, 2.0, 0.0] * 2)


# ---------------------------------------------------------- count_at_most


def test_count_at_most_exact_at_extremes_and_monotone() -> None:
    values = np.concatenate([np.zeros(50), DISTRIBUTIONS["lognormal"][:20_000]])
    h = build(values)
    lo, hi = float(values[values > 0].min()), float(values.max())
    assert h.count_at_most(-1.0) == 0.0
    assert h.count_at_most(0.0) == 50.0
    assert h.count_at_most(hi) == h.count
    assert h.count_at_most(hi * 10) == h.count
    positive_only = build(values[values > 0])
    assert positive_only.count_at_most(np.nextafter(lo, 0.0)) == 0.0
    thresholds = np.sort(np.concatenate([np.geomspace(lo / 2, hi * 2, 3000), values[:500]]))
    estimates = np.array([h.count_at_most(t) for t in thresholds])
    assert (np.diff(estimates) >= 0).all()
    ordered = np.sort(values)
    for t, est in zip(thresholds[::25], estimates[::25]):
        truth = np.searchsorted(ordered, t, side="right")
        # off by at most the one bucket that contains t
        width = h.count_at_most(t * 2.0 ** (2.0**-h.scale)) - h.count_at_most(t / 2.0 ** (2.0**-h.scale))
        assert abs(est - truth) <= width + 1e-9


def test_count_at_most_matches_apdex_fractions() -> None:
    values = DISTRIBUTIONS["loguniform_1us_1s"]
    h = build(values)
    for t in (1e-5, 3e-3, 0.25):
        truth = (values <= t).mean()
        assert abs(h.count_at_most(t) / h.count - truth) < 0.002


# ------------------------------------------------------------- scaled


def test_scaled_seconds_to_ms_within_1_5_percent() -> None:
    seconds = DISTRIBUTIONS["lognormal"]
    h = build(seconds).scaled(1000)
    truth_values = seconds * 1000
    check_invariants(h)
    assert h.count == seconds.size
    assert math.isclose(h.sum, math.fsum(truth_values), rel_tol=1e-9)
    assert h.min == seconds.min() * 1000 and h.max == seconds.max() * 1000
    assert not h.approximate
    for q in (0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999):
        exact = exact_quantile(truth_values, q)
        assert abs(h.quantile(q) / exact - 1) <= 0.015, q


@pytest.mark.parametrize("factor", [2.0, 0.5, 1024.0])
def test_scaled_by_power_of_two_is_exact(factor: float) -> None:
    values = np.concatenate([[0.0], DISTRIBUTIONS["pareto"][:5000]])
    assert build(values).scaled(factor) == build(values * factor)


def test_scaled_at_negative_scale_redistributes_and_keeps_totals() -> None:
    values = DISTRIBUTIONS["lognormal"][:10_000]
    h = build(values, max_scale=-1)
    doubled = h.scaled(2.0)  # half a bucket at scale -1: not an index shift
    check_invariants(doubled)
    assert doubled.count == h.count and int(doubled.counts.sum()) == int(h.counts.sum())
    four = h.scaled(4.0)  # a whole bucket at scale -1: exact shift
    assert four == build(values * 4.0, max_scale=-1)


def test_scaled_validates_and_handles_empty() -> None:
    with pytest.raises(ValueError, match="factor"):
        build([1.0]).scaled(0.0)
    with pytest.raises(ValueError, match="factor"):
        build([1.0]).scaled(math.nan)
    assert ExponentialHistogram().scaled(1000).is_empty()


# ------------------------------------------------------- explicit buckets

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]


def explicit_counts(values: np.ndarray, bounds: list[float]) -> list[int]:
    # bucket k covers (bounds[k-1], bounds[k]]
    return np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1).tolist()


def test_from_explicit_estimates_stay_in_the_containing_bucket() -> None:
    values = DISTRIBUTIONS["lognormal"]
    counts = explicit_counts(values, BOUNDS)
    h = ExponentialHistogram.from_explicit(
        BOUNDS, counts, min=float(values.min()), max=float(values.max()), sum=float(values.sum())
    )
    check_invariants(h)
    assert h.approximate
    assert h.count == values.size == sum(counts)
    assert h.min == values.min() and h.max == values.max()
    base = 2.0 ** (2.0**-h.scale)
    edges = [float(values.min())] + BOUNDS + [float(values.max())]
    for q in (0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999):
        exact = exact_quantile(values, q)
        k = int(np.searchsorted(BOUNDS, exact, side="left"))
        lo, hi = max(edges[k], values.min()), min(edges[k + 1], values.max())
        estimate = h.quantile(q)
        assert lo / base <= estimate <= hi * base, (q, lo, estimate, hi)
    # totals per explicit bucket are exact: count_at_most at every bound is exact
    cumulative = np.cumsum(counts)
    for bound, expected in zip(BOUNDS, cumulative):
        if values.min() < bound < values.max():
            assert abs(h.count_at_most(bound) - expected) <= h.counts.max()


def test_from_explicit_defaults_and_zero_buckets() -> None:
    h = ExponentialHistogram.from_explicit([0.0, 1.0, 2.0], [3, 4, 5, 6])
    assert h.zero_count == 3 and h.count == 18 and h.approximate
    assert h.min == 0.0 and h.max == 4.0  # overflow upper edge: bounds[-1] * 2
    check_invariants(h)
    first = ExponentialHistogram.from_explicit([0.1, 1.0], [10, 0, 0])
    assert first.min == pytest.approx(0.05) and first.max == pytest.approx(0.1)
    assert 0.05 <= first.quantile(0.5) <= 0.1
    assert math.isclose(first.sum, 10 * 0.0707, rel_tol=0.02)  # estimated from midpoints
    empty = ExponentialHistogram.from_explicit([1.0], [0, 0])
    assert empty.is_empty() and empty.approximate


def test_from_explicit_treats_sdk_sentinels_as_unknown() -> None:
    # the SDK reports min=inf, max=-inf when record_min_max is off, and for empty points
    h = ExponentialHistogram.from_explicit([1.0, 2.0], [0, 4, 0], min=math.inf, max=-math.inf, sum=6.0)
    assert h.min == 1.0 and h.max == 2.0 and h.sum == 6.0 and h.count == 4
    empty = ExponentialHistogram.from_explicit([1.0, 2.0], [0, 0, 0], min=math.inf, max=-math.inf, sum=0.0)
    assert empty.is_empty()
    with pytest.raises(ValueError, match="min"):
        ExponentialHistogram.from_explicit([1.0], [1, 1], min=5.0, max=2.0)


def test_from_explicit_wide_bounds_downscale_to_fit() -> None:
    h = ExponentialHistogram.from_explicit([1e-9, 1e9], [1, 1000, 1], max_size=64)
    check_invariants(h)
    assert h.count == 1002


@pytest.mark.parametrize(
    ("bounds", "counts", "word"),
    [([1.0, 2.0], [1, 2], "len"), ([2.0, 1.0], [1, 2, 3], "sorted"), ([1.0, 2.0], [1, -2, 3], "negative"),
     ([1.0, 1.0], [1, 2, 3], "sorted"), ([1.0], [0.5, 1], "integer")],
)
def test_from_explicit_validates(bounds, counts, word) -> None:
    with pytest.raises(ValueError, match=word):
        ExponentialHistogram.from_explicit(bounds, counts)


def test_approximate_propagates_through_merge() -> None:
    exact = build(DISTRIBUTIONS["lognormal"][:1000])
    explicit = ExponentialHistogram.from_explicit(BOUNDS, explicit_counts(DISTRIBUTIONS["pareto"][:1000], BOUNDS))
    a = exact.copy()
    a.merge(explicit)
    assert a.approximate and a.count == 2000
    b = explicit.copy()
    b.merge(exact)
    assert b.approximate and a == b
    assert ExponentialHistogram.merged([exact, explicit]).approximate
    assert not ExponentialHistogram.merged([exact, exact]).approximate
    empty = ExponentialHistogram()
    empty.merge(ExponentialHistogram.from_explicit([1.0], [0, 0]))
    assert empty.approximate


# ------------------------------------------------------------ round trips


def _samples() -> list[ExponentialHistogram]:
    merged = build(DISTRIBUTIONS["bimodal"][:5000])
    merged.merge(build([0.0, 3.0]))
    return [
        ExponentialHistogram(),
        build([0.0, 0.0]),
        build(DISTRIBUTIONS["lognormal"][:5000]),
        build(DISTRIBUTIONS["loguniform_1us_1s"][:5000], max_size=40),  # downscaled
        build([1e-3, 2e-3], max_scale=20),
        build([5.0, 7.0, 2000.0], max_scale=-3),
        merged,
    ]


@pytest.mark.parametrize("h", _samples(), ids=lambda h: f"n{h.count}-s{h.scale}")
def test_sdk_point_round_trip(h: ExponentialHistogram) -> None:
    point = h.to_sdk_point({"service.name": "checkout", "http.status_code": 200}, 10, 20)
    assert isinstance(point, ExponentialHistogramDataPoint)
    assert point.negative == Buckets(0, []) and point.flags == 0
    assert point.start_time_unix_nano == 10 and point.time_unix_nano == 20
    if h.is_empty():
        assert point.min == 0 and point.max == 0
    back = ExponentialHistogram.from_sdk_point(point)
    assert back == h
    check_invariants(back)
    assert back.max_scale == max(point.scale, -10) or back.counts.size == 0


@pytest.mark.parametrize("h", _samples(), ids=lambda h: f"n{h.count}-s{h.scale}")
def test_proto_round_trip_through_bytes(h: ExponentialHistogram) -> None:
    attributes = {"service.name": "checkout", "retries": 3, "ratio": 0.5, "cached": True}
    point = h.to_proto(attributes, 10, 20)
    assert point.HasField("min") == (h.count > 0) and point.HasField("max") == (h.count > 0)
    parsed = metrics_pb2.ExponentialHistogramDataPoint.FromString(point.SerializeToString())
    values = {kv.key: kv.value for kv in parsed.attributes}
    assert values["service.name"].string_value == "checkout"
    assert values["retries"].int_value == 3
    assert values["ratio"].double_value == 0.5
    assert values["cached"].bool_value is True
    assert parsed.start_time_unix_nano == 10 and parsed.time_unix_nano == 20
    back = ExponentialHistogram.from_proto(parsed)
    assert back == h
    check_invariants(back)
    assert h.to_proto().attributes == []


def test_from_proto_without_min_max_derives_them_from_edges() -> None:
    point = metrics_pb2.ExponentialHistogramDataPoint(
        count=5, sum=10.0, scale=0, zero_count=0,
        positive=metrics_pb2.ExponentialHistogramDataPoint.Buckets(offset=1, bucket_counts=[0, 2, 3, 0]),
    )
    h = ExponentialHistogram.from_proto(point)
    assert h.offset == 2 and h.counts.tolist() == [2, 3]  # trimmed
    assert h.min == 4.0 and h.max == 16.0  # buckets (4, 8] and (8, 16]
    assert 4.0 < h.quantile(0.5) <= 16.0


def test_from_proto_zero_threshold_counts_stay_in_zero_count() -> None:
    point = metrics_pb2.ExponentialHistogramDataPoint(
        count=4, sum=1.0, scale=3, zero_count=3, zero_threshold=1e-6, min=1e-7, max=0.9,
        positive=metrics_pb2.ExponentialHistogramDataPoint.Buckets(offset=-1, bucket_counts=[1]),
    )
    h = ExponentialHistogram.from_proto(point)
    assert h.zero_count == 3 and h.count == 4
    assert h.quantile(0.5) == 1e-7  # zero bucket read as 0, clamped to min


def test_from_sdk_point_without_min_max() -> None:
    point = ExponentialHistogramDataPoint(
        attributes={}, start_time_unix_nano=0, time_unix_nano=1, count=3, sum=7.0, scale=1, zero_count=0,
        positive=Buckets(2, [1, 0, 2]), negative=Buckets(0, []), flags=0, min=math.inf, max=-math.inf,
    )
    h = ExponentialHistogram.from_sdk_point(point)
    # buckets 2..4 at scale 1 cover (2, 2**2.5]
    assert h.min == 2.0 and h.max == pytest.approx(2.0**2.5)
    assert h.count == 3 and h.sum == 7.0
    check_invariants(h)


def test_from_point_rejects_inconsistent_count() -> None:
    point = metrics_pb2.ExponentialHistogramDataPoint(
        count=9, scale=0, positive=metrics_pb2.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[1])
    )
    with pytest.raises(ValueError, match="count"):
        ExponentialHistogram.from_proto(point)


def test_negative_buckets_raise() -> None:
    sdk_point = ExponentialHistogramDataPoint(
        attributes={}, start_time_unix_nano=0, time_unix_nano=1, count=3, sum=-1.0, scale=2, zero_count=0,
        positive=Buckets(0, [1]), negative=Buckets(0, [2]), flags=0, min=-3.0, max=1.0,
    )
    with pytest.raises(ValueError, match="negative"):
        ExponentialHistogram.from_sdk_point(sdk_point)
    proto_point = metrics_pb2.ExponentialHistogramDataPoint(
        count=2, scale=2, negative=metrics_pb2.ExponentialHistogramDataPoint.Buckets(offset=3, bucket_counts=[0, 2])
    )
    with pytest.raises(ValueError, match="negative"):
        ExponentialHistogram.from_proto(proto_point)
    # empty negative buckets are fine
    ok = metrics_pb2.ExponentialHistogramDataPoint(
        count=1, scale=2, zero_count=1, negative=metrics_pb2.ExponentialHistogramDataPoint.Buckets(bucket_counts=[0])
    )
    assert ExponentialHistogram.from_proto(ok).zero_count == 1


def test_from_sdk_point_made_by_the_real_sdk() -> None:
    rng = np.random.default_rng(99)
    values = rng.lognormal(math.log(0.05), 1.0, 20_000)
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[
            View(
                instrument_name="http.server.request.duration",
                aggregation=ExponentialBucketHistogramAggregation(max_size=160, max_scale=20),
            )
        ],
    )
    try:
        instrument = provider.get_meter("test").create_histogram("http.server.request.duration", unit="s")
        for v in values.tolist():
            instrument.record(v, {"http.route": "/items"})
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    ]
    assert len(points) == 1
    point = points[0]
    assert isinstance(point, ExponentialHistogramDataPoint)
    h = ExponentialHistogram.from_sdk_point(point)
    check_invariants(h)
    assert h.count == values.size and h.scale == point.scale and h.max_scale == point.scale
    assert h.min == values.min() and h.max == values.max()
    assert math.isclose(h.sum, math.fsum(values), rel_tol=1e-9)
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = exact_quantile(values, q)
        assert abs(h.quantile(q) / exact - 1) <= error_bound(point.scale) + 1e-9, q
    # later records index consistently with the SDK's buckets
    again = h.copy()
    again.record(values[:100])
    assert again.scale == h.scale and again.count == h.count + 100
    # and the round trip to the wire keeps it
    assert ExponentialHistogram.from_proto(h.to_proto({"http.route": "/items"})) == h


@settings(max_examples=200, deadline=None)
@given(latencies, st.floats(min_value=0.0, max_value=1.0))
def test_scalar_quantile_equals_the_vector_one(values, q) -> None:
    histogram = ExponentialHistogram()
    histogram.record(values)
    expected = histogram.quantiles([q])[0]
    got = histogram.quantile(q)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


@settings(max_examples=100, deadline=None)
@given(latencies, st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=5, max_size=8))
def test_few_and_many_quantiles_agree(values, qs) -> None:
    histogram = ExponentialHistogram()
    histogram.record(values)
    many = histogram.quantiles(qs)  # the array path (more than four)
    few = [v for i in range(0, len(qs), 4) for v in histogram.quantiles(qs[i : i + 4])]
    assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(many, few))
