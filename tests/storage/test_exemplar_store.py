"""Exemplars in storage: written with their window, merged with late data, expired with raw rows,
and read back by the aggregator once memory has let them go."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trm_otel.persistence import Flusher
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.series_source import DURATION_METRIC, Matcher
from trm_otel.storage import StorageSource, Store

NOW = 1_764_460_800
SHOP = {"service.name": "shop", "span.name": "GET /cart", "span.kind": "SPAN_KIND_SERVER",
        "status.code": "STATUS_CODE_UNSET"}


def record(span: int, ms: float, at: int = NOW, **attributes: str) -> dict:
    return {"trace_id": f"{span:032x}", "span_id": f"{span:016x}", "duration_ms": ms,
            "time_unix_nano": at * 10**9, "attributes": attributes}


def test_exemplars_are_written_merged_with_late_data_and_expired(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3", clock=lambda: NOW)
    first = {"slowest": [record(1, 900.0, user="u-1"), record(2, 50.0)], "sampled": [record(7, 3.0), record(9, 4.0)]}
    late = {"slowest": [record(3, 400.0)], "sampled": [record(4, 5.0)]}
    assert store.write_exemplars([("default", DURATION_METRIC, SHOP, NOW - 10, first)]) == 1
    store.write_exemplars([("default", DURATION_METRIC, SHOP, NOW - 10, late)])
    (ref,) = store.select("default", DURATION_METRIC, [Matcher("span.name", "=", "GET /cart")])
    ((start, sets),) = store.exemplars([ref], NOW - 60, NOW)[ref.key]
    assert start == NOW - 10
    assert [r["duration_ms"] for r in sets["slowest"]] == [900.0, 400.0]  # the slowest of both, as many as before
    assert [r["span_id"] for r in sets["sampled"]] == [f"{4:016x}", f"{7:016x}"]  # the union's bottom-2 by span id
    assert sets["slowest"][0]["attributes"] == {"user": "u-1"}
    assert store.exemplars([ref], NOW - 60, NOW - 10)[ref.key] == []
    store.compact(NOW + 2 * 86400)  # past the raw retention (24 h)
    assert store.exemplars([ref], 0, NOW + 86400)[ref.key] == []
    store.close()


def test_the_aggregator_reads_exemplars_of_flushed_windows_from_storage(tmp_path: Path) -> None:
    clock = [float(NOW)]
    aggregator = LatencyAggregator(window_s=10, history_s=600, clock=lambda: clock[0])
    store = Store(tmp_path / "db.sqlite3", clock=lambda: clock[0])
    source = StorageSource(store)
    aggregator.use_history(source, lambda: NOW - 600.0, store_age_s=86400, reach_s=86400)
    flusher = Flusher(aggregator, ScalarSeriesStore(window_s=10, history_s=600), store, clock=lambda: clock[0])

    def spans(durations: list[float], first_id: int) -> SpanBatch:
        n = len(durations)
        return SpanBatch(["shop"] * n, ["GET /cart"] * n, np.full(n, 2, np.int8), np.zeros(n, np.int8),
                         np.full(n, int((clock[0] - 1) * 1e9), np.int64), np.asarray(durations),
                         np.arange(first_id, first_id + n, dtype=np.uint64), np.zeros(n, np.uint64))

    aggregator.add_spans(spans([10.0] * 50 + [2500.0], first_id=100))  # the outlier in window NOW/10 - 1
    for step in range(1, 5):  # four windows later, with flushes in between
        clock[0] = NOW + 10.0 * step
        aggregator.add_spans(spans([12.0] * 10, first_id=1000 * step))
        flusher.flush()
    oldest_in_memory = min(aggregator._exemplar_windows)
    assert oldest_in_memory > (NOW - 1) // 10  # memory let the outlier's window go ...
    (ref,) = source.select(DURATION_METRIC, [])
    assert store.exemplars([ref], NOW - 100, NOW)[ref.key]  # ... once it was in storage
    (view,) = aggregator.endpoint_exemplars(300).values()
    assert (view[0].duration_ms, view[0].span_id) == (2500.0, f"{150:016x}")
    ((labels, slowest), *_) = aggregator.exemplars([Matcher("service.name", "=", "shop")], NOW - 300, clock[0] + 1)
    assert (labels["span.name"], slowest.duration_ms) == ("GET /cart", 2500.0)
    assert len(aggregator.exemplars([], NOW - 300, clock[0] + 1, min_ms=100)) == 1
    store.close()
