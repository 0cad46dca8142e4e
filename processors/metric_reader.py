"""The percentile metric reader: where buffered spans and meter histograms meet.

    >>> processor = LatencySpanProcessor()
    >>> reader = PercentileMetricReader(span_processors=[processor])
    >>> meter_provider = MeterProvider(metric_readers=[reader])       # doctest: +SKIP
    >>> reader.collect()                                               # doctest: +SKIP
    >>> reader.aggregator.endpoints(300)                               # doctest: +SKIP

A real OTel ``MetricReader``: each ``collect()`` (its own timer every
window, or on demand), and each span buffer reaching its high water (on
the thread that ended the span), drains the span buffers into the aggregator in bulk and
merges the delta latency histograms the SDK hands over. It asks the SDK for
delta temporality and base-2 exponential aggregation for histograms, so
what arrives is exactly mergeable; other readers on the same provider keep
their own preferences. With an exporter it also exports the span-derived
latency as spanmetrics (see :mod:`trm_otel.processors.spanmetrics`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from trm_otel.histogram import DEFAULT_MAX_SCALE, DEFAULT_MAX_SIZE
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.metric_ingest import latency_points
from trm_otel.processors.span_batch import batch_from_rows
from trm_otel.processors.span_processor import LatencySpanProcessor
from trm_otel.processors.spanmetrics import spanmetrics_data

__all__ = ["PercentileMetricReader"]

_logger = logging.getLogger(__name__)


class PercentileMetricReader(MetricReader):
    """Turns spans and latency histograms into per-window percentiles.

    ``interval_s`` (default: the aggregator's window) is how often the
    reader collects on its own; ``None`` or ``0`` disables the timer, leaving
    collection to ``collect()`` callers. A span processor reaching its high
    water mark wakes the timer thread early to drain it.
    """

    def __init__(
        self,
        aggregator: LatencyAggregator | None = None,
        *,
        span_processors: Iterable[LatencySpanProcessor] = (),
        exporter: MetricExporter | None = None,
        interval_s: float | None = -1.0,
        export_timeout_s: float = 10.0,
        resource_attributes: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            preferred_temporality={Histogram: AggregationTemporality.DELTA},
            preferred_aggregation={
                Histogram: ExponentialBucketHistogramAggregation(max_size=DEFAULT_MAX_SIZE, max_scale=DEFAULT_MAX_SCALE)
            },
        )
        self.aggregator = aggregator if aggregator is not None else LatencyAggregator(track_cumulative=exporter is not None)
        if exporter is not None and not self.aggregator.track_cumulative:
            raise ValueError("exporting spanmetrics needs LatencyAggregator(track_cumulative=True)")
        self._exporter = exporter
        self._export_timeout_s = export_timeout_s
        self._resource_attributes = resource_attributes
        self._processors: list[LatencySpanProcessor] = []
        self._drain_lock = threading.Lock()
        self._export_lock = threading.Lock()
        self._stop = threading.Event()
        self._shutdown_done = False
        for processor in span_processors:
            self.add_span_processor(processor)
        self._interval_s = self.aggregator.window_s if interval_s is not None and interval_s < 0 else interval_s
        self._thread: threading.Thread | None = None
        if self._interval_s:
            self._start_thread()
            if hasattr(os, "register_at_fork"):
                weak_restart = weakref.WeakMethod(self._start_thread)
                os.register_at_fork(after_in_child=lambda: (restart := weak_restart()) and restart())

    def add_span_processor(self, processor: LatencySpanProcessor) -> None:
        """Drain this processor on every collection (and early, at its high water)."""
        processor.stats = self.aggregator.stats
        processor.on_high_water = self._drain_unless_draining
        self._processors.append(processor)

    # ------------------------------------------------------------ collection

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object) -> None:
        rejected: Counter[str] = Counter()
        for key, end_ns, histogram in latency_points(metrics_data, rejected):
            self.aggregator.add_histogram(key, end_ns, histogram)
        self.aggregator.stats.merge_counts(rejected, Counter())
        self.drain()

    def _drain_unless_draining(self) -> None:
        """A processor's buffer reached its high water: drain on the thread ending the span.

        Not on this reader's thread: that thread competes for the GIL with
        the application's, and every GIL release inside a drain (locks,
        numpy calls) can cost it a whole switch interval (5 ms). Measured
        with one thread ending spans in a loop, a drain of 5,000 spans then
        took 40-400 ms instead of about 1.3 ms, the buffer filled meanwhile
        and 5-20% of the spans were dropped; on the ending thread no span
        was dropped and the overhead per span fell. If a drain is already
        under way (a collection), the processor calls again nearer full.
        """
        if self._drain_lock.acquire(blocking=False):
            try:
                self._drain_locked()
            except Exception:  # noqa: BLE001 - called from on_end: must never raise into the application
                _logger.exception("draining the span buffer failed")
            finally:
                self._drain_lock.release()

    def drain(self) -> int:
        """Aggregate every buffered span now; returns how many were kept."""
        with self._drain_lock:
            return self._drain_locked()

    def _drain_locked(self) -> int:
        kept = 0
        for processor in self._processors:
            rows, resources, captured = processor.drain_details()
            if not rows:
                continue
            batch, rejected, repaired = batch_from_rows(rows, resources, captured)
            self.aggregator.stats.merge_counts(rejected, repaired)
            kept += self.aggregator.add_spans(batch)
        # Tell the processors which spans may still become exemplars (dimensions need every span's
        # attributes: then no floors, and every span keeps them).
        floors = self.aggregator.exemplar_floors() if not self.aggregator.dimensions else ({}, {}, {})
        for processor in self._processors:
            processor.floors = floors
        return kept

    def export(self) -> bool:
        """Send the spanmetrics to the exporter (if any); False if it failed."""
        if self._exporter is None:
            return True
        data = spanmetrics_data(self.aggregator, time.time_ns(), self._resource_attributes)
        if data is None:
            return True
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._export_lock:
                result = self._exporter.export(data, timeout_millis=self._export_timeout_s * 1000)
            return getattr(result, "name", "SUCCESS") == "SUCCESS"
        except Exception:  # noqa: BLE001 - an unreachable backend must not stop aggregation
            _logger.exception("exporting spanmetrics failed")
            return False
        finally:
            detach(token)

    # ----------------------------------------------------------- the thread

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trm-otel-percentile-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._interval_s
        next_tick = time.monotonic() + self._interval_s
        window_ns = self.aggregator.window_ns
        window = time.time_ns() // window_ns
        while not self._stop.is_set():
            # Also wake when the window ends: the processors' exemplar floors belong to the old one.
            until_window_end = ((window + 1) * window_ns - time.time_ns()) / 1e9
            if self._stop.wait(max(0.0, min(next_tick - time.monotonic(), until_window_end))):
                break
            try:
                now_window = time.time_ns() // window_ns
                if now_window != window:
                    window = now_window
                    for processor in self._processors:
                        processor.floors = ({}, {}, {})
                if time.monotonic() >= next_tick:
                    next_tick += self._interval_s
                    self.collect()
                    self.export()
            except Exception:  # noqa: BLE001 - the timer thread must survive a bad collection
                _logger.exception("periodic latency collection failed")

    # ------------------------------------------------------------- lifecycle

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        super().force_flush(timeout_millis=timeout_millis)
        return self.export()

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_millis / 1000)
        try:
            self.collect(timeout_millis=timeout_millis)
        except Exception:  # noqa: BLE001 - the provider may already be gone
            _logger.warning("final metric collection failed; spans are still aggregated", exc_info=True)
        self.drain()  # also covers a reader that was never registered on a provider
        self.export()
        if self._exporter is not None:
            self._exporter.shutdown(timeout_millis=timeout_millis)
