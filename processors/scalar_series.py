"""Gauges, sums and non-latency histograms received by OTLP, kept per window.

    >>> store = ScalarSeriesStore(window_s=10, clock=lambda: 1_700_000_030.0)
    >>> key = ("queue.depth", "checkout", (("queue", "orders"),))
    >>> store.record_gauge(key, 1_700_000_005_000_000_000, 12.0)
    True
    >>> store.record_gauge(key, 1_700_000_025_000_000_000, 7.0)
    True
    >>> starts, values = store.window_values(key, range_s=60)
    >>> starts.tolist(), values.tolist()
    ([1700000000.0, 1700000020.0], [12.0, 7.0])

Latency histograms become exponential histograms in the
:class:`~trm_otel.processors.aggregation.LatencyAggregator`; every other
metric point a service sends ends up here, so the HTTP API, storage and the
query language can read it without knowing OTLP. Values are kept per window
(the aggregator's window, so a panel can line them up with latency):

* **gauge**: the window's last value (by point time);
* **sum**: the window's *delta* (the sender's cumulative sums are turned into
  deltas before they get here) and a running total;
* **histogram** (and summary): the window's count and sum, and running ones.

Running totals start at what a cumulative stream reported the first time it
was seen (its history) and grow by every delta since, so after a sender
restart they keep counting up like a Prometheus counter's ``increase``.

Series are keyed ``(metric name, service.name, sorted point attributes)``.
Points of several instances of one service with the same attributes share a
series: deltas add up (the right aggregate), while a gauge keeps whichever
instance reported last.

Memory is bounded three ways: windows older than ``history_s`` are dropped
(storage keeps longer history), a series that stops reporting is forgotten
with its last window, and each service may hold at most ``series_limit``
series (``max_series`` overall); points of series beyond a limit are dropped
and counted per service in :meth:`ScalarSeriesStore.overflow`, never folded
into another series (a folded gauge or mixed metric would be a wrong number,
not a coarse one).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trm_otel.processors.windows import WindowGrid

__all__ = ["Kind", "Latest", "ScalarKey", "ScalarSeriesStore", "SeriesInfo"]

#: (metric name, service.name, point attributes sorted by key, values hashable)
ScalarKey = tuple[str, str, tuple[tuple[str, Hashable], ...]]
Kind = Literal["gauge", "sum", "histogram"]
Field = Literal["value", "count", "sum", "mean"]


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What one series is, for listings and selectors.

    ``monotonic`` is only meaningful for sums (a counter rather than an
    up-down counter); ``last_s`` is the end time of its newest point.
    """

    key: ScalarKey
    name: str
    service: str
    attributes: dict[str, Hashable]
    kind: Kind
    unit: str
    monotonic: bool
    last_s: float


@dataclass(frozen=True, slots=True)
class Latest:
    """A series' newest state.

    ``value`` is the gauge's last value, the sum's running total, or the
    histogram's running sum; ``count`` is the histogram's running count
    (None for gauges and sums).
    """

    time_s: float
    value: float
    count: int | None = None


class _Series:
    """One series: its per-window slots in arrival order, plus running state.

    A window's slot is ``[a, b]``: gauge ``[time_ns, value]``, sum
    ``[delta, 0]``, histogram ``[count, sum]``.
    """

    __slots__ = ("kind", "unit", "monotonic", "windows", "last_ns", "last_value", "total", "total_count")

    def __init__(self, kind: Kind, unit: str, monotonic: bool) -> None:
        self.kind: Kind = kind
        self.unit = unit
        self.monotonic = monotonic
        self.windows: dict[int, list[float]] = {}
        self.last_ns = 0
        self.last_value = math.nan
        self.total = 0.0
        self.total_count = 0


