"""The store on real SQLite files: writes, late data, rollups, retention, back-fill, reads, migration."""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trm_otel.config import RetentionConfig
from trm_otel.histogram import ExponentialHistogram
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher, SeriesSource
from trm_otel.storage import SCHEMA_VERSION, SchemaError, StorageSource, Store, canonical_labels, retention_from_config
from trm_otel.storage.codec import encode
from trm_otel.storage import store as store_module
from trm_otel.storage.schema import migrate

from tests.storage import assert_rollups_are_merges, rows_of

DAY = 86400
NOW = 1_764_460_800  # a midnight, so minutes and hours line up with the day
SHOP = {
    "service.name": "shop",
    "span.name": "GET /items",
    "span.kind": "SPAN_KIND_SERVER",
    "status.code": "STATUS_CODE_UNSET",
}
QS = [0.5, 0.9, 0.95, 0.99, 1.0]


def hist(values: Iterable[float]) -> ExponentialHistogram:
    h = ExponentialHistogram()
    h.record(np.asarray(list(values), dtype=np.float64))
    return h


def latencies(seed: int, n: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(math.log(40.0), 0.6, n)


def open_store(tmp_path: Path, now: float = NOW, **kwargs) -> Store:
    return Store(tmp_path / "data" / "trm-otel.sqlite3", clock=lambda: now, **kwargs)


# ---------------------------------------------------------------- writes and reads


def test_windows_read_back_identical_and_the_file_is_wal(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    written = {start: hist(latencies(start)) for start in range(NOW - 600, NOW, 10)}
    assert store.write_latency(("default", DURATION_METRIC, SHOP, start, h) for start, h in written.items()) == 60
    (ref,) = store.select("default", DURATION_METRIC, [])
    got = store.latency_windows([ref], NOW - 600, NOW)[ref.key]
    assert [start for start, _ in got] == [float(s) for s in written]
    assert all(h == written[int(start)] and h.quantiles(QS) == written[int(start)].quantiles(QS) for start, h in got)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    store.close()  # idempotent
    reopened = open_store(tmp_path)
    (again,) = reopened.select("default", DURATION_METRIC, [])
    assert again == ref
    assert [h for _, h in reopened.latency_windows([again], NOW - 600, NOW)[again.key]] == list(written.values())
    reopened.close()


def test_late_data_merges_never_overwrites(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    first, late, later = latencies(1), latencies(2, 7), latencies(3, 400)
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW - 60, hist(first))])
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW - 60, hist(late))])
    # the same window twice in one call merges too
    store.write_latency(
        [
            ("default", DURATION_METRIC, SHOP, NOW - 60, hist(later[:200])),
            ("default", DURATION_METRIC, SHOP, NOW - 60, hist(later[200:])),
        ]
    )
    (ref,) = store.select("default", DURATION_METRIC, [])
    ((start, got),) = store.latency_windows([ref], NOW - 60, NOW)[ref.key]
    everything = hist(np.concatenate([first, late, later]))
    assert start == NOW - 60 and got.count == everything.count and got.quantiles(QS) == everything.quantiles(QS)

    gauge, counter = {"service.name": "shop", "queue": "orders"}, {"service.name": "shop"}
    for depth, requests in ((5.0, 3.0), (9.0, 4.0)):
        store.write_scalars(
            [
                ("default", "queue.depth", gauge, "gauge", NOW - 60, depth),
                ("default", "requests", counter, "sum", NOW - 60, requests),
            ]
        )
    refs = store.select("default", "queue.depth", []) + store.select("default", "requests", [])
    values = store.scalar_windows(refs, NOW - 60, NOW)
    assert [values[r.key] for r in refs] == [[(NOW - 60.0, 9.0)], [(NOW - 60.0, 7.0)]]


