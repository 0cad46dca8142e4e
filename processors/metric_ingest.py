"""HTTP server duration histograms from OTel meters, as latency series.

    >>> for key, end_ns, histogram in latency_points(metrics_data):   # doctest: +SKIP
    ...     aggregator.add_histogram(key, end_ns, histogram)

The ASGI/WSGI instrumentations record ``http.server.request.duration``
(seconds, stable conventions) and/or ``http.server.duration`` (milliseconds,
old conventions), selected by ``OTEL_SEMCONV_STABILITY_OPT_IN``. Their points
become series keyed like spans: the endpoint is ``"METHOD route"`` (the
instrumentation's span name), kind SERVER, and a 5xx status is an error.
Exponential points convert exactly; explicit-bucket points convert with the
histogram's ``approximate`` flag set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    Histogram,
    MetricsData,
)

from trm_otel.histogram import ExponentialHistogram as Sketch
from trm_otel.processors.series import STATUS_CODE_ERROR, SeriesKey
from trm_otel.processors.span_batch import UNKNOWN_SERVICE

__all__ = [
    "LATENCY_METRICS",
    "OLD_METRIC",
    "SPAN_KIND_SERVER",
    "STABLE_METRIC",
    "endpoint_of",
    "latency_points",
    "status_of",
]

SPAN_KIND_SERVER = 2
STABLE_METRIC = "http.server.request.duration"
OLD_METRIC = "http.server.duration"

#: metric name -> factor to milliseconds, by unit
LATENCY_METRICS: Mapping[str, Mapping[str, float]] = {
    "http.server.request.duration": {"s": 1000.0, "ms": 1.0},
    "http.server.duration": {"ms": 1.0, "s": 1000.0},
}


def endpoint_of(attributes: Mapping[str, Any]) -> str:
    method = attributes.get("http.request.method") or attributes.get("http.method") or "HTTP"
    route = attributes.get("http.route") or attributes.get("http.target")
    return f"{method} {route}" if route else str(method)


def status_of(attributes: Mapping[str, Any]) -> int:
    code = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    try:
        return STATUS_CODE_ERROR if int(code) >= 500 else 0
    except (TypeError, ValueError):
        return STATUS_CODE_ERROR if attributes.get("error.type") else 0


def latency_points(data: MetricsData, rejected: Counter[str] | None = None) -> Iterator[tuple[SeriesKey, int, Sketch]]:
    """``(series key, end time ns, histogram in ms)`` for every non-empty latency point.

    Only delta points are taken (the reader asks the SDK for delta
    histograms); a cumulative point would count old requests again, so it is
    skipped and counted under ``rejected["cumulative_latency_metric"]``.

    With ``OTEL_SEMCONV_STABILITY_OPT_IN=http/dup`` an instrumentation
    records every request under both names, so within one instrumentation
    scope only one of the two is used: the stable one, unless none of its
    points carries ``http.route`` while the old one has ``http.target`` (plain
    ASGI without a framework), because then the old one names the route.
    """
    rejected = rejected if rejected is not None else Counter()
    for service, scope_metrics in _scopes(data):
        points = list(_points(service, scope_metrics, rejected))
        names = {name for name, *_ in points}
        if len(names) > 1:
            stable_has_route = any(name == STABLE_METRIC and routed for name, _, _, _, routed in points)
            keep = STABLE_METRIC if stable_has_route else OLD_METRIC
            points = [p for p in points if p[0] == keep]
        for _, key, end_ns, sketch, _ in points:
            yield key, end_ns, sketch


def _scopes(data: MetricsData) -> Iterator[tuple[str, Any]]:
    for resource_metrics in data.resource_metrics:
        service = resource_metrics.resource.attributes.get("service.name") or UNKNOWN_SERVICE
        for scope_metrics in resource_metrics.scope_metrics:
            yield str(service), scope_metrics


def _points(
    service: str, scope_metrics: Any, rejected: Counter[str]
) -> Iterator[tuple[str, SeriesKey, int, Sketch, bool]]:
    """``(metric name, key, end ns, histogram, has http.route)`` of one scope's latency points."""
    for metric in scope_metrics.metrics:
        factors = LATENCY_METRICS.get(metric.name)
        if factors is None:
            continue
        factor = factors.get(metric.unit)
        if factor is None:
            rejected["latency_metric_unknown_unit"] += 1
            continue
        payload = metric.data
        if not isinstance(payload, (Histogram, ExponentialHistogram)):
            continue
        if payload.aggregation_temporality != AggregationTemporality.DELTA:
            rejected["cumulative_latency_metric"] += 1
            continue
        for point in payload.data_points:
            if point.count == 0:
                continue
            try:
                if isinstance(payload, ExponentialHistogram):
                    sketch = Sketch.from_sdk_point(point)
                else:
                    sketch = Sketch.from_explicit(
                        point.explicit_bounds, point.bucket_counts, min=point.min, max=point.max, sum=point.sum
                    )
            except ValueError:
                rejected["invalid_latency_point"] += 1
                continue
            if factor != 1.0:
                sketch = sketch.scaled(factor)
            attributes = point.attributes or {}
            key = (service, endpoint_of(attributes), SPAN_KIND_SERVER, status_of(attributes))
            yield metric.name, key, point.time_unix_nano, sketch, "http.route" in attributes
