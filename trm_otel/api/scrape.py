"""What one ``/metrics`` scrape shows: the daemon's own counters and the span latency.

    >>> body = scrape(aggregator, policy, samples, version="0.1.0")     # doctest: +SKIP
    >>> print(body)                                                     # doctest: +SKIP
    traces_span_metrics_duration_milliseconds_bucket{le="100",service_name="checkout",...} 812

Span latency is exposed the way the Collector's spanmetrics connector and
its Prometheus exporter expose it (``traces_span_metrics_duration_milliseconds``
as a classic histogram with the connector's default bucket bounds, and
``traces_span_metrics_calls_total``), so a Prometheus server scraping a
trm-otel daemon feeds dashboards and alerts written for the Collector, and
``histogram_quantile`` and ``sum by`` work across many daemons. The buckets
are read off the since-start exponential histograms, so they are cumulative
counters that only reset when the daemon restarts.

Because a classic histogram is coarse (P95 between the 200 and 400 ms bounds
is only "somewhere in there"), the scrape also carries
``trm_otel_latency_p50_ms|p95_ms|p99_ms`` gauges over the last five minutes,
computed from merged exponential histograms at the sketch's 0.54% accuracy.

Scraped as OpenMetrics (``scrape(..., openmetrics=True)``), each bucket
line carries an exemplar when one of the series' recent exemplar spans
(the last 30 seconds) falls in that bucket: the slowest such span, with
its ``trace_id`` and ``span_id``, duration and end time.
``trm_otel_series_overflow_total{service, dimension}`` counts series keys
folded into a service's overflow series, charged to the label with the most
distinct values (see :mod:`trm_otel.processors.series`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any

from trm_otel.api.prometheus import MetricFamily, Sample, families_from_samples, metric_name, render
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.latency_report import latency_views
from trm_otel.processors.spanmetrics import CALLS_METRIC, DURATION_METRIC
from trm_otel.slo import SloPolicy
from trm_otel.views import LatencyView

__all__ = [
    "DURATION_FAMILY",
    "CALLS_FAMILY",
    "LATENCY_GAUGE_RANGE_S",
    "SPAN_DURATION_BOUNDS_MS",
    "build_info_family",
    "cumulative_buckets",
    "latency_gauge_families",
    "scrape",
    "series_overflow_family",
    "span_metric_families",
]

#: The spanmetrics connector's default explicit bucket bounds, in ms.
SPAN_DURATION_BOUNDS_MS: tuple[float, ...] = (
    2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000,
)
#: The percentile gauges look back this far: five minutes, like a dashboard's "now".
LATENCY_GAUGE_RANGE_S = 300.0

# The Prometheus exporter's names: unit suffix on the histogram, _total on the counter.
DURATION_FAMILY = metric_name(DURATION_METRIC) + "_milliseconds"
CALLS_FAMILY = metric_name(CALLS_METRIC) + "_total"


def cumulative_buckets(histogram: ExponentialHistogram, bounds: Sequence[float]) -> list[int]:
    """Classic cumulative bucket counts at ascending ``bounds``, then ``+Inf``.

    Each count is :meth:`ExponentialHistogram.count_at_most` (exact unless a
    bound falls inside an occupied exponential bucket, then interpolated
    within that 1% wide bucket) rounded to whole requests. The counts are
    forced non-decreasing and capped at ``count``, so ``+Inf`` equals
    ``_count`` exactly, as Prometheus requires.
    """
    if any(b >= c for b, c in zip(bounds, bounds[1:])):
        raise ValueError(f"bucket bounds must be strictly ascending, got {list(bounds)}")
    total = int(histogram.count)
    out: list[int] = []
    running = 0
    for bound in bounds:
        running = min(total, max(running, math.floor(histogram.count_at_most(bound) + 0.5)))
        out.append(running)
    out.append(total)
    return out


def span_metric_families(
    aggregator: LatencyAggregator, bounds: Sequence[float] = SPAN_DURATION_BOUNDS_MS, *, exemplars: bool = False
) -> list[MetricFamily]:
    """The duration histogram and calls counter of every span series since start.

    Empty unless the aggregator was built with ``track_cumulative=True``.
    Series are sorted by their labels so consecutive scrapes diff cleanly.
    With ``exemplars``, bucket lines get recent exemplar spans (rendered by
    OpenMetrics only).
    """
    duration = MetricFamily(
        DURATION_FAMILY, "histogram", "Span durations since start, by service, span name, kind and status (ms)."
    )
    calls = MetricFamily(CALLS_FAMILY, "counter", "Spans ended since start, by service, span name, kind and status.")
    rows = []
    for series_id, _start_ns, histogram in aggregator.cumulative():
        labels = aggregator.registry[series_id].attributes()
        rows.append((sorted((k, str(v)) for k, v in labels.items()), labels, histogram, series_id))
    rows.sort(key=lambda row: row[0])
    les = (*bounds, math.inf)
    recent = aggregator.recent_exemplars() if exemplars else {}
    for _, labels, histogram, series_id in rows:
        duration.add_histogram(
            labels,
            zip(les, cumulative_buckets(histogram, bounds)),
            histogram.sum,
            histogram.count,
            exemplars=bucket_exemplars(recent.get(series_id, ()), bounds),
        )
        calls.add(labels, histogram.count)
    return [duration, calls]


def bucket_exemplars(
    records: Iterable[dict[str, Any]], bounds: Sequence[float]
) -> dict[int, tuple[dict[str, str], float, float]]:
    """Per bucket position (``bounds`` then +Inf), the slowest record whose duration falls in it."""
    chosen: dict[int, dict[str, Any]] = {}
    for record in records:
        value = float(record["duration_ms"])
        position = bisect.bisect_left(bounds, value)  # (bounds[i-1], bounds[i]] holds value
        before = chosen.get(position)
        if before is None or value > float(before["duration_ms"]):
            chosen[position] = record
    out = {}
    for position, record in chosen.items():
        labels = {"trace_id": record["trace_id"], "span_id": record["span_id"]} if record["trace_id"] else {}
        out[position] = (labels, float(record["duration_ms"]), int(record["time_unix_nano"]) / 1e9)
    return out


def series_overflow_family(aggregator: LatencyAggregator) -> MetricFamily:
    """``trm_otel_series_overflow_total{service, dimension}``: keys folded into overflow, by the label to blame."""
    family = MetricFamily(
        "trm_otel_series_overflow_total",
        "counter",
        "Series keys folded into the service's overflow series (cardinality_limit reached), charged to "
        "span.name or the dimension with the most distinct values.",
    )
    for (service, dimension), count in sorted(aggregator.registry.overflow_by_dimension().items()):
        family.add({"service": service, "dimension": dimension}, count)
    return family


def latency_gauge_families(views: Iterable[LatencyView]) -> list[MetricFamily]:
    """``trm_otel_latency_{p50,p95,p99}_ms{service, endpoint}`` from latency views."""
    views = list(views)
    families = []
    for stat in ("p50", "p95", "p99"):
        family = MetricFamily(
            f"trm_otel_latency_{stat}_ms",
            "gauge",
            f"{stat.upper()} latency over the last 5 minutes (ms), from merged exponential histograms.",
        )
        for view in views:
            family.add({"service": view.service, "endpoint": view.endpoint}, getattr(view, f"{stat}_ms"))
        families.append(family)
    return families


def build_info_family(version: str) -> MetricFamily:
    """``trm_otel_build_info{version} 1``: which trm-otel a target runs, joinable in PromQL."""
    family = MetricFamily("trm_otel_build_info", "gauge", "Always 1; the version label names the trm-otel release.")
    family.add({"version": version}, 1)
    return family


def scrape(
    aggregator: LatencyAggregator,
    policy: SloPolicy,
    self_metrics: Iterable[Sample],
    version: str,
    *,
    openmetrics: bool = False,
) -> str:
    """The whole ``/metrics`` body, OpenMetrics with exemplars when asked.

    Merges histograms: run it off the event loop.
    """
    families = [
        *families_from_samples(self_metrics),
        build_info_family(version),
        series_overflow_family(aggregator),
        *latency_gauge_families(latency_views(aggregator, policy, LATENCY_GAUGE_RANGE_S, exemplars=False)),
        *span_metric_families(aggregator, exemplars=openmetrics),
    ]
    return render(families, openmetrics=openmetrics)