def test_window_starts_are_aligned_and_checked(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW - 55, hist([1.0]))])  # inside window NOW-60
    (ref,) = store.select("default", DURATION_METRIC, [])
    assert [s for s, _ in store.latency_windows([ref], NOW - 60, NOW)[ref.key]] == [NOW - 60.0]
    for bad in (-10, 12.5):
        with pytest.raises(ValueError, match="whole second"):
            store.write_latency([("default", DURATION_METRIC, SHOP, bad, hist([1.0]))])
    with pytest.raises(ValueError, match="kind"):
        store.write_scalars([("default", "x", {}, "latency", NOW, 1.0)])


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = open_store(tmp_path)

    class Broken(ExponentialHistogram):
        pass

    bad = Broken()
    bad.record([1.0, 2.0])
    bad.counts = np.array([0, 1, 1])  # untrimmed: refused by the codec before anything is written
    with pytest.raises(ValueError):
        store.write_latency(
            [("default", DURATION_METRIC, SHOP, NOW, hist([1.0])), ("default", DURATION_METRIC, {"new": "x"}, NOW, bad)]
        )
    assert store.select("default", DURATION_METRIC, []) == []
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW, hist([1.0]))])
    store._db.execute("UPDATE latency SET data = X'FF'")  # a corrupt stored window: merging into it fails
    with pytest.raises(ValueError, match="corrupt"):
        store.write_latency(
            [
                ("default", DURATION_METRIC, {"other": "series"}, NOW, hist([2.0])),
                ("default", DURATION_METRIC, SHOP, NOW, hist([3.0])),
            ]
        )
    assert [r.labels for r in store.select("default", DURATION_METRIC, [])] == [SHOP]
    assert store._db.execute("SELECT COUNT(*) FROM series").fetchone()[0] == 1


