"""Moving closed windows from the daemon's memory into storage, and compacting it.

    >>> flusher = Flusher(aggregator, scalars, store, flush_interval_s=10)   # doctest: +SKIP
    >>> flusher.flush()            # also run by the daemon every flush interval and at SIGTERM

A window is written once it has closed (its end has passed by a grace of
one window, for spans that end a little late), in one transaction per
flush; spans arriving later for a written window are written again as late
data, which storage merges. So after a crash, storage holds every window
written by the last flush before it: at most the open window plus one flush
interval (plus the grace window) of recent data is lost.

Span latency is stored as ``traces.span.metrics.duration`` with the
spanmetrics labels; latency histograms recorded by other SDKs' meters as
``http.server.request.duration`` (ms) with the same labels, so the two are
never counted twice in one series; scalar series under their own names.
Each span series' exemplars go with its window (resolved here, on the
flushing thread: trace ids and bounded attributes parsed from what the
receiver captured), in the store's ``exemplar`` table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.exemplars import ExemplarTable, entries_as_dicts, pick
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.series_source import DURATION_METRIC, label_value

__all__ = ["METER_LATENCY_METRIC", "Flusher"]

_logger = logging.getLogger(__name__)

METER_LATENCY_METRIC = "http.server.request.duration"


def _labels(attributes: dict[str, Any]) -> dict[str, str]:
    return {k: label_value(v) for k, v in attributes.items()}


class Flusher:
    """Writes closed windows to a ``Store`` and runs its compaction."""

    def __init__(
        self,
        aggregator: LatencyAggregator,
        scalars: ScalarSeriesStore,
        store: Any,
        *,
        flush_interval_s: float = 10.0,
        compact_interval_s: float = 60.0,
        tenant: str = "default",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aggregator = aggregator
        self.scalars = scalars
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.compact_interval_s = compact_interval_s
        self.tenant = tenant
        self.clock = clock
        self._scalars_through = -1
        self._lock = threading.Lock()
        self.flushes = 0
        self.rows_written = 0

    def closed_through(self, final: bool = False) -> int:
        """The newest window that may be written: closed for a whole grace window (all, when final)."""
        current = self.aggregator.grid.index(int(self.clock() * 1e9))
        return current if final else current - 2

    def flush(self, final: bool = False) -> int:
        """Write what has closed (everything when ``final``); returns rows written."""
        with self._lock:
            through = self.closed_through(final)
            batch = self.aggregator.take_flushable(through)
            latency = list(self._latency_rows(batch.spans, batch.metrics))
            scalars = list(self._scalar_rows(through))
            exemplars = list(self._exemplar_rows(batch.exemplars))
            if latency:
                self.store.write_latency(latency)
            if scalars:
                self.store.write_scalars(scalars)
            if exemplars and hasattr(self.store, "write_exemplars"):
                self.store.write_exemplars(exemplars)
            self.flushes += 1
            self.rows_written += len(latency) + len(scalars)
            return len(latency) + len(scalars)

    def _latency_rows(
        self, spans: dict[int, Any], metrics: dict[int, dict[int, ExponentialHistogram]]
    ) -> Iterator[tuple[str, str, dict[str, str], int, ExponentialHistogram]]:
        registry = self.aggregator.registry
        grid = self.aggregator.grid
        for window, table in sorted(spans.items()):
            series = table.series_ids()
            if series.size == 0:
                continue
            group_of_series = np.full(table.count.size, -1, np.int64)
            group_of_series[series] = np.arange(series.size)
            start_s = int(grid.start_s(window))
            for series_id, histogram in zip(series.tolist(), table.histograms(group_of_series, series.size)):
                if histogram is not None:
                    labels = _labels(registry[series_id].attributes())
                    yield self.tenant, DURATION_METRIC, labels, start_s, histogram
        for window, by_series in sorted(metrics.items()):
            start_s = int(grid.start_s(window))
            for series_id, histogram in by_series.items():
                labels = _labels(registry[series_id].attributes())
                yield self.tenant, METER_LATENCY_METRIC, labels, start_s, histogram

    def _exemplar_rows(
        self, tables: dict[int, ExemplarTable]
    ) -> Iterator[tuple[str, str, dict[str, str], int, dict[str, list[dict[str, Any]]]]]:
        registry = self.aggregator.registry
        grid = self.aggregator.grid
        preferred = tuple(d.name for d in self.aggregator.dimensions)
        slowest, sampled = self.aggregator.exemplars_slowest, self.aggregator.exemplars_sampled
        for window, table in sorted(tables.items()):
            entries = table.entries()
            if not len(entries):
                continue
            start_s = int(grid.start_s(window))
            order = pick(entries, entries.series, slowest, sampled).tolist()  # each span once per set, best first
            by_series: dict[int, dict[str, list[dict[str, Any]]]] = {}
            series_of, sampled_of = entries.series.tolist(), entries.sampled.tolist()
            for i, record in zip(order, entries_as_dicts(entries, order, preferred)):
                sets = by_series.get(series_of[i])
                if sets is None:
                    sets = by_series[series_of[i]] = {"slowest": [], "sampled": []}
                sets["sampled" if sampled_of[i] else "slowest"].append(record)
            for series_id, sets in by_series.items():
                yield self.tenant, DURATION_METRIC, _labels(registry[series_id].attributes()), start_s, sets

    def _scalar_rows(self, through: int) -> Iterator[tuple[str, str, dict[str, str], str, int, float]]:
        """Scalar windows closed since the last flush (written once; late scalar points stay in memory)."""
        grid = self.scalars.grid
        first = self._scalars_through + 1
        for info in self.scalars.series():
            starts, values = self.scalars.window_values(info.key, self.scalars.history_s)
            windows = (np.asarray(starts) * 1e9).astype(np.int64) // grid.window_ns
            chosen = (windows >= first) & (windows <= through)
            labels = _labels({"service.name": info.service, **info.attributes})
            for window, value in zip(windows[chosen].tolist(), np.asarray(values)[chosen].tolist()):
                yield self.tenant, info.name, labels, info.kind, int(grid.start_s(window)), value
        self._scalars_through = max(self._scalars_through, through)

    def compact(self) -> None:
        self.store.compact(self.clock())
