"""Queries answered over any :class:`~trm_otel.series_source.SeriesSource`.

    >>> evaluator = Evaluator(MemorySource(aggregator, scalars), slo=policy)          # doctest: +SKIP
    >>> evaluator.instant("p95(traces.span.metrics.duration[5m]) by (span.name)", time_s=now)  # doctest: +SKIP
    [Sample(labels={'span.name': 'GET /cart'}, time_s=..., value=18.2), ...]
    >>> evaluator.range("rate(traces.span.calls)", start_s, end_s, step_s=60)          # doctest: +SKIP
    [RangeSeries(labels={}, times_s=(...), values=(...))]

Time. An instant query at ``T`` reads the windows *starting* in ``[T - range,
T)``; a range query evaluates that at ``start, start + step, ... <= end``.
The range is the query's ``[range]``, else the step of a range query, else
one minute. The windows of the whole query are fetched once, for
``[start - range, end)``, and each step is a slice of them: a 24-hour query
at a 5-minute step is one read of the source, not 288.

Groups. Series are grouped by the values of the ``by`` labels (a missing
label reads as empty and is left out of the answer's labels); without
``by`` all selected series form one group with no labels. A group with no
data at a step has no point there, as in Prometheus: "no requests" is not a
P95 of zero.

Limits. Every query is checked before data is read: at most
``Limits.max_series`` selected series (default 1000) and
``Limits.max_points`` points in the answer (groups times steps, default
11000), each refused with a :class:`QueryError` that says the limit and how
to narrow the query. Times must lie within what a nanosecond int64 holds
(years 1677 to 2262, :data:`MAX_TIME_S`); anything else is refused the same
way rather than overflowing the sources' window arithmetic. Which
statistic applies to which kind of series is
:data:`~trm_otel.query.reducers.SUPPORTED`; a mismatch is refused at the
statistic's column.

Kinds. A selector answers from series of one kind. When it matches span
latency series and series of other kinds under the same name (an app
exporting its own ``traces.span.metrics.duration`` histogram alongside its
spans), the latency series answer and the others are ignored; see
:func:`_one_kind`. Any other mix is refused with the kinds it found.

Histogram-kind series (non-latency histograms received by OTLP) give their
per-window *count* through ``scalar_windows``; their ``sum`` and ``avg``
also need per-window sums, read from the optional
:class:`HistogramSumSource` method when the source has it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from trm_otel.histogram import ExponentialHistogram
from trm_otel.query.errors import QueryError
from trm_otel.query.expr import Query
from trm_otel.query.parser import parse_query
from trm_otel.query.reducers import SUPPORTED, Steps, reduce_latency, reduce_scalar
from trm_otel.series_source import SeriesKind, SeriesRef, SeriesSource
from trm_otel.slo import SloPolicy

__all__ = [
    "DEFAULT_APDEX_T_MS",
    "DEFAULT_RANGE_S",
    "Evaluator",
    "HistogramSumSource",
    "Limits",
    "MAX_TIME_S",
    "RangeSeries",
    "Sample",
]

#: The range of an instant query that gives none.
DEFAULT_RANGE_S = 60.0
#: Apdex T when the query gives none and there is no SLO policy.
DEFAULT_APDEX_T_MS = 300.0
#: The largest Unix time (either sign) a query may reach: nanoseconds must fit an int64.
MAX_TIME_S = 2**63 / 1e9 - 1.0

_KIND_TEXT: dict[str, str] = {
    "latency": "a latency series",
    "gauge": "a gauge",
    "sum": "a sum (counter)",
    "histogram": "a histogram",
}


@runtime_checkable
class HistogramSumSource(Protocol):
    """Optional: per-window sums of histogram-kind series (``scalar_windows`` gives their counts)."""

    def histogram_sum_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]]:
        """Per histogram series: ``(window start, sum of the values recorded in it)``."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    """What one query may read and return; see the module docstring."""

    max_series: int = 1000
    max_points: int = 11000

    def __post_init__(self) -> None:
        if self.max_series < 1 or self.max_points < 1:
            raise ValueError(f"limits must be >= 1, got max_series={self.max_series}, max_points={self.max_points}")


@dataclass(frozen=True, slots=True)
class Sample:
    """One group's value at an instant."""

    labels: dict[str, str]
    time_s: float
    value: float


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One group's values over a range: only the steps that had data."""

    labels: dict[str, str]
    times_s: tuple[float, ...]
    values: tuple[float, ...]


