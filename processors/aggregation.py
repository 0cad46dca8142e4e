"""Per-series, per-window exponential histograms, built in bulk.

    >>> aggregator = LatencyAggregator(window_s=10)
    >>> aggregator.add_spans(batch)                                    # doctest: +SKIP
    >>> [d.ok.quantile(0.95) for d in aggregator.endpoints(300)]       # doctest: +SKIP

Both the in-process span processor and the OTLP receiver feed this class, so
the two modes compute identical numbers. A batch is grouped by (series,
window) with one ``lexsort`` and each group is recorded with one numpy call;
nothing here loops per span except the series-key lookup. Windows are keyed
by span end time; views over a range are merges of windows, never averages
of percentiles.

Data comes from two sources: spans, and latency histograms recorded through
OTel meters (``http.server.request.duration``). When an endpoint has span
data in a range, its metric data is ignored there, because an ASGI app that
is traced and metered would otherwise count every request twice.

Configured ``dimensions`` extend the series key like the Collector's
spanmetrics connector (each a span attribute, else a resource attribute,
else its default); their values are read from the batch in bulk only when
dimensions are configured. Each window also keeps exemplars per series
(:mod:`trm_otel.processors.exemplars`): the slowest few spans and a uniform
sample, chosen in bulk with the histograms. With storage attached
(:meth:`LatencyAggregator.use_history`) memory keeps exemplars only until
their window has been flushed, and reads of older windows go to storage.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from trm_otel.analysis import ChildTime
from trm_otel.histogram import ExponentialHistogram
from trm_otel.series_source import DURATION_METRIC, Matcher, SeriesSource, label_value
from trm_otel.processors.exemplars import (
    DEFAULT_SAMPLED,
    DEFAULT_SLOWEST,
    MAX_VALUE_LENGTH,
    Entries,
    ExemplarTable,
    entries_as_dicts,
    merge_records,
    pick,
)
from trm_otel.processors.series import OVERFLOW_ENDPOINT, Dimension, SeriesKey, SeriesRegistry
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.processors.span_table import SpanTable, group_quantiles, merged_histograms
from trm_otel.processors.stats import PipelineStats
from trm_otel.processors.windows import WindowGrid
from trm_otel.views import Exemplar

__all__ = ["EndpointData", "Flushable", "LatencyAggregator", "Source", "WindowSeries"]

Source = Literal["spans", "metrics"]
#: How far back exports look for exemplars to attach to cumulative points.
RECENT_EXEMPLARS_S = 30.0
_MAX_ORPHANS = 50_000


@dataclass(frozen=True, slots=True)
class EndpointData:
    """One endpoint's merged histograms over a range (ms), split by outcome."""

    service: str
    endpoint: str
    ok: ExponentialHistogram
    errors: ExponentialHistogram
    seconds: float
    source: Source


@dataclass(frozen=True, slots=True)
class Flushable:
    """What storage should receive: per window, span tables, meter histograms by series id, exemplars."""

    spans: dict[int, SpanTable]
    metrics: dict[int, dict[int, ExponentialHistogram]]
    exemplars: dict[int, ExemplarTable] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WindowSeries:
    """One endpoint's per-window statistics, oldest first (for trends)."""

    service: str
    endpoint: str
    window_start_s: np.ndarray
    p95_ms: np.ndarray
    counts: np.ndarray


_NAME_BITS = 24
_MAX_NAME_CODES = 1 << _NAME_BITS
_MAX_SERVICE_CODES = 1 << 20


class _Codes(dict):  # type: ignore[type-arg]
    """str -> dense int, assigning the next one to a string never seen."""

    def __missing__(self, key: str) -> int:
        value = self[key] = len(self)
        return value


class _KeyCodes:
    """A cache from packed (service, name, kind, status) codes to series ids."""

    __slots__ = ("dimensions", "known", "names", "pairs", "series", "services")

    def __init__(self, dimensions: int = 0) -> None:
        self.services = _Codes()
        self.names = _Codes()
        self.known = np.zeros(0, np.int64)  # sorted packed codes
        self.series = np.zeros(0, np.int64)  # their series ids
        self.dimensions = [_Codes() for _ in range(dimensions)]
        self.pairs: dict[tuple[int, int], int] = {}  # (packed key, packed dimension codes) -> series id

    def learn(self, codes: np.ndarray, series: np.ndarray) -> None:
        known = np.concatenate((self.known, codes))
        order = np.argsort(known, kind="stable")
        self.known, self.series = known[order], np.concatenate((self.series, series))[order]


class _Orphans:
    """Children whose parent has not ended yet; kept for one more batch."""

    __slots__ = ("parent_span_id", "duration_ms", "series_id")

    def __init__(self) -> None:
        self.parent_span_id = np.zeros(0, dtype=np.uint64)
        self.duration_ms = np.zeros(0)
        self.series_id = np.zeros(0, dtype=np.int64)


