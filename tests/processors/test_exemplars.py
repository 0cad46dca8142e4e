"""Exemplar selection: exact, mergeable, bounded, and cheap to capture."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from trm_otel.processors import LatencySpanProcessor, PercentileMetricReader
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.exemplars import (
    MAX_ATTRIBUTES,
    MAX_VALUE_LENGTH,
    ExemplarTable,
    bounded_attributes,
    merge_records,
    pick,
    resolve,
)
from trm_otel.processors.span_batch import SpanBatch

NOW = 1_800_000_000.0
U64 = 2**64


def offer(table: ExemplarTable, series, duration, span_id, captured: list[int] | None = None) -> None:
    series = np.asarray(series, np.int64)
    rows = np.arange(series.size)

    def capture(picked: list[int]) -> list[object]:
        if captured is not None:
            captured.extend(picked)
        return [("handle", int(span_id[i])) for i in picked]

    table.add(series, np.asarray(duration, float), np.zeros(series.size, np.int64), np.asarray(span_id, np.uint64),
              rows, capture)


def kept(table: ExemplarTable) -> dict[tuple[int, bool], list[tuple[float, int]]]:
    entries = table.entries()
    out: dict[tuple[int, bool], list[tuple[float, int]]] = {}
    for s, d, i, sampled in zip(entries.series.tolist(), entries.duration_ms.tolist(), entries.span_id.tolist(),
                                entries.sampled.tolist()):
        out.setdefault((s, sampled), []).append((d, i))
    return out


def test_the_slowest_and_the_bottom_k_sample_are_exact_over_many_batches() -> None:
    rng = np.random.default_rng(1)
    n = 50_000
    series = rng.integers(0, 40, n)
    duration = rng.lognormal(3, 1, n)
    span_id = rng.integers(1, U64, n, dtype=np.uint64)
    table = ExemplarTable(slowest=3, sampled=3)
    for start in range(0, n, 997):  # uneven batches, as the pipeline coalesces them
        part = slice(start, start + 997)
        offer(table, series[part], duration[part], span_id[part])
    found = kept(table)
    for s in range(40):
        mine = series == s
        slowest = sorted(((float(d), int(i)) for d, i in zip(duration[mine], span_id[mine])), reverse=True)[:3]
        assert sorted(found[(s, False)], reverse=True) == slowest
        sample = sorted(int(i) for i in span_id[mine])[:3]
        assert sorted(i for _, i in found[(s, True)]) == sample


def test_sets_are_mergeable_whatever_the_order() -> None:
    rng = np.random.default_rng(2)
    n = 5000
    series, duration = rng.integers(0, 7, n), rng.lognormal(3, 1, n)
    span_id = rng.integers(1, U64, n, dtype=np.uint64)
    whole = ExemplarTable()
    offer(whole, series, duration, span_id)
    left, right = ExemplarTable(), ExemplarTable()
    order = rng.permutation(n)
    a, b = order[: n // 3], order[n // 3 :]
    offer(left, series[a], duration[a], span_id[a])
    offer(right, series[b], duration[b], span_id[b])
    left.merge(right)
    assert {k: sorted(v) for k, v in kept(left).items()} == {k: sorted(v) for k, v in kept(whole).items()}
    # A batch delivered twice (a retried export) may leave copies in the sets; readers count each span once.
    again = ExemplarTable()
    offer(again, series, duration, span_id)
    offer(again, series, duration, span_id)
    entries = again.entries()
    chosen = pick(entries, entries.series, 3, 3)
    picked = [(int(entries.series[i]), bool(entries.sampled[i]), int(entries.span_id[i])) for i in chosen]
    assert len(picked) == len(set(picked))
    assert {(s, i) for s, sampled, i in picked if sampled} <= {(s, i) for (s, sampled), v in kept(whole).items()
                                                               if sampled for _, i in v}
    twice = ExemplarTable(slowest=3, sampled=3)
    offer(twice, [0, 0], [9.0, 9.0], [5, 5])
    entries = twice.entries()
    assert sorted(int(entries.span_id[i]) for i in pick(entries, entries.series, 3, 3)) == [5, 5]  # once per set


def test_only_spans_that_enter_a_set_are_captured() -> None:
    rng = np.random.default_rng(3)
    table = ExemplarTable(slowest=3, sampled=3)
    captured: list[int] = []
    for _ in range(200):
        n = 1000
        offer(table, np.zeros(n), rng.lognormal(3, 1, n), rng.integers(1, U64, n, dtype=np.uint64), captured)
    # 200,000 spans of one series: about 2 * 3 * (1 + ln(200000 / 3)) enter a set at some point.
    assert len(captured) < 400
    entries = table.entries()
    assert all(h is not None and h[0] == "handle" for h in entries.handles.tolist())


def test_exemplar_memory_is_bounded_whatever_the_load() -> None:
    """1 M spans into one series and window: at most 3 + 3 exemplars, and the table does not grow."""
    aggregator = LatencyAggregator(window_s=10, history_s=600, clock=lambda: NOW)
    rng = np.random.default_rng(4)
    sizes = []
    for _ in range(50):
        n = 20_000
        batch = SpanBatch(
            ["svc"] * n, ["GET /cart"] * n, np.full(n, 2, np.int8), np.zeros(n, np.int8),
            np.full(n, int((NOW - 5) * 1e9), np.int64), rng.lognormal(3, 1, n),
            rng.integers(1, U64, n, dtype=np.uint64), np.zeros(n, np.uint64),
        )
        aggregator.add_spans(batch)
        (table,) = aggregator._exemplar_windows.values()
        sizes.append(table.nbytes)
    assert aggregator.stats.snapshot().accepted == 1_000_000
    assert len(table.entries()) <= 6
    assert len(set(sizes)) == 1  # the same few bytes after the first batch as after the millionth span
    (view,) = aggregator.endpoint_exemplars(300).values()
    assert 3 <= len(view) <= 6 and view[0].duration_ms >= view[1].duration_ms >= view[2].duration_ms


def test_pick_takes_each_groups_best_and_counts_a_span_once() -> None:
    table = ExemplarTable(slowest=2, sampled=2)
    offer(table, [0, 0, 0, 1, 1], [5.0, 9.0, 7.0, 1.0, 2.0], [50, 10, 30, 40, 20])
    entries = table.entries()
    chosen = pick(entries, entries.series, 1, 1)
    got = sorted((int(entries.series[i]), bool(entries.sampled[i]), int(entries.span_id[i])) for i in chosen)
    assert got == [(0, False, 10), (0, True, 10), (1, False, 20), (1, True, 20)]


def test_attributes_are_bounded_and_user_context_is_kept_first() -> None:
    pairs = [(f"attr.{i:02d}", "x" * 1000) for i in range(40)] + [("enduser.id", "u-42"), ("http.route", "/cart")]
    kept_attributes = bounded_attributes(pairs)
    assert len(kept_attributes) == MAX_ATTRIBUTES
    assert kept_attributes["enduser.id"] == "u-42" and kept_attributes["http.route"] == "/cart"
    assert all(len(v) <= MAX_VALUE_LENGTH for v in kept_attributes.values())


def test_a_serialized_otlp_span_resolves_to_trace_id_and_attributes() -> None:
    span = trace_pb2.Span(trace_id=bytes(range(16)), span_id=b"\x01" * 8, name="GET /cart")
    for key, value in (("enduser.id", common_pb2.AnyValue(string_value="u-7")),
                       ("http.response.status_code", common_pb2.AnyValue(int_value=503)),
                       ("cache.hit", common_pb2.AnyValue(bool_value=False))):
        span.attributes.add(key=key, value=value)
    details = resolve(span.SerializeToString())
    assert details.trace_id == bytes(range(16))
    assert details.attributes == {"enduser.id": "u-7", "http.response.status_code": "503", "cache.hit": "false"}
    assert resolve(None).attributes == {} and resolve(b"\xff\xff").trace_id == b""


def test_stored_sets_merge_like_the_union() -> None:
    def record(span: int, ms: float) -> dict:
        return {"trace_id": "ab" * 16, "span_id": f"{span:016x}", "duration_ms": ms, "time_unix_nano": 1,
                "attributes": {}}

    merged = merge_records(
        [record(1, 10.0), record(2, 30.0), record(2, 30.0)], [record(9, 1.0), record(3, 2.0), record(5, 3.0)], 2, 2
    )
    assert [r["duration_ms"] for r in merged["slowest"]] == [30.0, 10.0]
    assert [int(r["span_id"], 16) for r in merged["sampled"]] == [3, 5]


def test_in_process_spans_carry_trace_id_and_attributes_of_their_outlier() -> None:
    processor = LatencySpanProcessor()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(processor)
    reader = PercentileMetricReader(span_processors=[processor], interval_s=None)
    tracer = provider.get_tracer("test")
    import time

    now = time.time_ns()

    def span(duration_ms: float, user: str) -> int:
        s = tracer.start_span("GET /cart", start_time=now - int(duration_ms * 1e6),
                              attributes={"enduser.id": user, "http.route": "/cart"})
        s.end(end_time=now)
        return s.get_span_context().trace_id

    for i in range(2000):
        span(5.0 + i % 7, f"u-{i}")
    reader.drain()
    # Once the window's sets are full, fast spans no longer keep their attributes alive.
    assert processor.floors[0]
    for i in range(2000):
        span(5.0 + i % 7, f"v-{i}")
    slow_trace = span(900.0, "u-slow")
    assert len(processor._captured) < 200
    reader.drain()
    (exemplars,) = reader.aggregator.endpoint_exemplars(60).values()
    assert exemplars[0].trace_id == f"{slow_trace:032x}"
    assert exemplars[0].duration_ms == pytest.approx(900.0)
    assert exemplars[0].attributes["enduser.id"] == "u-slow"
    reader.shutdown()
    provider.shutdown()
