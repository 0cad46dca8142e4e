"""Grafana dashboard JSON in and out: :func:`to_grafana` and :func:`from_grafana`.

    >>> from trm_otel.dashboards.defaults import system_overview
    >>> from trm_otel.dashboards.grafana import from_grafana, to_grafana
    >>> dashboard, unmapped = from_grafana(to_grafana(system_overview()))
    >>> dashboard == system_overview(), unmapped
    (True, [])

The mapping itself is documented where it is done: the export in
:mod:`~trm_otel.dashboards.grafana_export`, the import (and what it lists
as not carried over) in :mod:`~trm_otel.dashboards.grafana_import`.
"""

from trm_otel.dashboards.grafana_export import GRAFANA_SCHEMA_VERSION, GRAFANA_TYPES, to_grafana
from trm_otel.dashboards.grafana_import import from_grafana

__all__ = ["GRAFANA_SCHEMA_VERSION", "GRAFANA_TYPES", "from_grafana", "to_grafana"]
