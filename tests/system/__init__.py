"""Tests of the system monitor; ``metric_points`` reads what a metric reader collected."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

Points = dict[str, dict[tuple[tuple[str, Any], ...], float]]


def metric_points(reader: InMemoryMetricReader) -> tuple[Points, dict[str, str]]:
    """One collection: ``{name: {sorted attribute items: value}}`` and ``{name: unit}``."""
    points: Points = {}
    units: dict[str, str] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                units[metric.name] = metric.unit
                series = points.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    series[tuple(sorted((point.attributes or {}).items()))] = point.value
    return points, units