_Result = tuple[dict[str, str], np.ndarray, np.ndarray]


def _check_times(what: str, last_s: float, first_s: float) -> None:
    """Refuse a query reaching outside ``[-MAX_TIME_S, MAX_TIME_S]`` (``first_s`` includes the range)."""
    if not (math.isfinite(last_s) and -MAX_TIME_S <= first_s and last_s <= MAX_TIME_S):
        raise QueryError(
            f"{what} (minus the range) must be Unix times in seconds between {-MAX_TIME_S:.0f} and {MAX_TIME_S:.0f}"
        )


class Evaluator:
    """Answers queries over one source for one tenant.

    ``slo`` supplies apdex's default threshold per endpoint (its
    ``apdex_threshold_ms``); without it the default is 300 ms. Thread-safe
    as far as the source is: the evaluator keeps no state between queries.
    """

    def __init__(
        self,
        source: SeriesSource,
        *,
        slo: SloPolicy | None = None,
        limits: Limits | None = None,
        tenant: str = "default",
    ) -> None:
        self.source = source
        self.slo = slo
        self.limits = limits if limits is not None else Limits()
        self.tenant = tenant

    def instant(self, query: Query | str, time_s: float) -> list[Sample]:
        """Each group's value at ``time_s``, sorted by labels."""
        parsed = parse_query(query) if isinstance(query, str) else query
        range_s = parsed.range_s if parsed.range_s is not None else DEFAULT_RANGE_S
        _check_times("time", float(time_s), float(time_s) - range_s)
        found = self._evaluate(parsed, np.array([float(time_s)]), range_s)
        return [Sample(labels, float(time_s), float(values[0])) for labels, values, present in found if present[0]]

    def range(self, query: Query | str, start_s: float, end_s: float, step_s: float) -> list[RangeSeries]:
        """Each group's values at ``start_s, start_s + step_s, ... <= end_s``, sorted by labels."""
        parsed = parse_query(query) if isinstance(query, str) else query
        if not (math.isfinite(start_s) and math.isfinite(end_s) and math.isfinite(step_s)):
            raise QueryError("start, end and step must be finite")
        if not step_s > 0:
            raise QueryError(f"step must be greater than zero, got {step_s:g}")
        if end_s < start_s:
            raise QueryError("end must not be before start")
        steps = int(math.floor((end_s - start_s) / step_s + 1e-9)) + 1
        if steps > self.limits.max_points:
            raise QueryError(
                f"start, end and step give {steps} steps, over the limit of {self.limits.max_points} points "
                "per query; use a larger step or a shorter time range"
            )
        times = start_s + step_s * np.arange(steps, dtype=np.float64)
        range_s = parsed.range_s if parsed.range_s is not None else float(step_s)
        _check_times("start and end", float(times[-1]), float(start_s) - range_s)
        out = []
        for labels, values, present in self._evaluate(parsed, times, range_s):
            if present.any():
                out.append(RangeSeries(labels, tuple(times[present].tolist()), tuple(values[present].tolist())))
        return out

    # ----------------------------------------------------------- evaluation

    def _evaluate(self, query: Query, times: np.ndarray, range_s: float) -> list[_Result]:
        refs = _one_kind(query, self.source.select(query.metric, query.matchers, self.tenant))
        if len(refs) > self.limits.max_series:
            raise QueryError(
                f"the selector matches {len(refs)} series, over the limit of {self.limits.max_series} per query; "
                'narrow it with label matchers such as {service.name="..."}',
                query.selector_at[1],
                query.selector_at[0],
            )
        if not refs:
            return []
        kind = self._kind(query, refs)
        groups = _groups(refs, query.by)
        points = len(groups) * len(times)
        if points > self.limits.max_points:
            raise QueryError(
                f"the answer would have {points} points ({len(groups)} series x {len(times)} steps), over the "
                f"limit of {self.limits.max_points} per query; use a larger step, a shorter time range or "
                "fewer labels in by (...)"
            )
        steps = Steps(lows=times - range_s, highs=times, range_s=range_s)
        start_s, end_s = float(times[0] - range_s), float(times[-1])
        if kind == "latency":
            # Each answer needs windows no finer than its range and step: let storage read rollups.
            grain = float(range_s if len(times) < 2 else min(range_s, times[1] - times[0]))
            windows = self.source.latency_windows(refs, start_s, end_s, step_s=grain)
            threshold_of = self._threshold_function(query)
            return [
                (
                    labels,
                    *reduce_latency(
                        query.stat, query.quantile, _latency_members(members, windows), steps, threshold_of
                    ),
                )
                for labels, members in groups
            ]
        values = self.source.scalar_windows(refs, start_s, end_s)
        sums = self._histogram_sums(query, kind, refs, start_s, end_s)
        return [
            (
                labels,
                *reduce_scalar(
                    query.stat,
                    kind,
                    [values.get(ref.key, []) for ref in members],
                    None if sums is None else [sums.get(ref.key, []) for ref in members],
                    steps,
                ),
            )
            for labels, members in groups
        ]

    def _kind(self, query: Query, refs: Sequence[SeriesRef]) -> SeriesKind:
        """The one kind of the selected series (see :func:`_one_kind`), checked against the statistic."""
        kind: SeriesKind = refs[0].kind
        allowed = SUPPORTED[kind]
        if ("pNN" if query.quantile is not None else query.stat) not in allowed:
            names = [("p50/p95/p99/pNN" if name == "pNN" else name) for name in allowed]
            listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
            raise QueryError(
                f"{query.stat} does not apply to '{query.metric}', {_KIND_TEXT[kind]} (use {listed})",
                query.stat_at[1],
                query.stat_at[0],
            )
        return kind

    def _histogram_sums(
        self, query: Query, kind: SeriesKind, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]] | None:
        if kind != "histogram" or query.stat not in ("sum", "avg"):
            return None
        if not isinstance(self.source, HistogramSumSource):
            raise QueryError(
                f"{query.stat} of histogram series needs their per-window sums, which this data source does "
                "not keep; use count or rate",
                query.stat_at[1],
                query.stat_at[0],
            )
        return self.source.histogram_sum_windows(refs, start_s, end_s)

    def _threshold_function(self, query: Query) -> Callable[[dict[str, str]], float]:
        """Labels -> apdex T in ms: the query's, else the endpoint's SLO, else 300 ms."""
        if query.threshold_ms is not None:
            fixed = query.threshold_ms
            return lambda labels: fixed
        slo = self.slo
        if slo is None:
            return lambda labels: DEFAULT_APDEX_T_MS
        return lambda labels: slo.for_endpoint(
            labels.get("service.name", ""), labels.get("span.name", "")
        ).apdex_threshold_ms


