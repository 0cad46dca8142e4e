"""What a parsed query is: one statistic over one selector, optionally grouped.

    >>> from trm_otel.query import parse_query
    >>> q = parse_query('p95(traces.span.metrics.duration{service.name="shop"}[5m]) by (span.name)')
    >>> q.stat, q.quantile, q.metric, q.range_s, q.by
    ('p95', 0.95, 'traces.span.metrics.duration', 300.0, ('span.name',))

The language is deliberately flat (no nesting, no arithmetic): every query
reads the windows of the selected series over a range, splits them into
groups by the ``by`` labels and reduces each group to one number per
evaluation time. That keeps a query's cost predictable (one fetch of windows
per query) and its answer explainable: a P95 is the P95 of the merged
histograms, never an average of percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trm_otel.series_source import Matcher

__all__ = ["NAMED_STATS", "STAT_NAMES_TEXT", "Query"]

#: Every statistic with a fixed name; ``pNN`` percentiles come on top.
NAMED_STATS: tuple[str, ...] = ("avg", "min", "max", "sum", "count", "rate", "error_rate", "apdex", "last")

#: The statistics as a user reads them in an error message.
STAT_NAMES_TEXT = "p50, p90, p95, p99, pNN, avg, min, max, sum, count, rate, error_rate, apdex or last"


@dataclass(frozen=True, slots=True)
class Query:
    """``stat(metric{matchers}[range], threshold) by (labels)`` as data.

    ``stat`` is spelled as written (``p999``); ``quantile`` is its value in
    [0, 1] for percentiles and ``None`` otherwise. ``range_s`` is ``None``
    when the query gave no ``[range]`` (the evaluator then uses the step of
    a range query or one minute). ``by`` is empty without a ``by`` clause:
    one group over every selected series. ``threshold_ms`` is apdex's
    explicit T. ``stat_at`` and ``selector_at`` are the ``(line, column)``
    of those parts, for errors found after parsing (a statistic that does
    not apply, too many series); they take no part in equality.
    """

    stat: str
    metric: str
    matchers: tuple[Matcher, ...] = ()
    range_s: float | None = None
    by: tuple[str, ...] = ()
    quantile: float | None = None
    threshold_ms: float | None = None
    stat_at: tuple[int, int] = field(default=(1, 1), compare=False)
    selector_at: tuple[int, int] = field(default=(1, 1), compare=False)
