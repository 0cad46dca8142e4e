"""One line per service: the ``/api/v1/services`` overview.

    >>> service_summaries(aggregator.endpoints(300), policy)          # doctest: +SKIP
    [ServiceSummary(name='checkout', endpoints=3, count=1200, ..., level='fair')]

A service's P95 is the 95th percentile of all its requests, read from the
merge of its endpoints' histograms: averaging endpoint P95s would let one
busy fast endpoint hide a slow one, and the P95 of the slowest endpoint
would overstate what most requests see. Its level is the worst of its
endpoints' levels, because an overview must not show a service green while
one of its endpoints is critical.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby

from trm_otel.analysis import latency_view
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import EndpointData
from trm_otel.slo import SloPolicy
from trm_otel.views import LEVELS, Level

__all__ = ["ServiceSummary", "service_summaries"]


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    """A service over a range: its endpoints together.

    ``endpoints`` is how many endpoints had data in the range; ``rps`` is
    the sum of their request rates; ``p95_ms`` covers every request of the
    service (ms, NaN without data).
    """

    name: str
    endpoints: int
    count: int
    errors: int
    rps: float
    error_rate: float
    p95_ms: float
    level: Level


def service_summaries(data: Iterable[EndpointData], policy: SloPolicy) -> list[ServiceSummary]:
    """Summaries sorted by service name, from each endpoint's merged histograms."""
    out = []
    for service, group in groupby(sorted(data, key=lambda d: d.service), key=lambda d: d.service):
        endpoints = list(group)
        levels = [
            latency_view(service, d.endpoint, d.ok, d.errors, d.seconds, policy.for_endpoint(service, d.endpoint))
            .level
            for d in endpoints
        ]
        merged = ExponentialHistogram.merged([h for d in endpoints for h in (d.ok, d.errors)])
        count = int(merged.count)
        errors = int(sum(d.errors.count for d in endpoints))
        out.append(
            ServiceSummary(
                name=service,
                endpoints=len(endpoints),
                count=count,
                errors=errors,
                rps=round(sum((d.ok.count + d.errors.count) / d.seconds for d in endpoints), 4),
                error_rate=round(errors / count, 4) if count else 0.0,
                p95_ms=round(merged.quantile(0.95), 3) if count else math.nan,
                level=max(levels, key=LEVELS.index),
            )
        )
    return out
