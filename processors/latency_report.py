"""Views, bottlenecks and trends over an aggregator: what every consumer asks.

    >>> latency_views(aggregator, policy, range_s=300)                  # doctest: +SKIP
    [LatencyView(service='checkout', endpoint='POST /pay', ...)]

The in-process ``Telemetry`` handle and the daemon's HTTP API both answer
through these three functions, so the numbers never differ between modes.
"""

from __future__ import annotations

import dataclasses

from trm_otel.analysis import bottlenecks, latency_view, trends
from trm_otel.processors.aggregation import EndpointData, LatencyAggregator
from trm_otel.slo import SloPolicy
from trm_otel.views import Bottleneck, LatencyView, Trend

__all__ = ["bottleneck_report", "latency_views", "trend_report"]


def _view(data: EndpointData, policy: SloPolicy) -> LatencyView:
    return latency_view(
        data.service, data.endpoint, data.ok, data.errors, data.seconds, policy.for_endpoint(data.service, data.endpoint)
    )


def latency_views(
    aggregator: LatencyAggregator,
    policy: SloPolicy,
    range_s: float,
    service: str | None = None,
    endpoint: str | None = None,
    *,
    exemplars: bool = True,
) -> list[LatencyView]:
    """One view per endpoint with data in the range, sorted by service and endpoint.

    With ``exemplars`` each view carries its endpoint's exemplar spans over
    the range (the slowest, then a sample); without, none are read.
    """
    views = [_view(d, policy) for d in aggregator.endpoints(range_s, service, endpoint)]
    if not exemplars or not views:
        return views
    found = aggregator.endpoint_exemplars(range_s, service, endpoint)
    return [
        dataclasses.replace(view, exemplars=tuple(found.get((view.service, view.endpoint), ())))
        for view in views
    ]


def bottleneck_report(
    aggregator: LatencyAggregator,
    policy: SloPolicy,
    range_s: float,
    service: str | None = None,
    limit: int = 10,
) -> list[Bottleneck]:
    """The endpoints that most deserve attention over the range, worst first."""
    data = aggregator.endpoints(range_s, service)
    views = [_view(d, policy) for d in data]
    total_ms = {(d.service, d.endpoint): d.ok.sum + d.errors.sum for d in data}
    return bottlenecks(
        views, policy.for_endpoint, aggregator.child_times(range_s, service), limit=limit, total_ms=total_ms
    )


def trend_report(
    aggregator: LatencyAggregator,
    policy: SloPolicy,
    range_s: float,
    service: str | None = None,
    endpoint: str | None = None,
) -> list[Trend]:
    """Per-endpoint P95 and throughput trends over the windows in the range."""
    series = {
        (s.service, s.endpoint): (s.window_start_s, s.p95_ms, s.counts)
        for s in aggregator.window_series(range_s, service, endpoint)
    }
    return trends(series, aggregator.window_s, policy.for_endpoint)