def _one_kind(query: Query, refs: list[SeriesRef]) -> list[SeriesRef]:
    """The selected series a query answers from: all of one kind, else refused.

    When the selection mixes the latency kind with other kinds, only the
    latency series are kept. The latency series are the daemon's own view of
    the spans it received (its span-derived ``traces.span.metrics.*``
    series). The other kinds under the same name are a metric an application
    reported itself: an app set up with ``configure(otlp_endpoint=...)``
    exports its SDK's ``traces.span.metrics.duration`` histogram as well as
    its spans, so that metric duplicates, from the same spans, what the
    latency series already hold. Answering from the latency series gives
    every statistic the latency series support and counts each request once.
    A selector whose matchers pick only the reported series still reads
    them, as their own kind.

    Any other mix (a gauge and a sum of the same name, say) has no series
    that is clearly the right one, so it is refused, naming the kinds found.
    """
    kinds = sorted({ref.kind for ref in refs})
    if len(kinds) <= 1:
        return refs
    if "latency" in kinds:
        return [ref for ref in refs if ref.kind == "latency"]
    raise QueryError(
        f"'{query.metric}' selects series of several kinds ({', '.join(kinds)}); "
        "add label matchers so the selector picks one kind",
        query.selector_at[1],
        query.selector_at[0],
    )


def _latency_members(
    members: Sequence[SeriesRef], windows: Mapping[Hashable, list[tuple[float, ExponentialHistogram]]]
) -> list[tuple[dict[str, str], list[tuple[float, ExponentialHistogram]]]]:
    return [(dict(ref.labels), windows.get(ref.key, [])) for ref in members]


def _groups(refs: Sequence[SeriesRef], by: tuple[str, ...]) -> list[tuple[dict[str, str], list[SeriesRef]]]:
    """Refs grouped by their ``by`` label values, sorted by those values."""
    grouped: dict[tuple[str, ...], list[SeriesRef]] = {}
    for ref in refs:
        grouped.setdefault(tuple(ref.labels.get(name, "") for name in by), []).append(ref)
    return [
        ({name: value for name, value in zip(by, key) if value != ""}, members)
        for key, members in sorted(grouped.items())
    ]
