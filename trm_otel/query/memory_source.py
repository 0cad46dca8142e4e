"""The daemon's in-memory windows as a :class:`~trm_otel.series_source.SeriesSource`.

    >>> source = MemorySource(aggregator, scalars)                                 # doctest: +SKIP
    >>> refs = source.select("traces.span.metrics.duration", [Matcher("span.name", "=", "GET /cart")])  # doctest: +SKIP
    >>> source.latency_windows(refs, now - 300, now)                               # doctest: +SKIP

Span series come from the aggregator's registry, labelled with the
spanmetrics attributes of each series (``service.name``, ``span.name``,
``span.kind``, ``status.code``, plus each configured dimension that has a
value, e.g. ``http.route``; overflow series carry only ``service.name``,
``status.code`` and ``otel.metric.overflow="true"``), under both
``traces.span.metrics.duration`` and ``traces.span.metrics.calls``: so
``p95(traces.span.metrics.duration[5m]) by (http.route)`` slices by a
dimension, and storage keeps the same labels. Latency recorded by OTel meters
(``http.server.request.duration`` or the older ``http.server.duration``)
shares those keys and labels but is its own metric,
``http.server.request.duration`` in ms, exactly as storage writes it: an app
that is both traced and metered is then never counted twice in one query,
and a query reads the same series from memory and from storage. Other
metrics come from the :class:`~trm_otel.processors.scalar_series.ScalarSeriesStore`
with ``service.name`` plus their point attributes as labels (booleans as
``true``/``false``, the text storage keeps).

The registry never forgets a series, so a selector may match series with
no window in memory any more; they cost a dictionary entry, count towards
the query's series limit, and produce no result.

Everything here reads the stores under their own locks and returns copies,
so queries run on worker threads while ingestion continues.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import MappingProxyType
from collections.abc import Hashable, Mapping, Sequence

from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.metric_ingest import STABLE_METRIC
from trm_otel.processors.scalar_series import ScalarKey, ScalarSeriesStore
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher, SeriesRef, label_value

__all__ = ["METER_LATENCY_METRIC", "MemorySource", "MeterKey", "label_value"]

#: The metric meter-recorded latency is selected by (ms), as storage names it.
METER_LATENCY_METRIC = STABLE_METRIC
_SPAN_METRICS = (DURATION_METRIC, CALLS_METRIC)


@dataclass(frozen=True, slots=True)
class MeterKey:
    """The key of a meter-recorded latency series (span series are keyed by their plain id)."""

    series_id: int


class MemorySource:
    """What the daemon holds in memory, for one tenant (the daemon's data has no other)."""

    def __init__(self, aggregator: LatencyAggregator, scalars: ScalarSeriesStore, tenant: str = "default") -> None:
        self.aggregator = aggregator
        self.scalars = scalars
        self.tenant = tenant
        self.window_s = aggregator.window_s
        self._span_labels: list[Mapping[str, str]] = []  # by series id; the registry only grows
        self._lock = threading.Lock()

    # ------------------------------------------------------------ select

    def select(self, metric: str, matchers: Sequence[Matcher], tenant: str = "default") -> list[SeriesRef]:
        """Span series for the spanmetrics names, meter latency for its name, and scalar series of ``metric``."""
        if tenant != self.tenant:
            return []
        refs: list[SeriesRef] = []
        if metric in _SPAN_METRICS or metric == METER_LATENCY_METRIC:
            meter = metric == METER_LATENCY_METRIC
            for series_id, labels in enumerate(self._span_series_labels()):
                if all(m.matches(labels) for m in matchers):
                    refs.append(SeriesRef(MeterKey(series_id) if meter else series_id, metric, labels, "latency"))
        for info in self.scalars.series(name=metric):
            labels = {"service.name": info.service}
            labels.update((name, label_value(value)) for name, value in info.attributes.items())
            if all(m.matches(labels) for m in matchers):
                refs.append(SeriesRef(info.key, metric, labels, info.kind))
        return refs

    def metric_names(self, tenant: str = "default") -> set[str]:
        """The metrics ``select`` finds series of: the spanmetrics names once a span series exists, and
        every scalar metric held (meter latency is left out: it selects the span series' labels too)."""
        if tenant != self.tenant:
            return set()
        names = self.scalars.metric_names()
        if len(self.aggregator.registry):
            names.update(_SPAN_METRICS)
        return names

    def _span_series_labels(self) -> list[Mapping[str, str]]:
        """Labels of every span series so far, extended as the registry grows."""
        registry = self.aggregator.registry
        with self._lock:
            for series_id in range(len(self._span_labels), len(registry)):
                attributes = registry[series_id].attributes()
                labels = {name: label_value(value) for name, value in attributes.items()}
                self._span_labels.append(MappingProxyType(labels))  # shared by every ref: read-only
            return list(self._span_labels)

    # ----------------------------------------------------------- windows

    def _window_bounds(self, start_s: float, end_s: float) -> tuple[int, int]:
        """First and last window index whose start lies in ``[start_s, end_s)``."""
        window_ns = self.aggregator.window_ns
        first = -(-round(start_s * 1e9) // window_ns)
        last = -(-round(end_s * 1e9) // window_ns) - 1
        return first, last

    def latency_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float, *, step_s: float | None = None
    ) -> dict[Hashable, list[tuple[float, ExponentialHistogram]]]:
        """Span windows of span series, meter windows of meter series (``MeterKey``); memory has one grain."""
        refs = [ref for ref in refs if ref.kind == "latency"]
        result: dict[Hashable, list[tuple[float, ExponentialHistogram]]] = {ref.key: [] for ref in refs}
        first, last = self._window_bounds(start_s, end_s)
        if not refs or last < first:
            return result
        start_of = self.aggregator.grid.start_s
        span_ids = [int(ref.key) for ref in refs if not isinstance(ref.key, MeterKey)]  # type: ignore[call-overload]
        if span_ids:
            for series_id, windows in self.aggregator.window_histograms(span_ids, first, last).items():
                result[series_id] = [(start_of(win), histogram) for win, histogram in windows]
        meter_keys = [ref.key for ref in refs if isinstance(ref.key, MeterKey)]
        if meter_keys:
            metered = self.aggregator.metric_window_histograms(first, last)
            for key in meter_keys:
                windows = metered.get(key.series_id, [])
                result[key] = [(start_of(win), histogram) for win, histogram in windows]
        return result

    def scalar_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]]:
        """A gauge's last value, a sum's increase or a histogram's count per window."""
        return self._scalar_field(refs, start_s, end_s, "value")

    def histogram_sum_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]]:
        """Per histogram series: the sum of the values recorded in each window."""
        return self._scalar_field(refs, start_s, end_s, "sum", only="histogram")

    def _scalar_field(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float, field: str, only: str | None = None
    ) -> dict[Hashable, list[tuple[float, float]]]:
        # The store answers "the last range_s seconds": ask for enough to reach start_s, then cut.
        now = self.scalars.clock()
        range_s = max(now - start_s, 0.0) + self.window_s
        result: dict[Hashable, list[tuple[float, float]]] = {}
        for ref in refs:
            if ref.kind == "latency" or (only is not None and ref.kind != only):
                continue
            key: ScalarKey = ref.key
            starts, values = self.scalars.window_values(key, range_s, field)
            result[key] = [
                (start, value)
                for start, value in zip(starts.tolist(), values.tolist())
                if start_s <= start < end_s
            ]
        return result