def test_nan_scalars_round_trip(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write_scalars([("default", "ratio", {}, "gauge", NOW - 10, math.nan)])
    (ref,) = store.select("default", "ratio", [])
    ((start, value),) = store.scalar_windows([ref], NOW - 10, NOW)[ref.key]
    assert start == NOW - 10 and math.isnan(value)


# ---------------------------------------------------------------- selection


def test_select_by_matchers_tenant_and_the_calls_alias(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    h = hist([5.0])
    rows = [
        ("default", DURATION_METRIC, {**SHOP, "span.name": name, "status.code": status}, NOW, h)
        for name in ("GET /items", "POST /cart", "GET /search")
        for status in ("STATUS_CODE_UNSET", "STATUS_CODE_ERROR")
    ]
    store.write_latency([*rows, ("acme", DURATION_METRIC, SHOP, NOW, h)])
    store.write_scalars([("default", CALLS_METRIC, SHOP, "sum", NOW, 1.0)])  # a same-named sum is not a span series

    def names(refs) -> list[tuple[str, str]]:
        return [(r.labels["span.name"], r.labels["status.code"][12:]) for r in refs]

    assert len(store.select("default", DURATION_METRIC, [])) == 6
    ok_gets = [Matcher("span.name", "=~", "GET .*"), Matcher("status.code", "!=", "STATUS_CODE_ERROR")]
    assert names(store.select("default", DURATION_METRIC, ok_gets)) == [("GET /items", "UNSET"), ("GET /search", "UNSET")]
    not_gets = [Matcher("span.name", "!~", "GET.*"), Matcher("missing", "=", "")]
    assert names(store.select("default", DURATION_METRIC, not_gets)) == [("POST /cart", "ERROR"), ("POST /cart", "UNSET")]
    duration = store.select("default", DURATION_METRIC, [Matcher("span.name", "=", "POST /cart")])
    calls = store.select("default", CALLS_METRIC, [Matcher("span.name", "=", "POST /cart")])
    assert [r.key for r in calls] == [r.key for r in duration] and {r.kind for r in calls} == {"latency"}
    assert {r.metric for r in calls} == {CALLS_METRIC}
    (acme,) = store.select("acme", DURATION_METRIC, [])
    assert acme.key not in {r.key for r in duration} and store.select("nobody", DURATION_METRIC, []) == []
    assert StorageSource(store, tenant="acme").select(DURATION_METRIC, []) == [acme]


def test_series_ids_are_stable_and_labels_canonical(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    a = store.series_id("default", "m", {"b": "2", "a": "1"}, "gauge")
    assert store.series_id("default", "m", {"a": "1", "b": "2"}, "gauge") == a
    assert store.series_id("default", "m", {"a": "1", "b": "2"}, "sum") != a
    assert canonical_labels({"overflow": True, "n": 3}) == '{"n":"3","overflow":"true"}'
    store.close()
    assert open_store(tmp_path).series_id("default", "m", {"a": "1", "b": "2"}, "gauge") == a


# ---------------------------------------------------------------- rollups and retention


def backfill(
    store: Store, rng: np.random.Generator, spans: int, span_s: float = DAY, flushes: int = 7
) -> dict[int, list[float]]:
    """Spans ending anywhere in the last ``span_s``, written window by window in shuffled flushes.

    Returns the durations by raw window start.
    """
    ends = NOW - rng.uniform(0, span_s, spans)
    durations = rng.lognormal(math.log(30.0), 0.8, spans)
    by_window: dict[int, list[float]] = defaultdict(list)
    for end, duration in zip(ends, durations):
        by_window[int(end // 10 * 10)].append(float(duration))
    windows = list(by_window)
    rng.shuffle(windows)
    for part in np.array_split(np.array(windows), flushes):
        store.write_latency(("default", DURATION_METRIC, SHOP, int(w), hist(by_window[int(w)])) for w in part)
    return by_window


def test_backfill_lands_in_windows_and_rollups(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    rng = np.random.default_rng(7)
    by_window = backfill(store, rng, 20_000)
    store.compact(NOW)
    (ref,) = store.select("default", DURATION_METRIC, [])
    for resolution in store.resolutions:
        expected: dict[int, list[float]] = defaultdict(list)
        for start, values in by_window.items():
            expected[start // resolution * resolution].extend(values)
        got = store.latency_windows([ref], NOW - DAY, NOW, resolution)[ref.key]
        assert {int(s): h.count for s, h in got} == {s: len(v) for s, v in expected.items() if s >= NOW - DAY}
        stored = rows_of(store, "latency", resolution)
        assert {start for _, start in stored} == set(expected)  # rows really exist at this resolution
    assert_rollups_are_merges(store)
    # a second back-fill after the rollups were made lands in them too
    backfill(store, rng, 3_000, flushes=2)
    store.compact(NOW)
    assert_rollups_are_merges(store)
    for resolution in store.resolutions:
        got = store.latency_windows([ref], NOW - DAY, NOW, resolution)[ref.key]
        assert sum(h.count for _, h in got) == 23_000


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), spans=st.integers(1, 4000), sigma=st.floats(0.1, 2.5))
def test_quantiles_of_a_day_are_the_same_at_every_resolution(
    tmp_path: Path, seed: int, spans: int, sigma: float
) -> None:
    """Merging stored windows gives the quantiles of one histogram of all the values."""
    path = tmp_path / f"{seed}-{spans}"
    store = Store(path / "db.sqlite3", clock=lambda: NOW)
    rng = np.random.default_rng(seed)
    ends = NOW - rng.uniform(0, DAY, spans)
    durations = rng.lognormal(math.log(30.0), sigma, spans)
    windows = (ends // 10 * 10).astype(np.int64)
    store.write_latency(
        ("default", DURATION_METRIC, SHOP, int(w), hist(durations[windows == w])) for w in np.unique(windows)
    )
    store.compact(NOW)
    (ref,) = store.select("default", DURATION_METRIC, [])
    one = hist(durations)
    for resolution in store.resolutions:
        windows_read = store.latency_windows([ref], NOW - DAY, NOW, resolution)[ref.key]
        merged = ExponentialHistogram.merged(h for _, h in windows_read)
        assert merged.count == one.count and merged.quantiles(QS) == one.quantiles(QS)
        assert (merged.scale, merged.offset) == (one.scale, one.offset) and np.array_equal(merged.counts, one.counts)
    store.close()


def test_reads_before_compaction_merge_the_finer_rows(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    backfill(store, np.random.default_rng(3), 5_000, span_s=3 * 3600)
    (ref,) = store.select("default", DURATION_METRIC, [])
    before = {r: store.latency_windows([ref], NOW - DAY, NOW, r)[ref.key] for r in (60, 3600)}
    store.compact(NOW - 1800)  # 1 m rollups up to half an hour ago; hours only up to 01:00 before
    halfway = {r: store.latency_windows([ref], NOW - DAY, NOW, r)[ref.key] for r in (60, 3600)}
    store.compact(NOW)
    after = {r: store.latency_windows([ref], NOW - DAY, NOW, r)[ref.key] for r in (60, 3600)}
    assert before == halfway == after
    assert len(after[3600]) == 3 and len(after[60]) == 180


def test_late_data_after_a_rollup_reaches_every_resolution(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW - 7200, hist(latencies(1)))])
    store.compact(NOW)
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW - 7190, hist(latencies(2)))])
    store.write_scalars(
        [("default", "requests", {}, "sum", NOW - 7200, 2.0), ("default", "depth", {}, "gauge", NOW - 7200, 1.0)]
    )
    store.compact(NOW)
    store.write_scalars(
        [("default", "requests", {}, "sum", NOW - 7190, 3.0), ("default", "depth", {}, "gauge", NOW - 7190, 8.0)]
    )
    (ref,) = store.select("default", DURATION_METRIC, [])
    both = hist(np.concatenate([latencies(1), latencies(2)]))
    for resolution in (60, 3600):
        ((start, got),) = store.latency_windows([ref], NOW - DAY, NOW, resolution)[ref.key]
        assert start == NOW - 7200 and got.quantiles(QS) == both.quantiles(QS) and got.count == 100
        assert len(rows_of(store, "latency", resolution)) == 1  # merged into the stored rollup
        refs = store.select("default", "requests", []) + store.select("default", "depth", [])
        values = store.scalar_windows(refs, NOW - DAY, NOW, resolution)
        assert [values[r.key] for r in refs] == [[(NOW - 7200.0, 5.0)], [(NOW - 7200.0, 8.0)]]
    assert_rollups_are_merges(store)


def test_scalar_rollups_add_sums_and_keep_the_last_gauge(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    rows = []
    for i, start in enumerate(range(NOW - 7200, NOW, 10)):
        rows.append(("default", "requests", {"service.name": "shop"}, "sum", start, 1.0))
        rows.append(("default", "hist.count", {"service.name": "shop"}, "histogram", start, 2.0))
        rows.append(("default", "depth", {"service.name": "shop"}, "gauge", start, float(i)))
    store.write_scalars(rows)
    store.compact(NOW)
    refs = {name: store.select("default", name, [])[0] for name in ("requests", "hist.count", "depth")}
    for resolution, per in ((60, 6), (3600, 360)):
        values = store.scalar_windows(list(refs.values()), NOW - 7200, NOW, resolution)
        assert {v for _, v in values[refs["requests"].key]} == {float(per)}
        assert {v for _, v in values[refs["hist.count"].key]} == {2.0 * per}
        last_of_each = [float(k * per + per - 1) for k in range(7200 // resolution)]
        assert [v for _, v in values[refs["depth"].key]] == last_of_each
        assert [s for s, _ in values[refs["depth"].key]] == [float(s) for s in range(NOW - 7200, NOW, resolution)]


def test_retention_deletes_exactly_the_old_rows(tmp_path: Path) -> None:
    retention = {10: 3600.0, 60: 6 * 3600.0, 3600: 2 * DAY}
    store = open_store(tmp_path, retention_s=retention)
    starts = range(NOW - 3 * DAY, NOW, 10)
    store.write_latency(("default", DURATION_METRIC, SHOP, s, hist([float(s % 997 + 1)])) for s in starts)
    store.write_scalars(("default", "requests", {}, "sum", s, 1.0) for s in starts)
    result = store.compact(NOW)
    for table in ("latency", "scalar"):
        for resolution, kept in retention.items():
            expected = {s // resolution * resolution for s in starts}
            expected = {s for s in expected if s + resolution > NOW - kept}
            assert {start for _, start in rows_of(store, table, resolution)} == expected, (table, resolution)
    assert result["deleted"][10] == 2 * (len(starts) - 360)
    assert_rollups_are_merges(store)
    # a day later the same rules apply to what is left
    store.compact(NOW + DAY)
    assert {start for _, start in rows_of(store, "latency", 10)} == set()
    assert min(start for _, start in rows_of(store, "latency", 3600)) == NOW - DAY
    assert store.compact(NOW + DAY) == {"rolled": {60: 0, 3600: 0}, "deleted": {10: 0, 60: 0, 3600: 0}}


def test_compaction_resumes_after_being_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path)
    backfill(store, np.random.default_rng(11), 8_000, span_s=6 * 3600)
    calls = 0
    real = Store._roll_latency

    def dies_on_the_fifth(self, *args):
        nonlocal calls
        calls += 1
        if calls == 5:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(Store, "_roll_latency", dies_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        store.compact(NOW)
    monkeypatch.undo()
    partial = store._progress[("latency", 60)]
    assert NOW - 6 * 3600 < partial < NOW
    store.close()
    reopened = open_store(tmp_path)
    assert reopened._progress[("latency", 60)] == partial
    reopened.compact(NOW)
    assert_rollups_are_merges(reopened)
    (ref,) = reopened.select("default", DURATION_METRIC, [])
    assert sum(h.count for _, h in reopened.latency_windows([ref], NOW - DAY, NOW, 3600)[ref.key]) == 8_000


def test_resolution_follows_retention(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.resolution_for(NOW - 3600) == 10
    assert store.resolution_for(NOW - DAY) == 10
    assert store.resolution_for(NOW - 3 * DAY) == 60
    assert store.resolution_for(NOW - 30 * DAY) == 3600
    assert store.resolution_for(NOW - 365 * DAY) == 3600
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW - 5 * DAY, hist([3.0]))])
    store.compact(NOW)
    (ref,) = store.select("default", DURATION_METRIC, [])
    assert [s for s, _ in store.latency_windows([ref], NOW - 6 * DAY, NOW)[ref.key]] == [NOW - 5.0 * DAY]
    with pytest.raises(ValueError, match="resolution_s"):
        store.latency_windows([ref], NOW - 60, NOW, resolution_s=120)
    with pytest.raises(ValueError, match="multiple"):
        open_store(tmp_path, retention_s={10: 60.0, 25: 600.0})
    with pytest.raises(ValueError, match="raw resolution"):
        open_store(tmp_path, retention_s={60: 60.0}, window_s=10)
    with pytest.raises(ValueError, match="whole number"):
        open_store(tmp_path, window_s=0.5)
    assert retention_from_config(RetentionConfig(), 10) == {10: DAY, 60: 7 * DAY, 300: 7 * DAY, 3600: 90 * DAY}
    assert retention_from_config(RetentionConfig.model_validate({"raw": "2h"}), 60) == {
        60: 7200.0,
        300: 7 * DAY,
        3600: 90 * DAY,
    }


def test_window_range_is_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write_latency(("default", DURATION_METRIC, SHOP, s, hist([1.0])) for s in range(NOW - 7200, NOW, 10))
    store.compact(NOW)
    (ref,) = store.select("default", DURATION_METRIC, [])
    raw = store.latency_windows([ref], NOW - 95, NOW - 30)[ref.key]
    assert [s for s, _ in raw] == [float(s) for s in range(NOW - 90, NOW - 30, 10)]
    minute = store.latency_windows([ref], NOW - 150, NOW - 60, 60)[ref.key]
    assert [(s, h.count) for s, h in minute] == [(NOW - 120.0, 6)]


@pytest.mark.parametrize("series_per_read", [50, 1])
def test_merged_steps_equal_merging_the_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, series_per_read: int
) -> None:
    """What a ``p95(...) by (span.name)`` range query reads: one histogram per step and group.

    Reading one series per lock hold makes a group's steps merge across reads.
    """
    monkeypatch.setattr(store_module, "_READ_CHUNK", series_per_read)
    store = open_store(tmp_path)
    rng = np.random.default_rng(5)
    names = ["GET /items", "GET /items", "POST /cart"]  # two series share a span name (two statuses)
    rows = []
    for i, name in enumerate(names):
        labels = {**SHOP, "span.name": name, "status.code": f"STATUS_CODE_{i}"}
        for start in range(NOW - 6 * 3600, NOW, 10):
            if rng.random() < 0.7:
                values = rng.lognormal(3.0 + i, 0.5, rng.integers(1, 40))
                rows.append(("default", DURATION_METRIC, labels, start, hist(values)))
    store.write_latency(rows)
    store.compact(NOW - 2 * 3600 - 1234)  # rollups for part of the range only: stored rows and a raw tail
    refs = store.select("default", DURATION_METRIC, [])
    start, end, step = NOW - 6 * 3600 + 17, NOW - 100, 300
    for resolution in (10, 60):
        merged = store.latency_merged(
            refs, start, end, step, group_of=lambda r: r.labels["span.name"], resolution_s=resolution
        )
        windows = store.latency_windows(refs, start, end, resolution)
        expected: dict[tuple[str, float], list[ExponentialHistogram]] = defaultdict(list)
        for ref in refs:
            for window_start, h in windows[ref.key]:
                expected[(ref.labels["span.name"], start + (window_start - start) // step * step)].append(h)
        got = {(name, t): h for name, steps in merged.items() for t, h in steps}
        assert set(got) == set(expected) and len(got) > 100
        for key, parts in expected.items():
            want = ExponentialHistogram.merged(parts)
            assert got[key] == want and got[key].quantiles(QS) == want.quantiles(QS), key
        assert all(ts == sorted(ts) for ts in ([t for t, _ in steps] for steps in merged.values()))
    per_series = store.latency_merged(refs, NOW - 3600, NOW, 3600)  # default grouping: each series, by key
    assert sorted(per_series) == sorted(r.key for r in refs)
    assert sum(h.count for steps in per_series.values() for _, h in steps) == sum(
        h.count for ws in store.latency_windows(refs, NOW - 3600, NOW).values() for _, h in ws
    )
    assert StorageSource(store).latency_merged(refs, NOW - 3600, NOW, 3600) == per_series
    with pytest.raises(ValueError, match="step_s"):
        store.latency_merged(refs, NOW - 60, NOW, 0)


def test_a_step_picks_the_coarsest_resolution_that_divides_it(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.resolution_for(NOW - DAY, step_s=300) == 300  # the 5 m tier: one row per step
    assert store.resolution_for(NOW - DAY, step_s=120) == 60
    assert store.resolution_for(NOW - DAY, step_s=30) == 10
    assert store.resolution_for(NOW - DAY, step_s=7) == 10  # nothing divides it: the finest
    assert store.resolution_for(NOW - DAY, step_s=7200) == 3600
    assert store.resolution_for(NOW - 3 * DAY, step_s=300) == 300
    assert store.resolution_for(NOW - 30 * DAY, step_s=300) == 3600  # the only one reaching back
    assert StorageSource(store).resolution_for(NOW - DAY, step_s=300) == 300


# ---------------------------------------------------------------- the SeriesSource view, stats, threads


def test_storage_source_is_a_series_source(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    source: SeriesSource = StorageSource(store)
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW - 20, hist([4.0, 8.0]))])
    store.write_scalars([("default", "system.memory.utilization", {"service.name": "shop"}, "gauge", NOW - 20, 0.5)])
    assert source.window_s == 10.0
    (lat,) = source.select(DURATION_METRIC, [Matcher("service.name", "=", "shop")])
    (mem,) = source.select("system.memory.utilization", [])
    assert [(s, h.count) for s, h in source.latency_windows([lat, mem], NOW - 60, NOW)[lat.key]] == [(NOW - 20.0, 2)]
    assert source.scalar_windows([lat, mem], NOW - 60, NOW) == {mem.key: [(NOW - 20.0, 0.5)]}


def test_stats(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    h = hist(latencies(0, 100))
    store.write_latency(("default", DURATION_METRIC, SHOP, s, h) for s in range(NOW - 3600, NOW, 10))
    store.compact(NOW)
    stats = store.stats()
    assert stats.series == 1 and stats.schema_version == SCHEMA_VERSION
    assert stats.latency_rows == {10: 360, 60: 60, 300: 12, 3600: 1}
    assert stats.latency_bytes[10] == 360 * len(encode(h))
    assert stats.bytes_on_disk > stats.latency_bytes[10]


def test_reads_and_writes_from_several_threads(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for i, start in enumerate(range(NOW - 3600, NOW, 10)):
                labels = {**SHOP, "n": str(i % 7)}
                store.write_latency([("default", DURATION_METRIC, labels, start, hist(latencies(i, 20)))])
                if i % 60 == 0:
                    store.compact(start)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)
        finally:
            stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                refs = store.select("default", DURATION_METRIC, [])
                for windows in store.latency_windows(refs, NOW - 3600, NOW, 60).values():
                    assert all(h.count > 0 for _, h in windows)
        except BaseException as err:  # pragma: no cover
            errors.append(err)

    threads = [threading.Thread(target=writer), *(threading.Thread(target=reader) for _ in range(2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    refs = store.select("default", DURATION_METRIC, [])
    assert sum(h.count for w in store.latency_windows(refs, NOW - 3600, NOW).values() for _, h in w) == 360 * 20


# ---------------------------------------------------------------- schema


def test_a_version_1_database_is_migrated_at_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(path, isolation_level=None)
    assert migrate(connection, target=1) == 1
    h = hist(latencies(5))
    connection.execute(
        "INSERT INTO series (id, tenant, metric, labels, kind) VALUES (7, 'default', ?, ?, 'latency')",
        (DURATION_METRIC, canonical_labels(SHOP)),
    )
    connection.executemany(
        "INSERT INTO latency (series_id, resolution, window_start, data) VALUES (7, 10, ?, ?)",
        [(s, encode(h)) for s in range(NOW - 600, NOW, 10)],
    )
    connection.execute("INSERT INTO scalar VALUES (7, 10, ?, 1.5)", (NOW - 10,))
    connection.close()

    store = Store(path, clock=lambda: NOW)
    assert store.schema_version == SCHEMA_VERSION == 3
    versions = [v for (v,) in store._db.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [1, 2, 3]
    indexes = {name for (name,) in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"latency_by_time", "scalar_by_time"} <= indexes
    (ref,) = store.select("default", DURATION_METRIC, [Matcher("span.name", "=", "GET /items")])
    assert ref.key == 7
    assert all(got == h for _, got in store.latency_windows([ref], NOW - 600, NOW)[7])
    store.compact(NOW)
    ((start, hour),) = store.latency_windows([ref], NOW - 3600, NOW, 3600)[7]
    assert hour.count == 60 * h.count
    store.write_latency([("default", DURATION_METRIC, SHOP, NOW, h)])  # the cached id is the old one
    assert store._db.execute("SELECT COUNT(*) FROM series").fetchone()[0] == 1
    store.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store._db.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    store.close()
    with pytest.raises(SchemaError, match="newer"):
        open_store(tmp_path)