class ScalarSeriesStore:
    """Thread-safe, in-memory, bounded per-window values of non-latency metrics.

    Writers (the OTLP metrics ingest) call ``record_*`` with the point's end
    time; a point older than ``history_s`` (or further ahead than that) is
    refused (returns False), as is
    one of a new series over a limit, or one whose kind differs from the
    series' first point (``kind_conflict``).
    """

    def __init__(
        self,
        window_s: float = 10.0,
        history_s: float = 3600.0,
        series_limit: int = 2000,
        *,
        max_series: int = 200_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.grid = WindowGrid(float(window_s), float(history_s))
        if series_limit < 1 or max_series < 1:
            raise ValueError(f"series_limit and max_series must be >= 1, got {series_limit} and {max_series}")
        self.window_s = self.grid.window_s
        self.window_ns = self.grid.window_ns
        self.history_s = self.grid.history_s
        self._history_windows = self.grid.history_windows
        self.series_limit = series_limit
        self.max_series = max_series
        self.clock = clock
        self._series: dict[ScalarKey, _Series] = {}
        self._per_service: Counter[str] = Counter()
        self._overflow: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._swept_before = -(2**63)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writes

    def record_gauge(self, key: ScalarKey, end_ns: int, value: float, *, unit: str = "") -> bool:
        """Keep ``value`` as its window's value unless a later point is there already."""
        with self._lock:
            series, window = self._slot(key, "gauge", unit, False, end_ns)
            if series is None:
                return False
            slot = series.windows.get(window)
            if slot is None:
                series.windows[window] = [float(end_ns), float(value)]
            elif end_ns >= slot[0]:
                slot[0], slot[1] = float(end_ns), float(value)
            if end_ns >= series.last_ns:
                series.last_ns, series.last_value = end_ns, float(value)
            return True

    def record_sum(
        self,
        key: ScalarKey,
        end_ns: int,
        delta: float | None,
        *,
        history: float = 0.0,
        monotonic: bool = True,
        unit: str = "",
    ) -> bool:
        """Add ``delta`` to its window and to the running total.

        ``history`` is what a cumulative stream had counted before it was
        first seen: it belongs to no window we hold, so it only goes into the
        running total; such a first point passes ``delta=None``.
        """
        with self._lock:
            series, window = self._slot(key, "sum", unit, monotonic, end_ns)
            if series is None:
                return False
            if delta is not None:
                slot = series.windows.setdefault(window, [0.0, 0.0])
                slot[0] += delta
            series.total += (delta or 0.0) + history
            series.last_ns = max(series.last_ns, end_ns)
            return True

    def record_histogram(
        self,
        key: ScalarKey,
        end_ns: int,
        count: int | None,
        total: float,
        *,
        history_count: int = 0,
        history_sum: float = 0.0,
        unit: str = "",
    ) -> bool:
        """Add a histogram's (or summary's) count and sum delta to its window.

        ``total`` is NaN when the sender did not report a sum (histograms of
        possibly negative values may not); ``history_*`` and ``count=None``
        as in :meth:`record_sum`.
        """
        with self._lock:
            series, window = self._slot(key, "histogram", unit, False, end_ns)
            if series is None:
                return False
            if count is not None:
                slot = series.windows.setdefault(window, [0.0, 0.0])
                slot[0] += count
                slot[1] += total
                series.total_count += count
                series.total += total
            series.total_count += history_count
            series.total += history_sum
            series.last_ns = max(series.last_ns, end_ns)
            return True

    def _slot(self, key: ScalarKey, kind: Kind, unit: str, monotonic: bool, end_ns: int) -> tuple[_Series | None, int]:
        """The series (created if the limits allow) and the window of ``end_ns``; call with the lock held."""
        oldest = self._oldest_window()
        if oldest > self._swept_before:
            self._sweep(oldest)
        window = end_ns // self.window_ns
        # Too old, or so far ahead that no eviction would reach it for longer than the history.
        if window < oldest or window > oldest + 2 * self._history_windows:
            self._refused["outside_history"] += 1
            return None, window
        series = self._series.get(key)
        if series is None:
            service = key[1]
            if self._per_service[service] >= self.series_limit or len(self._series) >= self.max_series:
                self._overflow[service] += 1
                return None, window
            series = self._series[key] = _Series(kind, unit, monotonic)
            self._per_service[service] += 1
        elif series.kind != kind:
            self._refused["kind_conflict"] += 1
            return None, window
        return series, window

    def _oldest_window(self) -> int:
        return self.grid.oldest(self.clock())

    def _sweep(self, oldest: int) -> None:
        """Drop windows before ``oldest`` and series with nothing newer.

        Runs at most once per window. Windows of a series are kept in arrival
        order, which is time order except for late points, so popping from
        the front is enough: a late old window waits at most behind newer
        ones that expire within ``history_s``.
        """
        self._swept_before = oldest
        first_ns = oldest * self.window_ns
        gone = []
        for key, series in self._series.items():
            windows = series.windows
            while windows:
                first = next(iter(windows))
                if first >= oldest:
                    break
                del windows[first]
            if series.last_ns < first_ns:
                gone.append(key)
        for key in gone:
            del self._series[key]
            self._per_service[key[1]] -= 1
            if not self._per_service[key[1]]:
                del self._per_service[key[1]]

    # ------------------------------------------------------------------- reads

    def series(self, name: str | None = None, service: str | None = None) -> list[SeriesInfo]:
        """Every series held (optionally of one metric and/or service), sorted by key."""
        with self._lock:
            found = [
                SeriesInfo(
                    key=key,
                    name=key[0],
                    service=key[1],
                    attributes=dict(key[2]),
                    kind=s.kind,
                    unit=s.unit,
                    monotonic=s.monotonic,
                    last_s=s.last_ns / 1e9,
                )
                for key, s in self._series.items()
                if (name is None or key[0] == name) and (service is None or key[1] == service)
            ]
        return sorted(found, key=lambda info: repr(info.key))

    def metric_names(self) -> set[str]:
        """The names of the metrics with at least one series held."""
        with self._lock:
            return {key[0] for key in self._series}

    def window_values(self, key: ScalarKey, range_s: float, field: Field = "value") -> tuple[np.ndarray, np.ndarray]:
        """``(window start seconds, values)`` of the windows with data in the last ``range_s``, oldest first.

        Only windows that received points are returned (a gap is a gap, not
        a zero). ``field="value"`` is the gauge's last value, the sum's delta
        or the histogram's count; histograms also offer ``"count"``,
        ``"sum"`` and ``"mean"`` (sum / count). An unknown key gives empty
        arrays.
        """
        if field not in ("value", "count", "sum", "mean"):
            raise ValueError(f"field must be one of value, count, sum, mean; got {field!r}")
        first = self.grid.first(range_s, self.clock())
        with self._lock:
            series = self._series.get(key)
            if series is None:
                return np.zeros(0), np.zeros(0)
            if field != "value" and series.kind != "histogram":
                raise ValueError(f"field {field!r} needs a histogram series; {key[0]!r} is a {series.kind}")
            items = sorted((w, slot) for w, slot in series.windows.items() if w >= first)
        windows = np.fromiter((w for w, _ in items), np.int64, len(items))
        slots = np.array([slot for _, slot in items], dtype=np.float64).reshape(len(items), 2)
        if series.kind == "gauge" or field == "sum":
            values = slots[:, 1]
        elif field == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                values = slots[:, 1] / slots[:, 0]
        else:
            values = slots[:, 0]
        return windows * (self.window_ns / 1e9), values

    def latest(self, key: ScalarKey) -> Latest | None:
        """The series' newest state, or None for an unknown key."""
        with self._lock:
            series = self._series.get(key)
            if series is None:
                return None
            time_s = series.last_ns / 1e9
            if series.kind == "gauge":
                return Latest(time_s, series.last_value)
            if series.kind == "sum":
                return Latest(time_s, series.total)
            return Latest(time_s, series.total, series.total_count)

    def overflow(self) -> dict[str, int]:
        """Points dropped per service because a series limit was reached."""
        with self._lock:
            return dict(self._overflow)

    def refused(self) -> dict[str, int]:
        """Points refused for other reasons (``outside_history``, ``kind_conflict``)."""
        with self._lock:
            return dict(self._refused)

    def __len__(self) -> int:
        with self._lock:
            return len(self._series)
