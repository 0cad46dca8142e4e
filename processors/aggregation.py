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
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trm_otel.analysis import ChildTime
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.series import SeriesKey, SeriesRegistry
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.processors.stats import PipelineStats

__all__ = ["EndpointData", "LatencyAggregator", "Source", "WindowSeries"]

Source = Literal["spans", "metrics"]
_SOURCES: tuple[Source, ...] = ("spans", "metrics")
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
class WindowSeries:
    """One endpoint's per-window statistics, oldest first (for trends)."""

    service: str
    endpoint: str
    window_start_s: np.ndarray
    p95_ms: np.ndarray
    counts: np.ndarray


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
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        if history_s < window_s:
            raise ValueError(f"history_s ({history_s}) must be at least window_s ({window_s})")
        self.window_s = float(window_s)
        self.window_ns = int(round(window_s * 1e9))
        self.history_s = float(history_s)
        self.registry = SeriesRegistry(cardinality_limit)
        self.stats = stats if stats is not None else PipelineStats()
        self.clock = clock
        self.track_cumulative = track_cumulative
        self._windows: dict[Source, dict[int, dict[int, ExponentialHistogram]]] = {s: {} for s in _SOURCES}
        self._children: dict[int, dict[tuple[int, int], np.ndarray]] = {}
        self._cumulative: dict[int, ExponentialHistogram] = {}
        self._started_ns: dict[int, int] = {}
        self._endpoint_ids: dict[tuple[str, str], int] = {}
        self._endpoints: list[tuple[str, str]] = []
        self._endpoint_of_series = np.zeros(0, dtype=np.int64)
        self._orphans = _Orphans()
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
        series = self._series_ids(batch)
        window = batch.end_ns // self.window_ns
        oldest = self._oldest_window()
        keep = window >= oldest
        kept = int(np.count_nonzero(keep))
        if kept < n:
            self.stats.reject("outside_history", n - kept)
        durations = batch.duration_ms
        with self._lock:
            if kept:
                self._record_groups("spans", series[keep], window[keep], durations[keep], batch.end_ns[keep])
            self._attribute_children(batch, series, window, keep)
            self._evict(oldest)
        self.stats.accept(kept)
        return kept

    def _series_ids(self, batch: SpanBatch) -> np.ndarray:
        """Series id per span: strings are coded once per batch, keys looked up once per distinct key.

        A string's code is the row of its first occurrence, so each distinct
        combined code decodes back to a row holding that key: no second sort.
        """
        n = len(batch)
        if batch.service.count(batch.service[0]) == n:  # identity-fast: usually one service
            service_code = np.zeros(n, np.int64)
        else:
            service_code = np.fromiter(map({}.setdefault, batch.service, itertools.count()), np.int64, n)
        name_code = np.fromiter(map({}.setdefault, batch.name, itertools.count()), np.int64, n)
        combined = ((service_code * n + name_code) * 8 + batch.kind) * 4 + batch.status
        unique, inverse = np.unique(combined, return_inverse=True)
        lookup = self.registry.series_id
        service, name = batch.service, batch.name
        ids = np.fromiter(
            (
                lookup((service[code // (32 * n)], name[(code // 32) % n], (code // 4) % 8, code % 4))
                for code in unique.tolist()
            ),
            np.int64,
            len(unique),
        )
        return ids[inverse.ravel()]

    def add_histogram(self, key: SeriesKey, end_ns: int, histogram: ExponentialHistogram) -> bool:
        """Merge a latency histogram (ms) recorded by an OTel meter into its window."""
        window = end_ns // self.window_ns
        if window < self._oldest_window():
            self.stats.reject("outside_history")
            return False
        series_id = self.registry.series_id(key)
        with self._lock:
            windows = self._windows["metrics"].setdefault(window, {})
            existing = windows.get(series_id)
            if existing is None:
                windows[series_id] = histogram.copy()
            else:
                existing.merge(histogram)
        return True

    def _record_groups(
        self, source: Source, series: np.ndarray, window: np.ndarray, durations: np.ndarray, end_ns: np.ndarray
    ) -> None:
        first_window = int(window.min())
        key = series * (int(window.max()) - first_window + 1) + (window - first_window)
        order = np.argsort(key)  # one integer sort; lexsort on two keys is ~7x slower
        key, series, window, durations = key[order], series[order], window[order], durations[order]
        change = np.flatnonzero(key[1:] != key[:-1]) + 1
        starts = np.concatenate(([0], change))
        stops = np.concatenate((change, [len(series)]))
        windows = self._windows[source]
        first_end = int(end_ns.min())
        for start, stop in zip(starts.tolist(), stops.tolist()):
            series_id = int(series[start])
            values = durations[start:stop]
            by_series = windows.setdefault(int(window[start]), {})
            histogram = by_series.get(series_id)
            if histogram is None:
                histogram = by_series[series_id] = ExponentialHistogram()
            histogram.record(values)
            if self.track_cumulative and source == "spans":
                cumulative = self._cumulative.get(series_id)
                if cumulative is None:
                    cumulative = self._cumulative[series_id] = ExponentialHistogram()
                    self._started_ns[series_id] = first_end
                cumulative.record(values)

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
        return int((self.clock() - self.history_s) * 1e9) // self.window_ns

    def _first_window(self, range_s: float, now: float) -> int:
        return int((now - range_s) * 1e9) // self.window_ns

    def _evict(self, oldest: int) -> None:
        for windows in (*self._windows.values(), self._children):
            for stale in [w for w in windows if w < oldest]:
                del windows[stale]

    def _select(self, service: str | None, endpoint: str | None) -> Callable[[int], tuple[str, str] | None]:
        registry = self.registry

        def key_of(series_id: int) -> tuple[str, str] | None:
            info = registry[series_id]
            if service is not None and info.service != service:
                return None
            if endpoint is not None and info.name != endpoint:
                return None
            return info.service, info.name

        return key_of

    def endpoints(
        self, range_s: float, service: str | None = None, endpoint: str | None = None
    ) -> list[EndpointData]:
        """Each endpoint's merged histograms over the last ``range_s`` seconds."""
        now = self.clock()
        first = self._first_window(range_s, now)
        key_of = self._select(service, endpoint)
        found: dict[tuple[str, str], dict[Source, tuple[list[ExponentialHistogram], list[ExponentialHistogram], int]]]
        found = {}
        with self._lock:
            for source in _SOURCES:
                for win, by_series in self._windows[source].items():
                    if win < first:
                        continue
                    for series_id, histogram in by_series.items():
                        key = key_of(series_id)
                        if key is None:
                            continue
                        ok, errors, earliest = found.setdefault(key, {}).setdefault(source, ([], [], win))
                        (errors if self.registry[series_id].is_error else ok).append(histogram)
                        if win < earliest:
                            found[key][source] = (ok, errors, win)
            result = []
            for (svc, name), sources in sorted(found.items()):
                source: Source = "spans" if "spans" in sources else "metrics"
                ok, errors, earliest = sources[source]
                since = max(now - range_s, earliest * self.window_ns / 1e9)
                result.append(
                    EndpointData(
                        service=svc,
                        endpoint=name,
                        ok=ExponentialHistogram.merged(ok),
                        errors=ExponentialHistogram.merged(errors),
                        seconds=max(self.window_s, now - since),
                        source=source,
                    )
                )
        return result

    def window_series(
        self, range_s: float, service: str | None = None, endpoint: str | None = None
    ) -> list[WindowSeries]:
        """Per-window P95 and request count of each endpoint, for trend fitting.

        Only closed windows: the open one is still filling and would read
        as a sudden drop in throughput.
        """
        now = self.clock()
        first = self._first_window(range_s, now)
        last = int(now * 1e9) // self.window_ns - 1
        key_of = self._select(service, endpoint)
        per_key: dict[tuple[str, str], dict[Source, dict[int, list[ExponentialHistogram]]]] = {}
        with self._lock:
            for source in _SOURCES:
                for win, by_series in self._windows[source].items():
                    if not first <= win <= last:
                        continue
                    for series_id, histogram in by_series.items():
                        key = key_of(series_id)
                        if key is not None:
                            per_key.setdefault(key, {}).setdefault(source, {}).setdefault(win, []).append(histogram)
            result = []
            for (svc, name), sources in sorted(per_key.items()):
                by_window = sources.get("spans") or sources["metrics"]
                if not by_window:
                    continue
                wins = np.arange(min(by_window), last + 1)
                p95 = np.full(len(wins), np.nan)
                counts = np.zeros(len(wins), dtype=np.int64)
                for i, win in enumerate(wins.tolist()):
                    histograms = by_window.get(win)
                    if histograms:
                        merged = ExponentialHistogram.merged(histograms)
                        p95[i] = merged.quantile(0.95)
                        counts[i] = merged.count
                result.append(WindowSeries(svc, name, wins * self.window_ns / 1e9, p95, counts))
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

    def cumulative(self) -> Iterable[tuple[int, int, ExponentialHistogram]]:
        """``(series id, start ns, since-start histogram)`` of every span series."""
        with self._lock:
            return [(sid, self._started_ns[sid], h.copy()) for sid, h in self._cumulative.items()]
