"""Recent windows from memory, older ones from storage: one source stitched by time.

    >>> source = CombinedSource(MemorySource(aggregator, scalars), storage,        # doctest: +SKIP
    ...                         boundary_s=daemon.oldest_unflushed_window_start)

Every window is read from exactly one side: windows starting before
``boundary_s()`` from ``older``, from it onward from ``recent``. The daemon's
boundary is the start of the oldest window it still holds in memory that is
not yet flushed, so nothing is counted twice and nothing falls between the
two; it moves as windows are flushed and evicted, hence a callable, read
once per call.

Storage may answer in coarser windows than memory (1-minute or 1-hour
rollups, for long ranges or a coarse step), which do not start and end
where the read does. A rollup starting before the boundary also holds what
was flushed after it, which memory answers too (a 1-hour ``count`` once
counted every flushed span twice); a rollup starting before the read's
start is not read at all, so its part inside the range was missing (an
instant ``count(...[1h])`` at 07:05 lost 06:05-07:00). So when the older
side says which resolution a read gets (``resolution_for``), its coarse
windows are read only where they fit whole, from the start rounded up to
the end (or the boundary) rounded down, and the two edges at its finest
(raw windows are memory's, so they end exactly at the boundary): at most
one coarse window's worth of fine ones per edge.

A series both sides know (same metric, labels and kind) becomes one series
whose windows are the older side's followed by the recent side's; a series
only one side knows passes through. ``histogram_sum_windows`` (the optional
:class:`~trm_otel.query.evaluator.HistogramSumSource` method) reads each
side that has it and refuses, with a :class:`QueryError`, a time range that
reaches a side without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from trm_otel.histogram import ExponentialHistogram
from trm_otel.query.errors import QueryError
from trm_otel.series_source import Matcher, SeriesRef, SeriesSource

__all__ = ["CombinedKey", "CombinedSource"]


@dataclass(frozen=True, slots=True)
class CombinedKey:
    """A combined series' handle: its key on each side, ``None`` where unknown."""

    recent: Hashable | None
    older: Hashable | None


class CombinedSource:
    """``older`` before ``boundary_s()``, ``recent`` from it onward; ``window_s`` is recent's."""

    def __init__(self, recent: SeriesSource, older: SeriesSource, boundary_s: Callable[[], float]) -> None:
        self.recent = recent
        self.older = older
        self.boundary_s = boundary_s
        self.window_s = recent.window_s

    def select(self, metric: str, matchers: Sequence[Matcher], tenant: str = "default") -> list[SeriesRef]:
        """The union of both sides' series, merged by identical metric, labels and kind."""
        merged: dict[tuple[Any, ...], tuple[SeriesRef, dict[str, Hashable]]] = {}
        for side, source in (("older", self.older), ("recent", self.recent)):
            for ref in source.select(metric, matchers, tenant):
                identity = (ref.metric, tuple(sorted(ref.labels.items())), ref.kind)
                merged.setdefault(identity, (ref, {}))[1][side] = ref.key
        return [
            SeriesRef(CombinedKey(keys.get("recent"), keys.get("older")), ref.metric, dict(ref.labels), ref.kind)
            for ref, keys in merged.values()
        ]

    def metric_names(self, tenant: str = "default") -> set[str]:
        """The union of what each side can list (a side without ``metric_names`` lists nothing)."""
        names: set[str] = set()
        for source in (self.older, self.recent):
            method = getattr(source, "metric_names", None)
            if method is not None:
                names.update(method(tenant))
        return names

    def latency_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float, *, step_s: float | None = None
    ) -> dict[Hashable, list[tuple[float, ExponentialHistogram]]]:
        return self._stitched("latency_windows", refs, start_s, end_s, step_s=step_s)

    def scalar_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]]:
        return self._stitched("scalar_windows", refs, start_s, end_s)

    def histogram_sum_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]]:
        """Histogram sums, when the side(s) the time range touches keep them."""
        return self._stitched("histogram_sum_windows", refs, start_s, end_s)

    def _stitched(
        self, method: str, refs: Sequence[SeriesRef], start_s: float, end_s: float, **hints: Any
    ) -> dict[Hashable, list[Any]]:
        boundary = self.boundary_s()
        older_end = min(end_s, boundary)
        head, cut = self._coarse_span(older_end, start_s, hints.get("step_s"))
        result: dict[Hashable, list[Any]] = {ref.key: [] for ref in refs}
        for side, source, lo, hi, args in (
            ("older", self.older, start_s, min(head, older_end), {}),  # finest windows from the start
            ("older", self.older, max(start_s, head), min(cut, older_end), hints),  # whole coarse windows
            ("older", self.older, max(start_s, head, cut), older_end, {}),  # finest windows up to the boundary
            ("recent", self.recent, max(start_s, boundary), end_s, hints),
        ):
            if hi <= lo:
                continue
            own = {}
            for ref in refs:
                key = getattr(ref.key, side)
                if key is not None:
                    own[key] = ref
            if not own:
                continue
            read = getattr(source, method, None)
            if read is None:
                raise QueryError(
                    f"the {side} data source ({type(source).__name__}) does not keep histogram sums; use count or rate"
                )
            side_refs = [SeriesRef(key, ref.metric, ref.labels, ref.kind) for key, ref in own.items()]
            for key, windows in read(side_refs, lo, hi, **args).items():
                if key in own:
                    result[own[key].key].extend(windows)
        return result

    def _coarse_span(self, end_s: float, start_s: float, step_s: float | None) -> tuple[float, float]:
        """``(head, cut)``: where the older side's coarse windows for ``[start_s, end_s)`` fit whole."""
        resolution_for = getattr(self.older, "resolution_for", None)
        if resolution_for is None:
            return start_s, end_s
        resolution = float(resolution_for(start_s, step_s=step_s))
        if not resolution > 0:
            return start_s, end_s
        return math.ceil(start_s / resolution) * resolution, math.floor(end_s / resolution) * resolution
