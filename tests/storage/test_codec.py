"""The histogram blob: exact round trips, batch decoding, corruption, and its size on typical latency data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trm_otel.histogram import ExponentialHistogram
from trm_otel.storage.codec import decode, decode_many, decode_merged, encode, encode_many


def identical(a: ExponentialHistogram, b: ExponentialHistogram) -> bool:
    """Every field, bit for bit (``==`` allows a float tolerance on sum)."""
    return (
        a == b
        and a.sum == b.sum
        and a.max_scale == b.max_scale
        and a.max_size == b.max_size
        and a.counts.dtype == b.counts.dtype == np.int64
        and (a.count == 0 or a.quantiles([0.0, 0.5, 0.9, 0.99, 1.0]) == b.quantiles([0.0, 0.5, 0.9, 0.99, 1.0]))
    )


def lognormal(n: int, sigma: float = 0.5, median_ms: float = 50.0, seed: int = 0) -> ExponentialHistogram:
    h = ExponentialHistogram()
    h.record(np.random.default_rng(seed).lognormal(math.log(median_ms), sigma, n))
    return h


values = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False),
        st.floats(min_value=1.0, max_value=2000.0),
    ),
    max_size=300,
)


@st.composite
def histograms(draw: st.DrawFn) -> ExponentialHistogram:
    h = ExponentialHistogram(draw(st.integers(-10, 20)), draw(st.sampled_from([2, 16, 160, 2048, 4096])))
    for _ in range(draw(st.integers(0, 3))):
        part = ExponentialHistogram(h.max_scale, h.max_size)
        part.record(np.asarray(draw(values), dtype=np.float64))
        h.merge(part)
    if draw(st.booleans()):  # big counts: multi-byte tokens and header varints
        h.record_counts(np.array([draw(st.floats(1e-3, 1e3))]), np.array([draw(st.integers(1, 2**40))]))
    h.approximate = draw(st.booleans())
    return h


@settings(max_examples=300, deadline=None)
@given(histograms())
def test_round_trip_is_exact(h: ExponentialHistogram) -> None:
    assert identical(decode(encode(h)), h)


@settings(max_examples=60, deadline=None)
@given(st.lists(histograms(), max_size=12))
def test_batch_encode_and_decode_equal_one_at_a_time(hs: list[ExponentialHistogram]) -> None:
    blobs = encode_many(hs)
    assert blobs == [encode(h) for h in hs]
    decoded = decode_many(blobs)
    assert len(decoded) == len(hs)
    assert all(identical(d, h) for d, h in zip(decoded, hs))


def test_edge_histograms_round_trip() -> None:
    empty = ExponentialHistogram()
    zeros = ExponentialHistogram()
    zeros.record([0.0, 0.0, 0.0])
    one = ExponentialHistogram()
    one.record([12.5])
    huge = ExponentialHistogram.from_buckets(
        np.array([-5000, 0, 7000]), np.array([2**62, 1, 3]), zero_count=0, total=1.0, lo=1e-9, hi=1e9
    )
    for h in (empty, zeros, one, huge):
        assert identical(decode(encode(h)), h)
    assert len(encode(empty)) == 5  # flags + four one-byte header varints


def test_decoded_counts_do_not_alias_each_other() -> None:
    first, second = decode_many(encode_many([lognormal(100, seed=1), lognormal(100, seed=2)]))
    before = second.counts.copy()
    first.merge(lognormal(1000, seed=3))
    first.counts[:] = 0  # even an in-place write stays inside its own slice
    assert np.array_equal(second.counts, before)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(histograms(), st.integers(0, 4)), max_size=14), st.integers(5, 7))
def test_merged_groups_equal_merging_the_decoded_histograms(members, n_groups: int) -> None:
    hs = [h for h, _ in members]
    groups = [g for _, g in members]
    merged = decode_merged(encode_many(hs), groups, n_groups)
    assert len(merged) == n_groups
    for g, got in enumerate(merged):
        parts = [h for h, k in members if k == g]
        if not parts:
            assert got is None
        else:
            want = ExponentialHistogram.merged(parts)
            assert got is not None and identical(got, want) and got.max_scale == want.max_scale, (g, got, want)


def test_merged_groups_of_typical_windows() -> None:
    windows = [lognormal(100, seed=s) for s in range(60)] + [ExponentialHistogram()]
    groups = [i // 6 for i in range(60)] + [3]
    merged = decode_merged(encode_many(windows), groups, 11)
    for g in range(10):
        assert identical(merged[g], ExponentialHistogram.merged(windows[g * 6 : g * 6 + 6]))
    assert merged[10] is None
    assert decode_merged([], [], 2) == [None, None]
    with pytest.raises(ValueError, match="groups"):
        decode_merged(encode_many(windows[:2]), [0, 2], 2)


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[:-1] + bytes([blob[-1] | 0x80]),  # truncated varint
        lambda blob: bytes([blob[0] | 0x40]) + blob[1:],  # unknown flag bit
        lambda blob: blob[:20],  # stats cut short
        lambda blob: b"",
    ],
)
def test_corrupt_blobs_are_refused(damage) -> None:
    with pytest.raises(ValueError, match="corrupt"):
        decode(damage(encode(lognormal(100))))


def test_a_blob_that_starts_with_an_empty_run_is_refused() -> None:
    h = ExponentialHistogram.from_buckets(np.array([3]), np.array([2]), zero_count=0, total=1.0, lo=1.0, hi=1.1)
    blob = bytearray(encode(h))
    blob[-1] = 1  # the only count token turned into a zero run
    with pytest.raises(ValueError, match="trimmed"):
        decode(bytes(blob))


def footprint(n: int, sigma: float, samples: int = 40) -> float:
    return float(np.mean([len(encode(lognormal(n, sigma, seed=s))) for s in range(samples)]))


def test_typical_latency_windows_fit_the_200_byte_goal(capsys: pytest.CaptureFixture[str]) -> None:
    """A 10 s window of an endpoint: lognormal latencies, median 50 ms (the demo uses sigma 0.4)."""
    figures = {(n, sigma): footprint(n, sigma) for n in (10, 100, 1000) for sigma in (0.4, 1.0)}
    with capsys.disabled():
        print("\nbytes per series-window (lognormal, median 50 ms):")
        for (n, sigma), size in figures.items():
            print(f"  {n:>5} values/window, sigma {sigma}: {size:6.1f} B")
    assert figures[(10, 0.4)] < 60
    assert figures[(100, 0.4)] < 200  # the goal, for ~10 requests/s per series
    assert figures[(1000, 0.4)] < 400
