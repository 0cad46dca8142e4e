"""One output group's windows to one value per evaluation step.

    >>> steps = Steps(lows=np.array([0.0, 10.0]), highs=np.array([10.0, 20.0]), range_s=10.0)
    >>> values, present = reduce_scalar("sum", "sum", [[(0.0, 3.0), (10.0, 4.0)], [(10.0, 1.0)]], None, steps)
    >>> values.tolist(), present.tolist()
    ([3.0, 5.0], [True, True])

A step covers the windows whose start lies in ``[low, high)``. The evaluator
fetches the windows of the whole query once and hands each group's windows
here; every step is then a slice of sorted arrays (two binary searches), so
a range query costs one fetch plus one small reduction per step, whatever
its number of steps.

Latency groups reduce *merged histograms*: a P95 over several series and
windows is the P95 of their merge, never a mean of P95s. ``error_rate`` and
``apdex`` split a group into parts first (by ``status.code``, and for apdex
by each endpoint's threshold T), because those statistics weigh requests by
outcome; an apdex over endpoints with different thresholds judges each
request against its own endpoint's T, which is the count-weighted mean of
the endpoints' apdex values.

Scalar groups pool their series' window values: a gauge's ``avg``,
``min`` and ``max`` are over every value of every series in the range,
while ``last`` adds up each series' newest value (the group's current
total, what PromQL users write as a sum of instant values); a sum's ``sum``
is its increase over the range and ``rate`` that per second; a histogram's
``count``, ``sum`` and ``avg`` come from its per-window counts and sums.

What each kind of series supports is :data:`SUPPORTED`; the evaluator
refuses anything else before fetching data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from trm_otel.analysis import apdex
from trm_otel.histogram import ExponentialHistogram
from trm_otel.series_source import SeriesKind

__all__ = ["ERROR_STATUS", "SUPPORTED", "Steps", "reduce_latency", "reduce_scalar"]

#: The ``status.code`` label value of failed requests (spanmetrics naming).
ERROR_STATUS = "STATUS_CODE_ERROR"

#: Statistics per kind of series; ``pNN`` stands for every percentile.
SUPPORTED: dict[SeriesKind, tuple[str, ...]] = {
    "latency": ("pNN", "avg", "min", "max", "sum", "count", "rate", "error_rate", "apdex"),
    "gauge": ("avg", "min", "max", "last"),
    "sum": ("sum", "rate"),
    "histogram": ("count", "sum", "avg", "rate"),
}

Reduced = tuple[np.ndarray, np.ndarray]
"""Per step: the value, and whether the step had any data (no data: no point)."""


@dataclass(frozen=True, slots=True)
class Steps:
    """Evaluation steps as window-start bounds ``[lows[i], highs[i])``; ``range_s`` divides rates."""

    lows: np.ndarray
    highs: np.ndarray
    range_s: float

    def __len__(self) -> int:
        return len(self.lows)


class _Windows:
    """One part's windows sorted by start; ``slices`` gives each step's ``[i, j)``."""

    __slots__ = ("starts", "values")

    def __init__(self, items: Sequence[tuple[float, Any]]) -> None:
        ordered = sorted(items, key=itemgetter(0))
        self.starts = np.fromiter((start for start, _ in ordered), np.float64, len(ordered))
        self.values = [value for _, value in ordered]

    def slices(self, steps: Steps) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.searchsorted(self.starts, steps.lows, side="left"),
            np.searchsorted(self.starts, steps.highs, side="left"),
        )


# ------------------------------------------------------------------ latency


def reduce_latency(
    stat: str,
    quantile: float | None,
    members: Sequence[tuple[dict[str, str], Sequence[tuple[float, ExponentialHistogram]]]],
    steps: Steps,
    threshold_of: Callable[[dict[str, str]], float],
) -> Reduced:
    """``stat`` of a group of latency series: ``(labels, windows)`` per member."""
    part_of = _part_function(stat, threshold_of)
    grouped: dict[Hashable, list[tuple[float, ExponentialHistogram]]] = {}
    for labels, windows in members:
        grouped.setdefault(part_of(labels), []).extend(windows)
    parts = {key: _Windows(items) for key, items in grouped.items()}
    bounds = {key: windows.slices(steps) for key, windows in parts.items()}
    present = np.zeros(len(steps), bool)
    for i, j in bounds.values():
        present |= j > i
    values = np.full(len(steps), math.nan)
    if stat in ("count", "rate", "error_rate"):
        counts = {key: _step_counts(parts[key], *bounds[key]) for key in parts}
        total = sum(counts.values(), np.zeros(len(steps)))
        if stat == "count":
            values = total
        elif stat == "rate":
            values = total / steps.range_s
        else:
            errors = counts.get(True, np.zeros(len(steps)))
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(total > 0, errors / np.maximum(total, 1), math.nan)
        return values, present
    for step in np.flatnonzero(present).tolist():
        chosen = {key: parts[key].values[bounds[key][0][step] : bounds[key][1][step]] for key in parts}
        values[step] = _latency_value(stat, quantile, chosen)
    return values, present


def _part_function(stat: str, threshold_of: Callable[[dict[str, str]], float]) -> Callable[[dict[str, str]], Hashable]:
    if stat == "apdex":
        return lambda labels: (labels.get("status.code") == ERROR_STATUS, threshold_of(labels))
    if stat == "error_rate":
        return lambda labels: labels.get("status.code") == ERROR_STATUS
    return lambda labels: None


def _step_counts(windows: _Windows, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate(([0], np.cumsum([h.count for h in windows.values], dtype=np.int64)))
    counts: np.ndarray = (cumulative[j] - cumulative[i]).astype(np.float64)
    return counts


def _latency_value(stat: str, quantile: float | None, chosen: dict[Hashable, list[ExponentialHistogram]]) -> float:
    histograms = [h for part in chosen.values() for h in part]
    if quantile is not None:
        return _merged(histograms).quantile(quantile)
    if stat == "apdex":
        return _apdex(chosen)
    count = sum(h.count for h in histograms)
    if stat == "min":
        return min(h.min for h in histograms)
    if stat == "max":
        return max(h.max for h in histograms)
    total = 0.0
    for h in histograms:  # the order ExponentialHistogram.merged adds sums in
        total += h.sum
    if stat == "sum":
        return total
    return total / count if count else math.nan  # avg


def _apdex(chosen: dict[Hashable, list[ExponentialHistogram]]) -> float:
    """Count-weighted apdex over thresholds: each request judged against its own T."""
    thresholds = {key[1] for key in chosen if isinstance(key, tuple)}  # keys are (is_error, T)
    weighted = 0.0
    requests = 0
    for threshold in thresholds:
        ok = _merged(chosen.get((False, threshold), []))
        errors = sum(h.count for h in chosen.get((True, threshold), []))
        total = ok.count + errors
        if total:
            weighted += apdex(ok, errors, threshold) * total
            requests += total
    return weighted / requests if requests else math.nan


def _merged(histograms: list[ExponentialHistogram]) -> ExponentialHistogram:
    """The merge of ``histograms``; a single one is used as it is (read only, no copy)."""
    return histograms[0] if len(histograms) == 1 else ExponentialHistogram.merged(histograms)


# ------------------------------------------------------------------ scalars


def reduce_scalar(
    stat: str,
    kind: SeriesKind,
    members: Sequence[Sequence[tuple[float, float]]],
    sums: Sequence[Sequence[tuple[float, float]]] | None,
    steps: Steps,
) -> Reduced:
    """``stat`` of a group of scalar series of one ``kind``: windows per member.

    Window values are a gauge's last value, a sum's increase and a
    histogram's count; ``sums`` are the histogram members' per-window sums
    (needed for ``sum`` and ``avg`` of histograms only).
    """
    pooled = _Windows([item for windows in members for item in windows])
    values_array = np.asarray(pooled.values, dtype=np.float64)
    i, j = pooled.slices(steps)
    present = j > i
    values = np.full(len(steps), math.nan)
    if stat == "last":
        total = np.zeros(len(steps))
        for windows in members:
            if not windows:
                continue
            own = _Windows(windows)
            own_i, own_j = own.slices(steps)
            newest = np.asarray(own.values, dtype=np.float64)[np.maximum(own_j - 1, 0)]
            total += np.where(own_j > own_i, newest, 0.0)
        return np.where(present, total, math.nan), present
    if kind == "histogram" and stat in ("sum", "avg"):
        totals = _Windows([item for windows in sums or () for item in windows])
        sum_array = np.asarray(totals.values, dtype=np.float64)
        sum_i, sum_j = totals.slices(steps)
        for step in np.flatnonzero(present).tolist():
            step_sum = float(sum_array[sum_i[step] : sum_j[step]].sum())
            step_count = float(values_array[i[step] : j[step]].sum())
            values[step] = step_sum if stat == "sum" else (step_sum / step_count if step_count else math.nan)
        return values, present
    reduce = _SCALAR_REDUCTIONS[stat]
    for step in np.flatnonzero(present).tolist():
        values[step] = reduce(values_array[i[step] : j[step]])
    if stat == "rate":
        values = values / steps.range_s
    return values, present


_SCALAR_REDUCTIONS: dict[str, Callable[[np.ndarray], float]] = {
    "avg": lambda v: float(v.mean()),
    "min": lambda v: float(v.min()),
    "max": lambda v: float(v.max()),
    "sum": lambda v: float(v.sum()),
    "count": lambda v: float(v.sum()),  # histogram windows hold counts
    "rate": lambda v: float(v.sum()),  # divided by the range afterwards
}
