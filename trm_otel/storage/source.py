"""Storage as a :class:`~trm_otel.series_source.SeriesSource`: what queries read for history.

    >>> source = StorageSource(store)                  # one tenant's view of the store  # doctest: +SKIP
    >>> refs = source.select("traces.span.metrics.duration", [Matcher("service.name", "=", "shop")])  # doctest: +SKIP
    >>> source.latency_windows(refs, now - 3600, now)  # 10 s windows: raw rows reach back 24 h  # doctest: +SKIP
    >>> source.latency_windows(refs, now - 3 * 86400, now)      # 1 m windows from the rollups  # doctest: +SKIP
    >>> source.latency_windows(refs, now - 86400, now, step_s=300)  # 1 m: the step's divisor  # doctest: +SKIP

The query evaluator reads memory and storage through the same protocol, so
a combined source can stitch recent in-memory windows to stored ones by
time. Windows come back at the resolution the store picks for the range
(:meth:`Store.resolution_for`): ``window_s`` is the raw window, and windows
of ranges older than the raw retention are 1-minute or 1-hour merges
starting on their own boundaries. ``resolution_s`` asks for one explicitly,
and ``step_s`` (a range query's step) for the coarsest that divides the
step: a day of 20 series reads in ~0.17 s as 1 m windows, ~1.4 s as raw ones.

Beyond the protocol, :meth:`StorageSource.latency_merged` answers what a
``p95(...) by (span.name)`` range query needs, one merged histogram per step
and group, without a histogram object per stored window.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from trm_otel.histogram import ExponentialHistogram
from trm_otel.series_source import Matcher, SeriesRef
from trm_otel.storage.store import Store

__all__ = ["StorageSource"]


class StorageSource:
    """One tenant's series in a :class:`Store`, answering the ``SeriesSource`` questions."""

    def __init__(self, store: Store, tenant: str = "default") -> None:
        self.store = store
        self.tenant = tenant
        self.window_s: float = store.window_s

    def select(self, metric: str, matchers: Sequence[Matcher], tenant: str | None = None) -> list[SeriesRef]:
        """Series of ``metric`` whose labels satisfy every matcher (this source's tenant unless named)."""
        return self.store.select(self.tenant if tenant is None else tenant, metric, matchers)

    def metric_names(self, tenant: str | None = None) -> set[str]:
        """The metrics this tenant has stored series of (not part of the ``SeriesSource`` protocol)."""
        return self.store.metric_names(self.tenant if tenant is None else tenant)

    def latency_windows(
        self,
        refs: Sequence[SeriesRef],
        start_s: float,
        end_s: float,
        resolution_s: float | None = None,
        *,
        step_s: float | None = None,
    ) -> dict[Hashable, list[tuple[float, ExponentialHistogram]]]:
        """Per latency series: ``(window start, histogram)`` for windows starting in ``[start_s, end_s)``.

        ``step_s`` (a range query's step) lets the store read the coarsest
        resolution that still divides it.
        """
        return self.store.latency_windows(refs, start_s, end_s, resolution_s, step_s=step_s)

    def latency_merged(
        self,
        refs: Sequence[SeriesRef],
        start_s: float,
        end_s: float,
        step_s: float,
        *,
        group_of: Callable[[SeriesRef], Hashable] | None = None,
        resolution_s: float | None = None,
    ) -> dict[Hashable, list[tuple[float, ExponentialHistogram]]]:
        """Per group: ``(step start, merged histogram)``; see :meth:`Store.latency_merged`.

        Not part of the ``SeriesSource`` protocol: an evaluator may use it
        when present (a day of 20 series at a 5 m step merges without a
        histogram object per 1 m window).
        """
        return self.store.latency_merged(refs, start_s, end_s, step_s, group_of=group_of, resolution_s=resolution_s)

    def exemplars(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, dict[str, list[dict[str, Any]]]]]]:
        """Per latency series: its stored exemplar sets of raw windows starting in ``[start_s, end_s)``.

        Not part of the ``SeriesSource`` protocol: the aggregator reads
        exemplars of windows it no longer holds from here.
        """
        return self.store.exemplars(refs, start_s, end_s)

    def scalar_windows(
        self,
        refs: Sequence[SeriesRef],
        start_s: float,
        end_s: float,
        resolution_s: float | None = None,
        *,
        step_s: float | None = None,
    ) -> dict[Hashable, list[tuple[float, float]]]:
        """Per scalar series: ``(window start, value)``: a gauge's last value, a sum's increase."""
        return self.store.scalar_windows(refs, start_s, end_s, resolution_s, step_s=step_s)

    def resolution_for(self, start_s: float, *, step_s: float | None = None) -> int:
        """The window length (s) a read starting at ``start_s`` (at ``step_s``) gets by default."""
        return self.store.resolution_for(start_s, step_s=step_s)