class LatencyAggregator:
    """Thread-safe store of recent windows; the one place spans become histograms.

    ``history_s`` bounds memory: windows older than that are dropped (the
    storage layer keeps them for longer). ``track_cumulative`` keeps one
    since-start histogram per span series for cumulative OTLP export.
    ``dimensions`` add series labels (see the module doc);
    ``exemplars_slowest`` and ``exemplars_sampled`` bound the exemplars kept
    per series and window (0 turns a set off).
    """

    def __init__(
        self,
        window_s: float = 10.0,
        history_s: float = 3600.0,
        cardinality_limit: int = 2000,
        *,
        stats: PipelineStats | None = None,
        clock: Callable[[], float] = time.time,
        track_cumulative: bool = False,
        dimensions: Sequence[Dimension] = (),
        exemplars_slowest: int = DEFAULT_SLOWEST,
        exemplars_sampled: int = DEFAULT_SAMPLED,
    ) -> None:
        self.grid = WindowGrid(float(window_s), float(history_s))
        self.window_s = self.grid.window_s
        self.window_ns = self.grid.window_ns
        self.history_s = self.grid.history_s
        self.registry = SeriesRegistry(cardinality_limit, dimensions)
        self.dimensions = self.registry.dimensions
        if exemplars_slowest < 0 or exemplars_sampled < 0:
            raise ValueError(f"exemplar counts must be >= 0, got {exemplars_slowest} and {exemplars_sampled}")
        self.exemplars_slowest = exemplars_slowest
        self.exemplars_sampled = exemplars_sampled
        self._exemplar_windows: dict[int, ExemplarTable] = {}
        self._late_exemplars: dict[int, ExemplarTable] = {}
        self._exemplars_stored = False  # with storage: memory keeps exemplars only until flushed
        self._exemplars_flushed_through = -1
        self._floors_cache: tuple[tuple[int, int, int, int], tuple[dict[Any, tuple[int, int]], ...]] | None = None
        self.stats = stats if stats is not None else PipelineStats()
        self.clock = clock
        self.track_cumulative = track_cumulative
        self._span_windows: dict[int, SpanTable] = {}
        self._metric_windows: dict[int, dict[int, ExponentialHistogram]] = {}
        self._children: dict[int, dict[tuple[int, int], np.ndarray]] = {}
        self._cumulative = SpanTable()
        self._started_ns = np.zeros(0, dtype=np.int64)
        self._view_keys: dict[tuple[str, str], int] = {}
        self._view_key_list: list[tuple[str, str]] = []
        self._view_key_of_series = np.zeros(0, dtype=np.int64)
        self._error_of_series = np.zeros(0, dtype=bool)
        self._endpoint_ids: dict[tuple[str, str], int] = {}
        self._endpoints: list[tuple[str, str]] = []
        self._endpoint_of_series = np.zeros(0, dtype=np.int64)
        self._orphans = _Orphans()
        self._codes = _KeyCodes(len(self.dimensions))
        self._flushed_through = -1  # windows up to here have been handed to storage
        self._late: dict[int, SpanTable] = {}
        self._late_metrics: dict[int, dict[int, ExponentialHistogram]] = {}
        self._history: tuple[SeriesSource, Callable[[], float]] | None = None
        self._store_age_s = self.history_s
        self._reach_s = self.history_s
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ input

    def add_spans(self, batch: SpanBatch) -> int:
        """Aggregate a batch of valid spans; returns how many were kept.

        Spans ending before the in-memory history are counted as rejected
        (``outside_history``), not silently merged into a wrong window.
        """
        n = len(batch)
        if n == 0:
            return 0
        window = batch.end_ns // self.window_ns
        oldest = self._oldest_window()
        keep = window >= oldest
        durations = batch.duration_ms
        with self._lock:
            series = self._series_ids(batch)
            stored = self._store_older(series, window, durations, keep, batch)
            kept = int(np.count_nonzero(keep))
            if kept + stored < n:
                self.stats.reject("outside_history", n - kept - stored)
            if kept:
                self._record(series[keep], window[keep], durations[keep], batch.end_ns[keep])
                if self.exemplars_slowest or self.exemplars_sampled:
                    rows = np.flatnonzero(keep) if kept < n else None
                    self._record_exemplars(series, window, batch, rows)
            self._attribute_children(batch, series, window, keep)
            self._evict(oldest)
        self.stats.accept(kept + stored)
        return kept + stored

    def _store_older(
        self, series: np.ndarray, window: np.ndarray, durations: np.ndarray, in_memory: np.ndarray, batch: SpanBatch
    ) -> int:
        """Spans older than memory but within storage's reach go to storage only (back-fill)."""
        if self._store_age_s <= self.history_s or in_memory.all():
            return 0
        oldest_stored = self.grid.oldest(self.clock() - (self._store_age_s - self.history_s))
        older = ~in_memory & (window >= oldest_stored)
        for win in np.unique(window[older]).tolist():
            chosen = older & (window == win)
            self._late_table(win).add(series[chosen], durations[chosen])
            if self.exemplars_slowest or self.exemplars_sampled:
                rows = np.flatnonzero(chosen)
                self._late_exemplar_table(win).add(
                    series[rows], durations[rows], batch.end_ns[rows], batch.span_id[rows], rows, batch.capture
                )
        return int(np.count_nonzero(older))

    def use_history(
        self, source: SeriesSource, boundary_s: Callable[[], float], *, store_age_s: float, reach_s: float
    ) -> None:
        """Answer ranges older than ``boundary_s()`` from ``source`` (storage), back to ``reach_s``,
        and accept spans up to ``store_age_s`` old for it (they skip memory and are flushed as late data)."""
        self._history = (source, boundary_s)
        self._store_age_s = max(store_age_s, self.history_s)
        self._reach_s = max(reach_s, self.history_s)
        self._exemplars_stored = hasattr(source, "exemplars")

    @property
    def max_range_s(self) -> float:
        """The longest range views can answer: memory's history, or storage's longest retention."""
        return self._reach_s

    def _series_ids(self, batch: SpanBatch) -> np.ndarray:
        """Series id per span with no Python work per span for keys seen before.

        Service and span names get stable integer codes (a dict lookup in C
        per span); the four key fields pack into one int64 that a sorted
        array maps to its series id. Only keys never seen before go through
        the registry, once each.
        """
        if self.dimensions:
            return self._series_ids_with_dimensions(batch)
        n = len(batch)
        codes = self._codes
        if len(codes.names) > _MAX_NAME_CODES or len(codes.services) > _MAX_SERVICE_CODES:
            self._codes = codes = _KeyCodes()  # junk names: start the cache over, ids stay
        combined = self._packed_keys(batch, codes)
        unique, inverse = np.unique(combined, return_inverse=True)
        inverse = inverse.ravel()
        position = np.searchsorted(codes.known, unique)
        position = np.minimum(position, max(codes.known.size - 1, 0))
        found = codes.known[position] == unique if codes.known.size else np.zeros(unique.size, bool)
        ids = np.where(found, codes.series[position] if codes.known.size else 0, -1)
        if not found.all():
            first = np.full(unique.size, n, np.int64)
            np.minimum.at(first, inverse, np.arange(n))
            lookup = self.registry.series_id
            fresh = np.flatnonzero(~found)
            for j in fresh.tolist():
                row = int(first[j])
                ids[j] = lookup((batch.service[row], batch.name[row], int(batch.kind[row]), int(batch.status[row])))
            codes.learn(unique[fresh], ids[fresh])
        return ids[inverse]

    @staticmethod
    def _packed_keys(batch: SpanBatch, codes: _KeyCodes) -> np.ndarray:
        """(service, name, kind, status) of each span packed into one int64 (stable across batches)."""
        n = len(batch)
        service = batch.service
        if n and service[0] is service[-1] and service.count(service[0]) == n:  # one resource: one lookup
            services = np.full(n, codes.services[service[0]], np.int64)
        else:
            services = np.fromiter(map(codes.services.__getitem__, service), np.int64, n)
        names = np.fromiter(map(codes.names.__getitem__, batch.name), np.int64, n)
        return (((services << _NAME_BITS) | names) << 5) | (batch.kind.astype(np.int64) << 2) | batch.status

    def _series_ids_with_dimensions(self, batch: SpanBatch) -> np.ndarray:
        """Series ids when dimensions extend the key: one code per value, a dict lookup per distinct key.

        Dimension values are read from the batch in one call per batch
        (:meth:`SpanBatch.attribute_columns`); a missing value takes the
        dimension's default (the same code, so the same series); values
        are cut at 256 characters.
        """
        n = len(batch)
        dims = self.dimensions
        codes = self._codes
        if (
            len(codes.names) > _MAX_NAME_CODES
            or len(codes.services) > _MAX_SERVICE_CODES
            or any(len(c) > _MAX_NAME_CODES for c in codes.dimensions)
            or len(codes.pairs) > _MAX_NAME_CODES
        ):
            self._codes = codes = _KeyCodes(len(dims))  # junk values: start the cache over, ids stay
        for known, dim in zip(codes.dimensions, dims):
            if dim.default is not None and None not in known:
                known[None] = known[dim.default]
        columns = batch.attribute_columns([d.name for d in dims])
        stacked = np.empty((n, 1 + len(dims)), np.int64)
        stacked[:, 0] = self._packed_keys(batch, codes)
        for i, (known, column) in enumerate(zip(codes.dimensions, columns)):
            stacked[:, i + 1] = np.fromiter(map(known.__getitem__, column), np.int64, n)
        unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        keys = list(map(tuple, unique.tolist()))
        ids = np.fromiter(map(codes.pairs.get, keys, itertools.repeat(-1)), np.int64, len(keys))
        missing = np.flatnonzero(ids < 0)
        if missing.size:
            first = np.full(len(keys), n, np.int64)
            np.minimum.at(first, inverse, np.arange(n))
            lookup = self.registry.series_id
            for j in missing.tolist():
                row = int(first[j])
                values = tuple(
                    (dim.default if column[row] is None else column[row][:MAX_VALUE_LENGTH])  # type: ignore[index]
                    for dim, column in zip(dims, columns)
                )
                key = (batch.service[row], batch.name[row], int(batch.kind[row]), int(batch.status[row]), *values)
                ids[j] = codes.pairs[keys[j]] = lookup(key)
        return ids[inverse]

    def add_histogram(self, key: SeriesKey, end_ns: int, histogram: ExponentialHistogram) -> bool:
        """Merge a latency histogram (ms) recorded by an OTel meter into its window."""
        window = end_ns // self.window_ns
        if window < self._oldest_window():
            self.stats.reject("outside_history")
            return False
        series_id = self.registry.series_id(key)
        with self._lock:
            targets = [self._metric_windows.setdefault(window, {})]
            if window <= self._flushed_through:
                targets.append(self._late_metrics.setdefault(window, {}))
            for windows in targets:
                existing = windows.get(series_id)
                if existing is None:
                    windows[series_id] = histogram.copy()
                else:
                    existing.merge(histogram)
        return True

    def _record(self, series: np.ndarray, window: np.ndarray, durations: np.ndarray, end_ns: np.ndarray) -> None:
        """Append to each window's table (a batch usually spans one or two windows)."""
        first = int(window.min())
        if first == int(window.max()):
            self._table(first).add(series, durations)
            if first <= self._flushed_through:
                self._late_table(first).add(series, durations)
        else:
            for win in np.unique(window).tolist():
                chosen = window == win
                self._table(win).add(series[chosen], durations[chosen])
                if win <= self._flushed_through:
                    self._late_table(win).add(series[chosen], durations[chosen])
        if self.track_cumulative:
            self._cumulative.add(series, durations)
            self._note_starts(series, end_ns - (durations * 1e6).astype(np.int64))

    def _note_starts(self, series: np.ndarray, start_ns: np.ndarray) -> None:
        """The earliest span start of each series begins its cumulative interval."""
        size = len(self.registry)
        if self._started_ns.size < size:
            self._started_ns = np.concatenate((self._started_ns, np.zeros(size - self._started_ns.size, np.int64)))
        never = np.iinfo(np.int64).max
        earliest = np.full(size, never)
        np.minimum.at(earliest, series, start_ns)
        unknown = (self._started_ns[:size] == 0) & (earliest != never)
        self._started_ns[:size][unknown] = earliest[unknown]

    def _record_exemplars(
        self, series: np.ndarray, window: np.ndarray, batch: SpanBatch, rows: np.ndarray | None
    ) -> None:
        """Offer the batch's ``rows`` (``None``: all) to their windows' exemplar tables (and late tables).

        A batch of one window, the usual case, is offered as it is, without
        copying a column.
        """
        durations, end_ns, span_ids = batch.duration_ms, batch.end_ns, batch.span_id
        if rows is not None:
            series, window = series[rows], window[rows]
            durations, end_ns, span_ids = durations[rows], end_ns[rows], span_ids[rows]
        else:
            rows = np.arange(len(batch))
        first = int(window.min())
        groups: list[tuple[int, slice]]
        if first == int(window.max()):
            groups = [(first, slice(None))]
        else:
            # One gather into window order (a counting sort), then each window is a slice.
            offset = window - first
            span = int(offset.max()) + 1
            small = offset.astype(np.int16) if span < 2**15 else offset
            order = np.argsort(small, kind="stable")
            bounds = np.concatenate(([0], np.cumsum(np.bincount(offset, minlength=span))))
            series, rows = series[order], rows[order]
            durations, end_ns, span_ids = durations[order], end_ns[order], span_ids[order]
            groups = [(first + i, slice(bounds[i], bounds[i + 1])) for i in range(span) if bounds[i + 1] > bounds[i]]
        for win, chosen in groups:
            offered = (series[chosen], durations[chosen], end_ns[chosen], span_ids[chosen], rows[chosen], batch.capture)
            if win > self._exemplars_flushed_through:
                self._exemplar_table(win).add(*offered)
            if win <= self._flushed_through:
                self._late_exemplar_table(win).add(*offered)

    def _exemplar_table(self, window: int) -> ExemplarTable:
        table = self._exemplar_windows.get(window)
        if table is None:
            table = self._exemplar_windows[window] = ExemplarTable(self.exemplars_slowest, self.exemplars_sampled)
        return table

    def _late_exemplar_table(self, window: int) -> ExemplarTable:
        table = self._late_exemplars.get(window)
        if table is None:
            table = self._late_exemplars[window] = ExemplarTable(self.exemplars_slowest, self.exemplars_sampled)
        return table

    def _late_table(self, window: int) -> SpanTable:
        table = self._late.get(window)
        if table is None:
            table = self._late[window] = SpanTable()
        return table

    def _table(self, window: int) -> SpanTable:
        table = self._span_windows.get(window)
        if table is None:
            table = self._span_windows[window] = SpanTable()
        return table

    # ------------------------------------------------------- parent and child

    def _endpoint_ids_of(self, series: np.ndarray) -> np.ndarray:
        """Dense endpoint id per series id (-1 for overflow series)."""
        if len(self._endpoint_of_series) < len(self.registry):
            grown = np.full(len(self.registry), -1, dtype=np.int64)
            grown[: len(self._endpoint_of_series)] = self._endpoint_of_series
            for series_id in range(len(self._endpoint_of_series), len(self.registry)):
                info = self.registry[series_id]
                if info.overflow:
                    continue
                key = (info.service, info.name)
                endpoint_id = self._endpoint_ids.get(key)
                if endpoint_id is None:
                    endpoint_id = self._endpoint_ids[key] = len(self._endpoints)
                    self._endpoints.append(key)
                grown[series_id] = endpoint_id
            self._endpoint_of_series = grown
        return self._endpoint_of_series[series]

    def _attribute_children(self, batch: SpanBatch, series: np.ndarray, window: np.ndarray, keep: np.ndarray) -> None:
        """Accumulate, per parent endpoint and child endpoint, how parent time splits.

        Children end before their parents, so a child whose parent is not in
        this batch waits (bounded) for the next one.
        """
        orphans = self._orphans
        is_child = (batch.parent_span_id != 0) & keep
        child_parent = np.concatenate((orphans.parent_span_id, batch.parent_span_id[is_child]))
        child_duration = np.concatenate((orphans.duration_ms, batch.duration_ms[is_child]))
        child_series = np.concatenate((orphans.series_id, series[is_child]))
        fresh = np.concatenate((np.zeros(len(orphans.parent_span_id), bool), np.ones(int(is_child.sum()), bool)))
        self._orphans = _Orphans()
        if len(child_parent) == 0:
            return
        candidates = np.flatnonzero(keep & (batch.span_id != 0))
        if len(candidates) == 0:
            self._keep_orphans(child_parent[fresh], child_duration[fresh], child_series[fresh])
            return
        order = candidates[np.argsort(batch.span_id[candidates], kind="stable")]
        sorted_ids = batch.span_id[order]
        position = np.minimum(np.searchsorted(sorted_ids, child_parent), len(sorted_ids) - 1)
        matched = sorted_ids[position] == child_parent
        unmatched = ~matched & fresh
        self._keep_orphans(child_parent[unmatched], child_duration[unmatched], child_series[unmatched])
        if not matched.any():
            return
        parent_row = order[position[matched]]
        child_duration = child_duration[matched]
        child_endpoint = self._endpoint_ids_of(child_series[matched])
        parent_endpoint = self._endpoint_ids_of(series[parent_row])
        valid = (child_endpoint >= 0) & (parent_endpoint >= 0)
        parent_row, child_duration, child_endpoint = parent_row[valid], child_duration[valid], child_endpoint[valid]
        if len(parent_row) == 0:
            return
        # Self time of each parent span: its duration minus all its children's.
        all_children = np.bincount(parent_row, weights=child_duration, minlength=len(batch))
        parent_self = np.maximum(batch.duration_ms - all_children, 0.0)
        # One row per (parent span, child endpoint).
        pairs, inverse = np.unique(np.stack((parent_row, child_endpoint)), axis=1, return_inverse=True)
        pair_child_ms = np.bincount(inverse.ravel(), weights=child_duration, minlength=pairs.shape[1])
        rows, child_eps = pairs[0], pairs[1]
        # One row per (parent endpoint, child endpoint, parent window).
        groups, group_of = np.unique(
            np.stack((self._endpoint_ids_of(series[rows]), child_eps, window[rows])), axis=1, return_inverse=True
        )
        group_of = group_of.ravel()
        size = groups.shape[1]
        totals = np.stack(
            (
                np.bincount(group_of, weights=batch.duration_ms[rows], minlength=size),
                np.bincount(group_of, weights=pair_child_ms, minlength=size),
                np.bincount(group_of, weights=parent_self[rows], minlength=size),
                np.bincount(group_of, minlength=size).astype(np.float64),
            ),
            axis=1,
        )
        for (parent_ep, child_ep, win), values in zip(groups.T.tolist(), totals):
            by_pair = self._children.setdefault(win, {})
            existing = by_pair.get((parent_ep, child_ep))
            if existing is None:
                by_pair[(parent_ep, child_ep)] = values.copy()
            else:
                existing += values

    def _keep_orphans(self, parent_span_id: np.ndarray, duration_ms: np.ndarray, series_id: np.ndarray) -> None:
        orphans = _Orphans()
        orphans.parent_span_id = parent_span_id[-_MAX_ORPHANS:]
        orphans.duration_ms = duration_ms[-_MAX_ORPHANS:]
        orphans.series_id = series_id[-_MAX_ORPHANS:]
        self._orphans = orphans

    # ------------------------------------------------------------------ reads

    def _oldest_window(self) -> int:
        return self.grid.oldest(self.clock())

    def _first_window(self, range_s: float, now: float) -> int:
        return self.grid.first(range_s, now)

    def _evict(self, oldest: int) -> None:
        # Late tables are kept until flushed: they may hold back-fill older than memory.
        for windows in (self._span_windows, self._metric_windows, self._children, self._exemplar_windows):
            for stale in [w for w in windows if w < oldest]:
                del windows[stale]

    def _view_keys_of(self) -> tuple[np.ndarray, np.ndarray]:
        """Per series: its (service, endpoint) key id and whether it counts errors."""
        size = len(self.registry)
        known = self._view_key_of_series.size
        if known < size:
            keys = np.empty(size - known, np.int64)
            errors = np.empty(size - known, bool)
            for offset, series_id in enumerate(range(known, size)):
                info = self.registry[series_id]
                key = (info.service, info.name)
                key_id = self._view_keys.get(key)
                if key_id is None:
                    key_id = self._view_keys[key] = len(self._view_key_list)
                    self._view_key_list.append(key)
                keys[offset] = key_id
                errors[offset] = info.is_error
            self._view_key_of_series = np.concatenate((self._view_key_of_series, keys))
            self._error_of_series = np.concatenate((self._error_of_series, errors))
        return self._view_key_of_series[:size], self._error_of_series[:size]

    def _selected_keys(self, service: str | None, endpoint: str | None) -> np.ndarray:
        """Boolean per view key: does it match the filter?"""
        return np.fromiter(
            (
                (service is None or svc == service) and (endpoint is None or name == endpoint)
                for svc, name in self._view_key_list
            ),
            bool,
            len(self._view_key_list),
        )

    def endpoints(
        self, range_s: float, service: str | None = None, endpoint: str | None = None
    ) -> list[EndpointData]:
        """Each endpoint's merged histograms over the last ``range_s`` seconds.

        With a history source (storage), windows before its boundary come
        from there and the rest from memory, so a 7-day range after a
        restart is as complete as storage is.
        """
        now = self.clock()
        first = self._first_window(range_s, now)
        stored: dict[tuple[str, str], tuple[ExponentialHistogram | None, ExponentialHistogram | None, int]] = {}
        boundary = first
        if self._history is not None:
            source, boundary_s = self._history
            boundary = max(first, self.grid.index(int(boundary_s() * 1e9)))
            if first < boundary:
                stored = self._stored_endpoints(
                    source, self.grid.start_s(first), self.grid.start_s(boundary), service, endpoint
                )
        with self._lock:
            key_of_series, error_of_series = self._view_keys_of()
            selected = self._selected_keys(service, endpoint)
            # From the boundary on, memory; before it, storage plus what memory
            # has not written there yet (unflushed windows, late data).
            chosen = [(w, t) for w, t in self._span_windows.items() if w >= boundary]
            chosen += [
                (w, t) for w, t in self._span_windows.items() if first <= w < boundary and w > self._flushed_through
            ]
            chosen += [(w, t) for w, t in self._late.items() if first <= w < boundary and w <= self._flushed_through]
            chosen.sort(key=lambda pair: pair[0])
            wins = [w for w, _ in chosen]
            tables = [t for _, t in chosen]
            n_keys = len(self._view_key_list)
            # Groups: key * 2 + is_error, for the selected keys only.
            group_of_series = np.where(selected[key_of_series], key_of_series * 2 + error_of_series, -1)
            histograms = merged_histograms(tables, group_of_series, 2 * n_keys)
            earliest: dict[int, int] = {}
            for win, table in zip(wins, tables):
                for key_id in np.unique(key_of_series[table.series_ids()]).tolist():
                    earliest.setdefault(key_id, win)
            metric_data = self._metric_endpoints(first, selected, set(earliest))
            keys = self._view_key_list
        result = []
        for key_id, win in earliest.items():
            if not selected[key_id]:
                continue
            ok, errors = histograms[2 * key_id], histograms[2 * key_id + 1]
            svc, name = keys[key_id]
            older_ok, older_errors, older_win = stored.pop((svc, name), (None, None, None))
            result.append(
                EndpointData(
                    service=svc,
                    endpoint=name,
                    ok=ExponentialHistogram.merged(h for h in (ok, older_ok) if h is not None),
                    errors=ExponentialHistogram.merged(h for h in (errors, older_errors) if h is not None),
                    seconds=self._covered(range_s, now, win if older_win is None else min(win, older_win)),
                    source="spans",
                )
            )
        for (svc, name), (older_ok, older_errors, older_win) in stored.items():
            result.append(
                EndpointData(
                    service=svc,
                    endpoint=name,
                    ok=older_ok if older_ok is not None else ExponentialHistogram(),
                    errors=older_errors if older_errors is not None else ExponentialHistogram(),
                    seconds=self._covered(range_s, now, older_win),
                    source="spans",
                )
            )
        for key_id, (ok_list, error_list, win) in metric_data.items():
            svc, name = keys[key_id]
            result.append(
                EndpointData(
                    service=svc,
                    endpoint=name,
                    ok=ExponentialHistogram.merged(ok_list),
                    errors=ExponentialHistogram.merged(error_list),
                    seconds=self._covered(range_s, now, win),
                    source="metrics",
                )
            )
        result.sort(key=lambda d: (d.service, d.endpoint))
        return result

    def _stored_endpoints(
        self, source: SeriesSource, start_s: float, end_s: float, service: str | None, endpoint: str | None
    ) -> dict[tuple[str, str], tuple[ExponentialHistogram | None, ExponentialHistogram | None, int]]:
        """Stored span latency in ``[start_s, end_s)`` merged per endpoint, split by outcome."""
        matchers = [Matcher("service.name", "=", service)] if service is not None else []
        if endpoint is not None:
            matchers.append(Matcher("span.name", "=", endpoint))
        refs = source.select(DURATION_METRIC, matchers)
        if not refs:
            return {}
        windows = source.latency_windows(refs, start_s, end_s)
        parts: dict[tuple[str, str], tuple[list[ExponentialHistogram], list[ExponentialHistogram], list[float]]] = {}
        for ref in refs:
            found = windows.get(ref.key) or []
            if not found:
                continue
            key = (ref.labels.get("service.name", ""), ref.labels.get("span.name", OVERFLOW_ENDPOINT))
            ok, errors, starts = parts.setdefault(key, ([], [], []))
            target = errors if ref.labels.get("status.code") == "STATUS_CODE_ERROR" else ok
            target.extend(h for _, h in found)
            starts.append(found[0][0])
        return {
            key: (
                ExponentialHistogram.merged(ok) if ok else None,
                ExponentialHistogram.merged(errors) if errors else None,
                self.grid.index(int(min(starts) * 1e9)),
            )
            for key, (ok, errors, starts) in parts.items()
        }

    def _covered(self, range_s: float, now: float, earliest_window: int) -> float:
        """Seconds of the range that had data: from the earliest window (or range start) to now."""
        since = max(now - range_s, earliest_window * self.window_ns / 1e9)
        return max(self.window_s, now - since)

    def _metric_endpoints(
        self, first: int, selected: np.ndarray, with_spans: set[int]
    ) -> dict[int, tuple[list[ExponentialHistogram], list[ExponentialHistogram], int]]:
        """Meter-recorded histograms of selected keys that have no span data in the range."""
        key_of_series, error_of_series = self._view_keys_of()
        found: dict[int, tuple[list[ExponentialHistogram], list[ExponentialHistogram], int]] = {}
        for win in sorted(w for w in self._metric_windows if w >= first):
            for series_id, histogram in self._metric_windows[win].items():
                key_id = int(key_of_series[series_id])
                if not selected[key_id] or key_id in with_spans:
                    continue
                ok, errors, earliest = found.setdefault(key_id, ([], [], win))
                (errors if error_of_series[series_id] else ok).append(histogram)
        return found

    def window_series(
        self, range_s: float, service: str | None = None, endpoint: str | None = None
    ) -> list[WindowSeries]:
        """Per-window P95 and request count of each endpoint, for trend fitting.

        Only closed windows: the open one is still filling and would read
        as a sudden drop in throughput. Span data is answered without
        building a histogram per window (:func:`group_quantiles`).
        """
        now = self.clock()
        first = self._first_window(range_s, now)
        last = int(now * 1e9) // self.window_ns - 1
        if last < first:
            return []
        wins = np.arange(first, last + 1)
        empty = SpanTable()
        with self._lock:
            key_of_series, _ = self._view_keys_of()
            selected = self._selected_keys(service, endpoint)
            tables = [self._span_windows.get(w, empty) for w in wins.tolist()]
            group_of_series = np.where(selected[key_of_series], key_of_series, -1)
            p95, counts = group_quantiles(tables, group_of_series, len(self._view_key_list), 0.95)
            metric_windows = {w: dict(self._metric_windows[w]) for w in wins.tolist() if w in self._metric_windows}
            keys = list(self._view_key_list)
        result = []
        starts_s = wins * self.window_ns / 1e9
        for key_id in np.flatnonzero(counts.sum(axis=0)).tolist():
            begin = int(np.flatnonzero(counts[:, key_id])[0])
            svc, name = keys[key_id]
            result.append(WindowSeries(svc, name, starts_s[begin:], p95[begin:, key_id], counts[begin:, key_id]))
        with_spans = {(r.service, r.endpoint) for r in result}
        result.extend(self._metric_window_series(metric_windows, wins, key_of_series, selected, keys, with_spans))
        result.sort(key=lambda w: (w.service, w.endpoint))
        return result

    def _metric_window_series(
        self,
        metric_windows: dict[int, dict[int, ExponentialHistogram]],
        wins: np.ndarray,
        key_of_series: np.ndarray,
        selected: np.ndarray,
        keys: list[tuple[str, str]],
        with_spans: set[tuple[str, str]],
    ) -> list[WindowSeries]:
        per_key: dict[int, dict[int, list[ExponentialHistogram]]] = {}
        for win, by_series in metric_windows.items():
            for series_id, histogram in by_series.items():
                key_id = int(key_of_series[series_id])
                if selected[key_id] and keys[key_id] not in with_spans:
                    per_key.setdefault(key_id, {}).setdefault(win, []).append(histogram)
        result = []
        for key_id, by_window in per_key.items():
            own = wins[wins >= min(by_window)]
            p95 = np.full(own.size, np.nan)
            counts = np.zeros(own.size, np.int64)
            for i, win in enumerate(own.tolist()):
                if win in by_window:
                    merged = ExponentialHistogram.merged(by_window[win])
                    p95[i], counts[i] = merged.quantile(0.95), merged.count
            svc, name = keys[key_id]
            result.append(WindowSeries(svc, name, own * self.window_ns / 1e9, p95, counts))
        return result

    def child_times(self, range_s: float, service: str | None = None) -> list[ChildTime]:
        """How parent spans' time splits among child operations over the range."""
        first = self._first_window(range_s, self.clock())
        sums: dict[tuple[int, int], np.ndarray] = {}
        with self._lock:
            for win, by_pair in self._children.items():
                if win < first:
                    continue
                for pair, values in by_pair.items():
                    if pair in sums:
                        sums[pair] = sums[pair] + values
                    else:
                        sums[pair] = values.copy()
            endpoints = list(self._endpoints)
        result = []
        for (parent_ep, child_ep), (parent_ms, child_ms, self_ms, parents) in sums.items():
            parent_service, parent_name = endpoints[parent_ep]
            child_service, child_name = endpoints[child_ep]
            if service is not None and parent_service != service:
                continue
            child_label = child_name if child_service == parent_service else f"{child_service}: {child_name}"
            result.append(
                ChildTime(
                    service=parent_service,
                    parent_endpoint=parent_name,
                    child_endpoint=child_label,
                    parent_total_ms=float(parent_ms),
                    child_total_ms=float(child_ms),
                    parent_self_ms=float(self_ms),
                    parents=int(parents),
                )
            )
        return result

    def window_histograms(
        self, series_ids: Sequence[int], first_window: int, last_window: int
    ) -> dict[int, list[tuple[int, ExponentialHistogram]]]:
        """Per span series: ``(window index, histogram)`` for windows in ``[first, last]`` with data.

        What storage flushes and what queries over recent data read; one
        vectorized pass per window, a histogram only where there is data.
        """
        wanted = np.asarray(series_ids, np.int64)
        result: dict[int, list[tuple[int, ExponentialHistogram]]] = {int(s): [] for s in wanted.tolist()}
        if wanted.size == 0:
            return result
        group_of_series = np.full(max(len(self.registry), int(wanted.max()) + 1), -1, np.int64)
        group_of_series[wanted] = np.arange(wanted.size)
        with self._lock:
            windows = sorted((w, t) for w, t in self._span_windows.items() if first_window <= w <= last_window)
            for win, table in windows:
                for series_id, histogram in zip(wanted.tolist(), table.histograms(group_of_series, wanted.size)):
                    if histogram is not None:
                        result[series_id].append((win, histogram))
        return result

    def take_flushable(self, through_window: int) -> Flushable:
        """Hand windows up to ``through_window`` to storage, once, plus late data since.

        A window is handed over when the caller considers it closed; spans
        that arrive for it afterwards still update memory and are collected
        separately, so storage (which merges) receives each span exactly once.
        """
        with self._lock:
            start = self._flushed_through
            exemplars = self._take_exemplars(start, through_window)
            spans = {w: t.copy() for w, t in self._span_windows.items() if start < w <= through_window}
            metrics = {
                w: {sid: h.copy() for sid, h in by_series.items()}
                for w, by_series in self._metric_windows.items()
                if start < w <= through_window
            }
            late_spans, self._late = self._late, {}
            late_metrics, self._late_metrics = self._late_metrics, {}
            for w, table in late_spans.items():
                if w in spans:
                    spans[w].merge(table)  # cannot happen twice: w was flushed before
                else:
                    spans[w] = table
            for w, by_series in late_metrics.items():
                merged = metrics.setdefault(w, {})
                for sid, histogram in by_series.items():
                    if sid in merged:
                        merged[sid].merge(histogram)
                    else:
                        merged[sid] = histogram
            self._flushed_through = max(self._flushed_through, through_window)
        return Flushable(spans, metrics, exemplars)

    def _take_exemplars(self, start: int, through_window: int) -> dict[int, ExemplarTable]:
        """Exemplars of windows in ``(start, through]`` plus late ones; with storage, forget older windows.

        Windows handed over by an earlier call are in storage by now, so
        memory lets their exemplars go (reads of them go to storage): memory
        holds exemplars of a few recent windows, whatever the history.
        """
        taken = {w: t.copy() for w, t in self._exemplar_windows.items() if start < w <= through_window}
        late, self._late_exemplars = self._late_exemplars, {}
        for w, table in late.items():
            if w in taken:
                taken[w].merge(table)
            else:
                taken[w] = table
        if self._exemplars_stored and start > self._exemplars_flushed_through:
            for stale in [w for w in self._exemplar_windows if w <= start]:
                del self._exemplar_windows[stale]
            self._exemplars_flushed_through = start
        return taken

    def windows_with_data(self) -> list[int]:
        """Window indexes held in memory (spans or meter histograms), oldest first."""
        with self._lock:
            return sorted(set(self._span_windows) | set(self._metric_windows))

    def metric_window_histograms(self, first_window: int, last_window: int) -> dict[int, list[tuple[int, ExponentialHistogram]]]:
        """Per meter-recorded series: ``(window index, histogram)`` in ``[first, last]``."""
        result: dict[int, list[tuple[int, ExponentialHistogram]]] = {}
        with self._lock:
            for win in sorted(w for w in self._metric_windows if first_window <= w <= last_window):
                for series_id, histogram in self._metric_windows[win].items():
                    result.setdefault(series_id, []).append((win, histogram.copy()))
        return result

    def cumulative(self) -> list[tuple[int, int, ExponentialHistogram]]:
        """``(series id, start ns, since-start histogram)`` of every span series with data."""
        with self._lock:
            series = self._cumulative.series_ids()
            if series.size == 0:
                return []
            group_of_series = np.full(self._cumulative.count.size, -1, np.int64)
            group_of_series[series] = np.arange(series.size)
            histograms = merged_histograms([self._cumulative], group_of_series, series.size)
            starts = self._started_ns
            return [
                (int(sid), int(starts[sid]) if sid < starts.size else 0, histogram)
                for sid, histogram in zip(series.tolist(), histograms)
                if histogram is not None
            ]

    # ------------------------------------------------------------ exemplars

    def _memory_exemplars(self, first: int, last: int) -> tuple[Entries, int]:
        """Memory's exemplar entries of windows in ``[first, last]``, and the last window storage holds.

        Storage holds (and memory has let go of) windows up to the second
        value, -1 without storage.
        """
        with self._lock:
            flushed = self._exemplars_flushed_through
            tables = [t for w, t in self._exemplar_windows.items() if first <= w <= last and w > flushed]
            entries = Entries.concat([t.entries() for t in tables])
        return entries, flushed if self._exemplars_stored else -1

    def _preferred_attributes(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def endpoint_exemplars(
        self, range_s: float, service: str | None = None, endpoint: str | None = None
    ) -> dict[tuple[str, str], list[Exemplar]]:
        """Per endpoint over the last ``range_s``: its slowest spans, then a uniform sample.

        Memory answers the windows it still holds; with storage, older
        windows are read from there (only their exemplar rows).
        """
        now = self.clock()
        first = self._first_window(range_s, now)
        last = self.grid.index(int(now * 1e9))
        entries, stored_through = self._memory_exemplars(first, last)
        with self._lock:
            key_of_series, _ = self._view_keys_of()
            selected = self._selected_keys(service, endpoint)
            keys = list(self._view_key_list)
        found: dict[tuple[str, str], tuple[list[Any], list[Any]]] = {}
        if len(entries):
            key_of_entry = key_of_series[entries.series]
            group = np.where(selected[key_of_entry], key_of_entry, -1)
            chosen = pick(entries, group, self.exemplars_slowest, self.exemplars_sampled).tolist()
            for i, record in zip(chosen, entries_as_dicts(entries, chosen, self._preferred_attributes())):
                found.setdefault(keys[group[i]], ([], []))[1 if entries.sampled[i] else 0].append(record)
        if stored_through >= first and self._history is not None:
            source = self._history[0]
            matchers = [Matcher("service.name", "=", service)] if service is not None else []
            if endpoint is not None:
                matchers.append(Matcher("span.name", "=", endpoint))
            refs = source.select(DURATION_METRIC, matchers)
            stored = {}
            if refs:
                stored = source.exemplars(refs, self.grid.start_s(first), self.grid.start_s(stored_through + 1))
            for ref in refs:
                key = (ref.labels.get("service.name", ""), ref.labels.get("span.name", OVERFLOW_ENDPOINT))
                for _, sets in stored.get(ref.key, ()):
                    slow, sampled = found.setdefault(key, ([], []))
                    slow.extend(sets.get("slowest", ()))
                    sampled.extend(sets.get("sampled", ()))
        return {
            key: _exemplar_views(merge_records(slow, sampled, self.exemplars_slowest, self.exemplars_sampled))
            for key, (slow, sampled) in found.items()
        }

    def exemplars(
        self,
        matchers: Sequence[Matcher],
        start_s: float,
        end_s: float,
        *,
        min_ms: float = 0.0,
        limit: int = 100,
    ) -> list[tuple[dict[str, str], Exemplar]]:
        """Exemplars of the span series matching ``matchers`` that ended in ``[start_s, end_s)``, slowest first.

        Every kept exemplar counts (slowest and sampled), each span once,
        at most ``limit``; each with its series' labels.
        """
        first = self.grid.index(int(start_s * 1e9))
        last = self.grid.index(int(end_s * 1e9))
        entries, stored_through = self._memory_exemplars(first, last)
        start_ns, end_ns = int(start_s * 1e9), int(end_s * 1e9)
        out: list[tuple[dict[str, str], dict[str, Any]]] = []
        if len(entries):
            size = len(self.registry)
            wanted = np.fromiter(
                (all(m.matches(_labels(self.registry[i].attributes())) for m in matchers) for i in range(size)),
                bool,
                size,
            )
            inside = wanted[entries.series] & (entries.duration_ms >= min_ms)
            inside &= (entries.end_ns >= start_ns) & (entries.end_ns < end_ns)
            index = np.flatnonzero(inside)
            index = index[np.argsort(-entries.duration_ms[index], kind="stable")]
            _, unique = np.unique(entries.span_id[index], return_index=True)
            index = index[np.sort(unique)][:limit].tolist()
            for i, record in zip(index, entries_as_dicts(entries, index, self._preferred_attributes())):
                out.append((_labels(self.registry[int(entries.series[i])].attributes()), record))
        if stored_through >= first and self._history is not None:
            source = self._history[0]
            refs = source.select(DURATION_METRIC, list(matchers))
            if refs:
                stored = source.exemplars(refs, self.grid.start_s(first), self.grid.start_s(stored_through + 1))
                for ref in refs:
                    for _, sets in stored.get(ref.key, ()):
                        for record in (*sets.get("slowest", ()), *sets.get("sampled", ())):
                            at = int(record["time_unix_nano"])
                            if float(record["duration_ms"]) >= min_ms and start_ns <= at < end_ns:
                                out.append((dict(ref.labels), record))
        out.sort(key=lambda pair: -float(pair[1]["duration_ms"]))
        seen: set[tuple[str, str]] = set()
        result = []
        for labels, record in out:
            identity = (record["trace_id"], record["span_id"])
            if identity in seen:
                continue
            seen.add(identity)
            result.append((labels, _exemplar_view(record)))
            if len(result) >= limit:
                break
        return result

    def recent_exemplars(self, horizon_s: float = RECENT_EXEMPLARS_S) -> dict[int, list[dict[str, Any]]]:
        """Per span series, its exemplars of the last ``horizon_s`` (at least the last three windows).

        What exports attach to the since-start histograms: the slowest few
        and the sample of what was recent, resolved (trace id, attributes).
        Only windows still in memory count (with storage: not yet flushed,
        or flushed since the previous flush).
        """
        last = self.grid.index(int(self.clock() * 1e9))
        windows = max(3, int(np.ceil(horizon_s / self.window_s)))
        entries, _ = self._memory_exemplars(last - windows + 1, last)
        if not len(entries):
            return {}
        chosen = pick(entries, entries.series, self.exemplars_slowest, self.exemplars_sampled).tolist()
        found: dict[int, list[dict[str, Any]]] = {}
        seen: set[tuple[int, int]] = set()
        for i, record in zip(chosen, entries_as_dicts(entries, chosen, self._preferred_attributes())):
            identity = (int(entries.series[i]), int(entries.span_id[i]))
            if identity not in seen:  # a span in both sets once
                seen.add(identity)
                found.setdefault(identity[0], []).append(record)
        return found

    def exemplar_floors(self) -> tuple[dict[Any, tuple[int, int]], ...]:
        """For the span processor: per status code, span name -> what a span must beat to be a candidate.

        ``(slowest floor ns, sample ceiling span id)`` from the current
        window's exemplar sets; a name with a series whose sets are not full
        has no entry (every span of it may enter). See
        :mod:`trm_otel.processors.span_processor`.
        """
        floors: tuple[dict[Any, tuple[int, int]], ...] = ({}, {}, {})
        now_ns = int(self.clock() * 1e9)
        window = now_ns // self.window_ns
        with self._lock:
            table = self._exemplar_windows.get(window)
            if table is None:
                return floors
            cached = self._floors_cache
            if cached is not None and cached[0] == (window, id(table), table.version, len(self.registry)):
                return cached[1]
            key = (window, id(table), table.version, len(self.registry))
            series, slow, sample = table.floors()
        open_names: set[tuple[int, str]] = set()
        found: dict[tuple[int, str], tuple[float, int]] = {}
        for sid, slow_ms, ceiling in zip(series.tolist(), slow.tolist(), sample.tolist()):
            info = self.registry[sid]
            if info.overflow or not 0 <= info.status <= 2:
                continue
            name_key = (info.status, info.name)
            if slow_ms == -np.inf or ceiling == 2**64 - 1:
                open_names.add(name_key)
                continue
            before = found.get(name_key)
            found[name_key] = (
                (slow_ms, ceiling) if before is None else (min(before[0], slow_ms), max(before[1], ceiling))
            )
        for (status, name), (slow_ms, ceiling) in found.items():
            if (status, name) not in open_names:
                floors[status][name] = (int(slow_ms * 1e6) if slow_ms != np.inf else 2**63, ceiling)
        self._floors_cache = (key, floors)
        return floors


def _labels(attributes: dict[str, Any]) -> dict[str, str]:
    return {k: label_value(v) for k, v in attributes.items()}


def _exemplar_view(record: dict[str, Any]) -> Exemplar:
    return Exemplar(
        trace_id=str(record["trace_id"]),
        span_id=str(record["span_id"]),
        duration_ms=round(float(record["duration_ms"]), 3),
        time=int(record["time_unix_nano"]) / 1e9,
        attributes=dict(record.get("attributes") or {}),
    )


def _exemplar_views(sets: dict[str, list[Any]]) -> list[Exemplar]:
    """The slowest first, then the sampled ones not among them."""
    seen = set()
    out = []
    for record in (*sets["slowest"], *sets["sampled"]):
        identity = (record["trace_id"], record["span_id"])
        if identity not in seen:
            seen.add(identity)
            out.append(_exemplar_view(record))
    return out
