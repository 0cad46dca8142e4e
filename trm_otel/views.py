"""The data model every consumer reads: API, alerting, dashboards, exporters.

Views are frozen snapshots computed from merged histograms; consumers never
reach into the aggregation that produced them. Durations are milliseconds
(fields end in ``_ms``) so the JSON the HTTP API serves is the dataclass as a
dict, with no unit conversion on the way out.

    >>> view = telemetry.latency(service="checkout")[0]   # doctest: +SKIP
    >>> view.p95_ms, view.level
    (212.4, 'good')
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "LEVELS",
    "Bottleneck",
    "Exemplar",
    "Level",
    "LatencyView",
    "Trend",
    "TrendLine",
    "view_to_dict",
]

Level = Literal["excellent", "good", "fair", "poor", "critical"]
LEVELS: tuple[Level, ...] = ("excellent", "good", "fair", "poor", "critical")


@dataclass(frozen=True, slots=True)
class Exemplar:
    """One span behind a latency series: what a slow percentile leads to.

    ``trace_id`` and ``span_id`` are lowercase hex (32 and 16 digits, as
    trace UIs and OTLP/JSON write them; ``trace_id`` is empty when the
    source gave none), ``time`` the span's end in unix seconds,
    ``attributes`` a bounded set of its attributes as text (at most 16,
    values cut at 256 characters, user context such as ``enduser.id`` kept
    first).
    """

    trace_id: str
    span_id: str
    duration_ms: float
    time: float
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LatencyView:
    """Latency, throughput and errors of one endpoint over a time range.

    ``endpoint`` is the span name (``GET /items/{id}``), as the Collector's
    spanmetrics connector keys it. ``approximate`` is true when part of the
    data came from explicit-bucket histograms, whose quantiles are estimates
    bounded by the bucket edges rather than by the 0.54% sketch error.
    ``exemplars`` are spans of the range: the slowest few first (longest
    first), then a uniform sample.
    """

    service: str
    endpoint: str
    count: int
    errors: int
    rps: float
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    apdex: float
    level: Level
    approximate: bool = False
    exemplars: tuple[Exemplar, ...] = ()


@dataclass(frozen=True, slots=True)
class Bottleneck:
    """One reason an endpoint deserves attention, with the numbers behind it.

    ``kind`` is ``time_share`` (a large share of all time spent serving),
    ``slo_breach`` (P95 above its SLO), ``error_hotspot`` (a large share of
    the errors) or ``dominant_child`` (most of a parent span's time is one
    child operation; ``endpoint`` is then the child and ``evidence`` names
    the parent). ``score`` orders bottlenecks across kinds: higher is worse.
    """

    kind: Literal["time_share", "slo_breach", "error_hotspot", "dominant_child"]
    service: str
    endpoint: str
    score: float
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrendLine:
    """A least-squares line through one per-window statistic.

    ``slope`` is in the statistic's unit per second; ``p_value`` is the
    two-sided t-test of slope == 0; ``forecast`` is the line's value at the
    end of the next window.
    """

    slope: float
    intercept: float
    r_squared: float
    p_value: float
    significant: bool
    forecast: float


@dataclass(frozen=True, slots=True)
class Trend:
    """Where an endpoint's P95 and throughput are heading.

    ``direction`` reads P95: ``degrading`` when it rises significantly,
    ``improving`` when it falls significantly, else ``stable``.
    ``throughput_direction`` is ``rising``, ``falling`` or ``stable``.
    ``slo_breach_in_s`` is how long until the P95 line crosses the SLO (0 if
    it already has, ``None`` if it is not heading there).
    """

    service: str
    endpoint: str
    windows: int
    window_s: float
    direction: Literal["improving", "degrading", "stable"]
    throughput_direction: Literal["rising", "falling", "stable"]
    p95_ms: TrendLine
    rps: TrendLine
    slo_p95_ms: float
    slo_breach_in_s: float | None


def view_to_dict(view: Any) -> dict[str, Any]:
    """A view as plain JSON-ready data: NaN (no data) becomes ``None``."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(dataclasses.asdict(view))
