"""The dashboards every tenant starts with: System Overview and Performance.

    >>> [d.uid for d in default_dashboards()]
    ['system-overview', 'performance']

Built in code from the same models users' dashboards load into, and
checked by the same validator (a test does), so a default can never be a
dashboard the UI would refuse to save back. Metric and label names are the
ones the daemon stores: the hostmetrics receiver's OTel semantic-convention
names (``system.cpu.utilization`` with ``cpu.mode``; the point without
``cpu.mode`` is the overall busy share) and the spanmetrics names of span
latency. Both dashboards have a ``service`` variable (all services by
default); host metrics carry the ``service.name`` of the process that
reported them. Units are Grafana's unit ids, so they carry over on export.
"""

from __future__ import annotations

from typing import Any

from trm_otel.dashboards.model import Dashboard, Grid, Panel, Target, Variable
from trm_otel.dashboards.variables import ALL

__all__ = ["default_dashboards", "performance", "system_overview"]

_SERVICE = 'service.name=~"$service"'
_DURATION = "traces.span.metrics.duration"
_CALLS = "traces.span.metrics.calls"


def default_dashboards() -> tuple[Dashboard, ...]:
    """Both defaults, in the order the UI lists them."""
    return system_overview(), performance()


def system_overview() -> Dashboard:
    """CPU, memory, disk and network of every host reporting host metrics."""
    cpu = f'system.cpu.utilization{{{_SERVICE}, cpu.mode=""}}[1m]'
    memory = f'system.memory.utilization{{{_SERVICE}, system.memory.state="used"}}[1m]'
    disk = f"system.disk.io{{{_SERVICE}}}[1m]"
    network = f"system.network.io{{{_SERVICE}}}[1m]"
    return Dashboard(
        uid="system-overview",
        title="System Overview",
        tags=("system", "hostmetrics"),
        variables=(_service_variable("label_values(system.cpu.utilization, service.name)"),),
        panels=(
            _panel(1, "CPU busy", "stat", (0, 0, 3, 4), (f"avg({cpu})", ""), unit="percentunit", max=1),
            _panel(2, "Memory used", "stat", (3, 0, 3, 4), (f"avg({memory})", ""), unit="percentunit", max=1),
            _panel(3, "Disk I/O", "stat", (6, 0, 3, 4), (f"rate({disk})", ""), unit="Bps"),
            _panel(4, "Network I/O", "stat", (9, 0, 3, 4), (f"rate({network})", ""), unit="Bps"),
            _panel(5, "CPU utilization", "line", (0, 4, 6, 8),
                   (f"avg({cpu}) by (service.name)", "{{service.name}}"), unit="percentunit", min=0, max=1),
            _panel(6, "Memory utilization", "line", (6, 4, 6, 8),
                   (f"avg({memory}) by (service.name)", "{{service.name}}"), unit="percentunit", min=0, max=1),
            _panel(7, "Disk I/O", "line", (0, 12, 6, 8),
                   (f"rate({disk}) by (disk.io.direction)", "{{disk.io.direction}}"), unit="Bps"),
            _panel(8, "Network I/O", "line", (6, 12, 6, 8),
                   (f"rate({network}) by (network.io.direction)", "{{network.io.direction}}"), unit="Bps"),
            _panel(9, "Filesystem used", "bar", (0, 20, 12, 6),
                   (f"max(system.filesystem.utilization{{{_SERVICE}}}[5m]) by (system.filesystem.mountpoint)",
                    "{{system.filesystem.mountpoint}}"), unit="percentunit", min=0, max=1),
        ),
    )  # fmt: skip


def performance() -> Dashboard:
    """Response time percentiles, throughput, errors, firing alerts and the latency distribution."""
    return Dashboard(
        uid="performance",
        title="Performance",
        tags=("performance", "spanmetrics"),
        variables=(_service_variable("label_values(service.name)"),),
        panels=(
            _panel(1, "Response time", "line", (0, 0, 8, 8),
                   *[(f"{p}({_DURATION}{{{_SERVICE}}}[5m])", p.upper()) for p in ("p50", "p95", "p99")], unit="ms"),
            _panel(2, "Active alerts", "pie", (8, 0, 4, 8),
                   ('last(ALERTS{alertstate="firing"}[5m]) by (alertname)', "{{alertname}}")),
            _panel(3, "Throughput", "line", (0, 8, 6, 8),
                   (f"rate({_CALLS}{{{_SERVICE}}}[1m]) by (service.name)", "{{service.name}}"), unit="reqps"),
            _panel(4, "Error rate", "line", (6, 8, 6, 8),
                   (f"error_rate({_CALLS}{{{_SERVICE}}}[5m]) by (service.name)", "{{service.name}}"),
                   unit="percentunit", min=0),
            _panel(5, "Latency distribution", "heatmap", (0, 16, 12, 8), (f"{_DURATION}{{{_SERVICE}}}", ""), unit="ms"),
            _panel(6, "Slowest endpoints (P95, 15m)", "table", (0, 24, 12, 8),
                   (f"p95({_DURATION}{{{_SERVICE}, span.kind=\"SPAN_KIND_SERVER\"}}[15m]) by (service.name, span.name)",
                    ""), unit="ms"),
        ),
    )  # fmt: skip


def _service_variable(query: str) -> Variable:
    return Variable(name="service", label="Service", query=query, multi=True, include_all=True, current=ALL)


def _panel(
    pid: int, title: str, kind: str, box: tuple[int, int, int, int], *targets: tuple[str, str], **options: Any
) -> Panel:
    x, y, w, h = box
    return Panel(
        id=pid,
        title=title,
        type=kind,
        targets=tuple(Target(expr=expr, legend=legend) for expr, legend in targets),
        grid=Grid(x=x, y=y, w=w, h=h),
        options=options,
    )
