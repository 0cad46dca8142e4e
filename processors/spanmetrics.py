"""Span-derived latency as OTel metrics, named like the Collector's spanmetrics.

    >>> exporter.export(spanmetrics_data(aggregator, time.time_ns()))    # doctest: +SKIP

Any backend that already has dashboards for the Collector's spanmetrics
connector reads ours unchanged: ``traces.span.metrics.duration`` is an
exponential histogram in milliseconds and ``traces.span.metrics.calls`` a
monotonic sum, both cumulative (the connector's default temporality, and the
one Prometheus-compatible backends accept), with the dimensions
``service.name``, ``span.name``, ``span.kind`` and ``status.code`` (plus
the configured dimensions). One resource per service, carrying its
``service.name``.

Each duration point carries exemplars: the slowest spans and the sample of
the series' last 30 seconds (at least three windows), each with its trace
and span id, end time, duration and bounded attributes (``enduser.id``
among them when present), so a backend's exemplar view jumps from a slow
bucket to its trace.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from trm_otel._version import __version__
from trm_otel.processors.aggregation import LatencyAggregator

__all__ = ["CALLS_METRIC", "DURATION_METRIC", "sdk_exemplar", "spanmetrics_data"]

DURATION_METRIC = "traces.span.metrics.duration"
CALLS_METRIC = "traces.span.metrics.calls"
_SCOPE = InstrumentationScope("trm_otel", __version__)


def spanmetrics_data(
    aggregator: LatencyAggregator, now_ns: int, resource_attributes: dict[str, str] | None = None
) -> MetricsData | None:
    """The since-start spanmetrics of every span series, or ``None`` if there are none.

    ``resource_attributes`` are added to each service's resource (the
    exporting process's host, for instance).
    """
    per_service: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    recent = aggregator.recent_exemplars()
    for series_id, start_ns, histogram in aggregator.cumulative():
        series = aggregator.registry[series_id]
        attributes = series.attributes()
        points, calls = per_service[series.service]
        point = histogram.to_sdk_point(attributes, start_ns, now_ns)
        if series_id in recent:
            point = dataclasses.replace(point, exemplars=[sdk_exemplar(r) for r in recent[series_id]])
        points.append(point)
        calls.append(NumberDataPoint(attributes, start_ns, now_ns, histogram.count))
    if not per_service:
        return None
    resource_metrics = []
    for service, (points, calls) in sorted(per_service.items()):
        metrics = [
            Metric(
                name=DURATION_METRIC,
                description="Span durations, by service, span name, kind and status.",
                unit="ms",
                data=ExponentialHistogram(points, AggregationTemporality.CUMULATIVE),
            ),
            Metric(
                name=CALLS_METRIC,
                description="Spans ended, by service, span name, kind and status.",
                unit="{call}",
                data=Sum(calls, AggregationTemporality.CUMULATIVE, is_monotonic=True),
            ),
        ]
        resource = Resource({**(resource_attributes or {}), "service.name": service})
        resource_metrics.append(ResourceMetrics(resource, [ScopeMetrics(_SCOPE, metrics, "")], ""))
    return MetricsData(resource_metrics)


def sdk_exemplar(record: dict[str, Any]) -> Exemplar:
    """A stored exemplar record as the SDK's ``Exemplar`` (value in ms, ids as integers)."""
    trace_id = record.get("trace_id") or ""
    return Exemplar(
        filtered_attributes=dict(record.get("attributes") or {}),
        value=float(record["duration_ms"]),
        time_unix_nano=int(record["time_unix_nano"]),
        span_id=int(record["span_id"], 16) if trace_id else None,
        trace_id=int(trace_id, 16) if trace_id else None,
    )
