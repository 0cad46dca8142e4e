"""Span processor, percentile metric reader, and the span-to-histogram aggregation.

Installed as ``trm_otel.processors``. Most applications only call
``trm_otel.configure()``; these are for wiring the pieces into providers you
build yourself:

    >>> from trm_otel.processors import LatencySpanProcessor, PercentileMetricReader
    >>> processor = LatencySpanProcessor()
    >>> reader = PercentileMetricReader(span_processors=[processor])   # doctest: +SKIP
"""

from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.metric_reader import PercentileMetricReader
from trm_otel.processors.span_processor import LatencySpanProcessor

__all__ = ["LatencyAggregator", "LatencySpanProcessor", "PercentileMetricReader"]
