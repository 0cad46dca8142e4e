"""The query language of dashboards, alert rules and ``GET /api/v1/query``.

    >>> from trm_otel.query import Evaluator, parse_query
    >>> parse_query("p99(traces.span.metrics.duration[1h]) by (service.name)").quantile
    0.99
    >>> Evaluator(source, slo=policy).instant("error_rate(traces.span.metrics.calls[5m])", now)  # doctest: +SKIP

``STAT(METRIC{label="v", label!="v", label=~"re", label!~"re"}[RANGE]) [by
(label, ...)]`` with STAT in ``p50 p90 p95 p99 pNN avg min max sum count rate
error_rate apdex last`` (``apdex`` takes an optional threshold in ms as a
second argument). The pieces, one concept per module: ``lexer`` and
``parser`` (text to :class:`Query`), ``reducers`` (a group's windows to a
value per step), ``evaluator`` (selection, grouping, limits, time steps),
and the sources the evaluator reads: ``memory_source`` (the daemon's memory)
and ``combined_source`` (memory stitched to storage by time).
"""

from trm_otel.query.combined_source import CombinedSource
from trm_otel.query.errors import QueryError
from trm_otel.query.evaluator import Evaluator, HistogramSumSource, Limits, RangeSeries, Sample
from trm_otel.query.expr import Query
from trm_otel.query.memory_source import MemorySource
from trm_otel.query.parser import parse_query

__all__ = [
    "CombinedSource",
    "Evaluator",
    "HistogramSumSource",
    "Limits",
    "MemorySource",
    "Query",
    "QueryError",
    "RangeSeries",
    "Sample",
    "parse_query",
]
