"""Known data in the daemon's real stores, and a dashboard with a panel of every type, for the tests.

The last hour before :data:`NOW` holds spans of two services (the counts
and durations below), firing and pending ``ALERTS`` gauges as the alerting
service records them, a CPU gauge and a network counter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trm_otel.dashboards.service import DashboardService
from trm_otel.dashboards.store import DATABASE_NAME, DashboardStore
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.query import MemorySource
from trm_otel.slo import slo_policy

NOW = 1_800_000_000.0  # a multiple of 10 s, 5 min and 1 h: steps line up with windows
SERVER, ERROR = 2, 2
RNG = np.random.default_rng(7)

# (service, span name, spans in the last hour, median ms, errors every n-th span or 0)
ENDPOINTS = (
    ("shop", "GET /cart", 720, 20.0, 0),
    ("shop", "POST /pay", 360, 180.0, 12),
    ("cart", "GET /items", 240, 8.0, 0),
)
DURATIONS = {
    (service, name): RNG.lognormal(np.log(median), 0.6, count) for service, name, count, median, _ in ENDPOINTS
}
# Spans end evenly over [NOW - 3600 + 1, NOW - 1]: every 10 s window of the hour has some.
ENDS = {key: np.linspace(NOW - 3599.0, NOW - 1.0, len(d)) for key, d in DURATIONS.items()}
SPAN_COUNT = sum(count for _, _, count, _, _ in ENDPOINTS)
POLICY = slo_policy({"default": {"p95_ms": 300}})


def span_batch(service: str, name: str, every_error: int) -> SpanBatch:
    durations, ends = DURATIONS[(service, name)], ENDS[(service, name)]
    n = len(durations)
    status = np.zeros(n, np.int8)
    if every_error:
        status[::every_error] = ERROR
    return SpanBatch(
        service=[service] * n,
        name=[name] * n,
        kind=np.full(n, SERVER, np.int8),
        status=status,
        end_ns=(ends * 1e9).astype(np.int64),
        duration_ms=durations,
        span_id=np.zeros(n, np.uint64),
        parent_span_id=np.zeros(n, np.uint64),
    )


def alert_key(alertname: str, state: str, service: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    labels = {"alertname": alertname, "alertstate": state, "severity": "warning"}
    return ("ALERTS", service, tuple(sorted(labels.items())))


def memory_source() -> MemorySource:
    """The real aggregator and scalar store, fed as the daemon feeds them."""
    aggregator = LatencyAggregator(window_s=10, history_s=7200, clock=lambda: NOW)
    scalars = ScalarSeriesStore(window_s=10, history_s=7200, clock=lambda: NOW)
    for service, name, _, _, every_error in ENDPOINTS:
        aggregator.add_spans(span_batch(service, name, every_error))
    for t in np.arange(NOW - 600, NOW, 10.0):
        end_ns = int((t + 5) * 1e9)
        scalars.record_gauge(alert_key("HighLatency", "firing", "shop"), end_ns, 1.0)
        scalars.record_gauge(alert_key("ErrorBurst", "firing", "shop"), end_ns, 1.0)
        scalars.record_gauge(alert_key("ErrorBurst", "firing", "cart"), end_ns, 1.0)
        scalars.record_gauge(alert_key("DiskFull", "pending", "cart"), end_ns, 1.0)
    for i, t in enumerate(np.arange(NOW - 3600, NOW, 10.0)):
        end_ns = int((t + 5) * 1e9)
        scalars.record_gauge(("system.cpu.utilization", "shop", (("cpu.mode", ""),)), end_ns, 0.25 + 0.001 * (i % 100))
        scalars.record_sum(("system.network.io", "shop", (("network.io.direction", "receive"),)), end_ns, 1000.0)
    return MemorySource(aggregator, scalars)


def make_service(tmp_path: Path, source: MemorySource | None = None) -> DashboardService:
    store = DashboardStore(tmp_path / DATABASE_NAME, clock=lambda: NOW)
    return DashboardService(store, source if source is not None else memory_source(), POLICY, lambda: NOW)


D = "traces.span.metrics.duration"
C = "traces.span.metrics.calls"


def every_type() -> dict[str, Any]:
    """A native dashboard with one panel of each type (ids 1-7) and a ``service`` variable."""

    def panel(pid: int, kind: str, box: tuple[int, int, int, int], *targets: tuple[str, str], **options: Any) -> dict[str, Any]:
        x, y, w, h = box
        return {"id": pid, "title": f"{kind} panel", "type": kind, "grid": {"x": x, "y": y, "w": w, "h": h},
                "targets": [{"expr": e, "legend": legend} for e, legend in targets], "options": options}

    service = 'service.name=~"$service"'
    return {
        "uid": "every-type",
        "title": "Every type",
        "time": {"from": "now-1h", "to": "now"},
        "variables": [{"name": "service", "query": "label_values(service.name)", "multi": True,
                       "include_all": True, "current": "$__all"}],
        "panels": [
            panel(1, "line", (0, 0, 6, 8), (f"p95({D}{{{service}}}[5m]) by (span.name)", "{{span.name}}"), unit="ms"),
            panel(2, "bar", (6, 0, 6, 8), (f"count({D}{{{service}}}[5m]) by (service.name)", "")),
            panel(3, "scatter", (0, 8, 6, 8), (f"max({D}{{{service}}}[5m])", "max"), unit="ms"),
            panel(4, "pie", (6, 8, 3, 8), ('last(ALERTS{alertstate="firing"}[5m]) by (alertname)', "{{alertname}}")),
            panel(5, "stat", (9, 8, 3, 4), ('avg(system.cpu.utilization{cpu.mode=""})', ""), unit="percentunit"),
            panel(6, "table", (9, 12, 3, 4), (f"p95({D}{{{service}}}[1h]) by (service.name, span.name)", ""),
                  unit="ms"),
            panel(7, "heatmap", (0, 16, 12, 8), (f"{D}{{{service}}}", ""), unit="ms"),
        ],
    }
