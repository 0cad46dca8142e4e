"""The bounded hand-off: accepted means processed; full means refused, never dropped."""

from __future__ import annotations

import threading
import time

from trm_otel.pipeline import Pipeline


class Batch(list):
    """Anything with a length stands in for a SpanBatch here."""


def test_accepted_offers_are_processed_in_order_and_raw_handlers_get_the_request() -> None:
    seen, raw = [], []
    pipeline = Pipeline(traces=seen.append, max_pending_items=100)
    pipeline.add_handler("traces", raw.append, raw=True)
    pipeline.start()
    assert pipeline.offer_traces(Batch([1, 2]), request="req-1")
    assert pipeline.offer_traces(Batch([3]))  # no request: raw handlers skip it
    assert pipeline.offer_metrics("metrics-req", points=4)
    assert pipeline.flush(5)
    pipeline.stop()
    assert seen == [[1, 2], [3]]
    assert raw == ["req-1"]
    counters = pipeline.counters()
    assert counters.accepted == {"traces": 3, "metrics": 4, "logs": 0}
    assert counters.processed == counters.accepted
    assert counters.pending_items == 0


def test_offers_beyond_the_bound_are_refused_and_counted() -> None:
    release = threading.Event()
    pipeline = Pipeline(traces=lambda batch: release.wait(5), max_pending_items=10)
    pipeline.start()
    assert pipeline.offer_traces(Batch(range(6)))
    assert pipeline.offer_traces(Batch(range(4)))
    assert not pipeline.offer_traces(Batch(range(1)))
    release.set()
    assert pipeline.flush(5)
    assert pipeline.offer_traces(Batch(range(10)))
    pipeline.stop()
    counters = pipeline.counters()
    assert counters.refused["traces"] == 1
    assert counters.processed["traces"] == 20


def test_one_oversized_offer_is_accepted_when_the_queue_is_empty() -> None:
    pipeline = Pipeline(max_pending_items=5)
    assert pipeline.offer_traces(Batch(range(50)))
    assert not pipeline.offer_traces(Batch(range(1)))


def test_a_failing_handler_is_counted_and_the_others_still_run() -> None:
    seen = []

    def broken(batch: Batch) -> None:
        raise RuntimeError("boom")

    pipeline = Pipeline(traces=[broken, seen.append])
    pipeline.start()
    pipeline.offer_traces(Batch([1]))
    pipeline.stop()
    assert seen == [[1]]
    assert pipeline.counters().failed["traces"] == 1


def test_stop_processes_everything_accepted_then_refuses() -> None:
    seen = []
    pipeline = Pipeline(logs=seen.append)
    for i in range(100):
        pipeline.offer_logs(f"r{i}", records=1)
    pipeline.start()
    assert pipeline.stop(5)
    assert len(seen) == 100
    assert not pipeline.offer_logs("late", records=1)


def test_queued_offers_are_coalesced_but_raw_handlers_see_every_request() -> None:
    release = threading.Event()
    seen, raw = [], []

    def slow_first(batch: Batch) -> None:
        release.wait(5)
        seen.append(list(batch))

    pipeline = Pipeline(traces=slow_first, coalesce={"traces": lambda parts: Batch(x for p in parts for x in p)})
    pipeline.add_handler("traces", raw.append, raw=True)
    pipeline.start()
    pipeline.offer_traces(Batch([0]), request="r0")
    time.sleep(0.1)  # the worker is now blocked in the first batch
    for i in range(1, 4):
        pipeline.offer_traces(Batch([i]), request=f"r{i}")
    release.set()
    pipeline.stop()
    assert seen == [[0], [1, 2, 3]]
    assert raw == ["r0", "r1", "r2", "r3"]
    assert pipeline.counters().processed["traces"] == 4
