"""Upgrading stored dashboard documents to the current schema, one version at a time.

    >>> v1 = {"schemaVersion": 1, "uid": "shop", "title": "Shop", "panels": [
    ...     {"id": 1, "type": "line", "query": "p95(traces.span.metrics.duration)",
    ...      "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8}}]}
    >>> panel = migrate(v1)["panels"][0]
    >>> panel["targets"], panel["grid"]
    ([{'expr': 'p95(traces.span.metrics.duration)', 'legend': ''}], {'x': 6, 'y': 0, 'w': 6, 'h': 8})

Schema history:

1. a panel had one ``query`` string (and an optional ``legend``) and a
   ``gridPos`` on a 24-column grid;
2. (current) a panel has ``targets: [{expr, legend}]`` and a ``grid`` on 12
   columns.

Documents without ``schemaVersion`` are read as version 1; every step only
rewrites what it recognises, so a current document that merely lacks the
number passes through unchanged. Steps work on plain dicts, before
validation, so that the validator sees only the current shape and its
messages name keys the user can find in the current documentation.
A document from a newer trm-otel is refused rather than half-read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from trm_otel.dashboards.errors import DashboardError
from trm_otel.dashboards.layout import halve_columns

__all__ = ["CURRENT_SCHEMA_VERSION", "migrate"]

CURRENT_SCHEMA_VERSION = 2


def migrate(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` upgraded to :data:`CURRENT_SCHEMA_VERSION`; ``doc`` itself is not changed.

    Raises :class:`DashboardError` for a version that is not a whole
    number, below 1, or newer than this trm-otel understands.
    """
    if not isinstance(doc, Mapping):
        raise DashboardError([("", f"a dashboard is a JSON object, got {type(doc).__name__}")])
    out = copy.deepcopy(dict(doc))
    version = out.get("schemaVersion", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise DashboardError([("schemaVersion", f"expected a whole number, got {version!r}")])
    if version < 1:
        raise DashboardError([("schemaVersion", f"must be at least 1, got {version}")])
    if version > CURRENT_SCHEMA_VERSION:
        raise DashboardError([(
            "schemaVersion",
            f"{version} is newer than this trm-otel understands ({CURRENT_SCHEMA_VERSION}); "
            "upgrade trm-otel to load this dashboard",
        )])
    while version < CURRENT_SCHEMA_VERSION:
        out = _STEPS[version](out)
        version += 1
        out["schemaVersion"] = version
    return out


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """``query``/``legend`` become one target; ``gridPos`` (24 columns) becomes ``grid`` (12)."""
    panels = doc.get("panels")
    if isinstance(panels, list):
        doc["panels"] = [_panel_v1_to_v2(p) if isinstance(p, dict) else p for p in panels]
    return doc


def _panel_v1_to_v2(panel: dict[str, Any]) -> dict[str, Any]:
    if "query" in panel and "targets" not in panel:
        query = panel.pop("query")
        legend = panel.pop("legend", "")
        panel["targets"] = [] if query in (None, "") else [{"expr": query, "legend": legend or ""}]
    pos = panel.get("gridPos")
    if "grid" not in panel and isinstance(pos, dict) and all(_is_int(pos.get(k)) for k in ("x", "w")):
        del panel["gridPos"]
        x, w = halve_columns(pos["x"], pos["w"])
        panel["grid"] = {**pos, "x": x, "w": w}
    return panel


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_STEPS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}
