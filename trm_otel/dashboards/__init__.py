"""Dashboards: the native model, validation, migrations, time ranges, variables, Grafana import/export.

    >>> from trm_otel.dashboards import dump_dashboard, from_grafana, load_dashboard, substitute, to_grafana
    >>> from trm_otel.dashboards.defaults import performance
    >>> d = load_dashboard(dump_dashboard(performance()))        # native JSON in, validated
    >>> substitute(d, {"service": "shop"})[1][0]                  # panel 1's first target, resolved
    'p50(traces.span.metrics.duration{service.name=~"shop"}[5m])'
    >>> from_grafana(to_grafana(d)) == (d, [])                   # Grafana out and back
    True

One concept per module: ``model`` (the document, its validation),
``migrations`` (older documents), ``variables`` (``$name`` in targets),
``expressions`` (targets against the query parser), ``time_range``,
``layout`` (the 12-column grid), ``promql`` (our queries as PromQL),
``grafana`` (export and import), ``defaults`` (System Overview and
Performance). All are pure: no I/O, no clock; the HTTP API stores and
serves what they produce.
"""

from trm_otel.dashboards.errors import DashboardError
from trm_otel.dashboards.grafana import from_grafana, to_grafana
from trm_otel.dashboards.migrations import CURRENT_SCHEMA_VERSION, migrate
from trm_otel.dashboards.model import (
    PANEL_TYPES,
    Dashboard,
    Grid,
    Panel,
    Target,
    TimeRange,
    Variable,
    check_dashboard,
    dump_dashboard,
    load_dashboard,
    validate_dashboard,
)
from trm_otel.dashboards.time_range import auto_step, resolve, resolve_range
from trm_otel.dashboards.variables import ALL, bind, substitute

__all__ = [
    "ALL",
    "CURRENT_SCHEMA_VERSION",
    "PANEL_TYPES",
    "Dashboard",
    "DashboardError",
    "Grid",
    "Panel",
    "Target",
    "TimeRange",
    "Variable",
    "auto_step",
    "bind",
    "check_dashboard",
    "dump_dashboard",
    "from_grafana",
    "load_dashboard",
    "migrate",
    "resolve",
    "resolve_range",
    "substitute",
    "to_grafana",
    "validate_dashboard",
]
