"""Panel target expressions: full queries, and the bare selectors heatmaps take.

    >>> parse_selector('traces.span.metrics.duration{service.name="shop"}[5m]').range_s
    300.0
    >>> parse_selector('p95(traces.span.metrics.duration)')
    Traceback (most recent call last):
    ...
    trm_otel.query.errors.QueryError: 1:1: a heatmap shows a histogram's buckets: write a selector without a statistic, e.g. traces.span.metrics.duration{service.name="shop"}

A heatmap draws every bucket of a histogram over time, so its target names
series (``METRIC{matchers}[range]``) and no statistic. The query package
parses whole queries only; a selector is parsed by wrapping it as
``last(...)`` and mapping the error positions back, which keeps this module
on the query package's public interface (a ``parse_selector`` there would
make the wrapping unnecessary).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trm_otel.query import Query, QueryError, parse_query
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher

__all__ = ["HISTOGRAM_EXAMPLE", "Selector", "check_expr", "parse_selector"]

HISTOGRAM_EXAMPLE = 'traces.span.metrics.duration{service.name="shop"}'

_WRAP = "last("
_CALL = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*\(")


@dataclass(frozen=True, slots=True)
class Selector:
    """``METRIC{matchers}[range]``: which series, without a statistic."""

    metric: str
    matchers: tuple[Matcher, ...] = ()
    range_s: float | None = None


def parse_selector(text: str) -> Selector:
    """The selector written in ``text``; :class:`QueryError` with line:column in ``text``."""
    if _CALL.match(text):  # p95(...), rate(...: a statistic, complete or not
        raise QueryError(
            f"a heatmap shows a histogram's buckets: write a selector without a statistic, e.g. {HISTOGRAM_EXAMPLE}",
            1,
        )
    try:
        query = parse_query(f"{_WRAP}{text})")
    except QueryError as err:
        raise _unwrapped(err, text) from None
    return Selector(query.metric, query.matchers, query.range_s)


def check_expr(text: str, *, heatmap: bool = False) -> Query | Selector:
    """``text`` parsed as a panel target: a :class:`Selector` for heatmaps, else a :class:`Query`.

    Heatmaps also refuse the metrics known not to be histograms (host
    gauges and counters), since a chart of buckets of those is empty.
    """
    if not heatmap:
        return parse_query(text)
    selector = parse_selector(text)
    kind = _known_kind(selector.metric)
    if kind is not None and kind != "histogram":
        raise QueryError(
            f"{selector.metric} is a {kind}, not a histogram; a heatmap needs histogram series, "
            f"e.g. {HISTOGRAM_EXAMPLE}",
            1,
        )
    return selector


def _unwrapped(err: QueryError, text: str) -> QueryError:
    """The wrapped parse's error, positioned and worded for the selector alone."""
    message = err.message.replace("expected ')' after the selector", "expected end of the selector")
    lines = text.split("\n")
    line, column = err.line, err.column
    if line is None or column is None:
        return QueryError(message)
    if line == 1:
        column -= len(_WRAP)
    at_end = line == len(lines) and column > len(lines[-1])
    if at_end and message.endswith("got ')'"):
        message = message[: -len("')'")] + "end of the selector"
    return QueryError(message, max(column, 1), line)


def _known_kind(metric: str) -> str | None:
    """``histogram``, ``gauge`` or ``counter`` for metrics trm-otel itself produces; else ``None``."""
    if metric in (DURATION_METRIC, CALLS_METRIC):
        return "histogram"
    from trm_otel.dashboards.promql import known_metric

    known = known_metric(metric)
    return None if known is None else known.kind_text
