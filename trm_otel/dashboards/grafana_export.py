"""A native dashboard as Grafana dashboard JSON, over a Prometheus data source.

    >>> from trm_otel.dashboards.defaults import performance
    >>> g = to_grafana(performance())
    >>> g["panels"][0]["type"], g["panels"][0]["gridPos"]
    ('timeseries', {'x': 0, 'y': 0, 'w': 16, 'h': 8})

How each part maps (Grafana's side is a fact of its format):

* panels: ``type`` by :data:`GRAFANA_TYPES`; ``grid`` becomes ``gridPos``
  with ``x`` and ``w`` doubled for Grafana's 24 columns, ``y`` and ``h``
  unchanged (our rows are Grafana's 30 px rows); the options Grafana also
  knows (``unit``, ``min``, ``max``, ``decimals``) go to
  ``fieldConfig.defaults``;
* targets: ``refId`` A, B, ...; ``expr`` is the query in PromQL where one
  exists (:mod:`~trm_otel.dashboards.promql`), else a PromQL comment holding
  the original; ``legendFormat`` with Prometheus label names; every target
  runs on the ``${datasource}`` variable (a Prometheus data source picked
  on import into Grafana); targets of span durations on time series and
  heatmap panels ask for exemplars (``"exemplar": true``), as our charts
  draw them;
* variables: ``label_values`` variables become Prometheus ``query``
  variables, listed values ``custom`` ones; ``$__all`` means all in both;
* ``time``, ``refresh``, ``tags``, ``title``, ``uid``, ``version``;
  ``theme`` as ``style``; the time zone is UTC, as the daemon computes.

Whatever has no exact Grafana form is kept beside it under ``trmOtel``
(each target's query and legend, a panel's options, a variable's query),
keys Grafana ignores, so importing the export gives the same dashboard;
the importer uses a kept value only while its Grafana counterpart is
unchanged, so edits made in Grafana win.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from trm_otel.dashboards.expressions import Selector, check_expr, parse_selector
from trm_otel.dashboards.panel_data import exemplar_matchers
from trm_otel.dashboards.promql import (
    legend_to_grafana,
    known_metric,
    prometheus_label,
    selector_to_promql,
    to_promql,
)
from trm_otel.dashboards.variables import (
    ALL,
    PLACEHOLDER,
    label_values_query,
    restore_placeholders,
    with_placeholders,
)
from trm_otel.query import QueryError
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trm_otel.dashboards.model import Dashboard, Panel, Variable

__all__ = [
    "DATASOURCE",
    "FIELD_OPTIONS",
    "GRAFANA_SCHEMA_VERSION",
    "GRAFANA_TYPES",
    "KEPT",
    "export_expr",
    "export_variable_query",
    "to_grafana",
]

GRAFANA_SCHEMA_VERSION = 39

#: Native panel type -> Grafana panel type.
GRAFANA_TYPES: dict[str, str] = {
    "line": "timeseries",
    "bar": "barchart",
    "pie": "piechart",
    "scatter": "xychart",
    "heatmap": "heatmap",
    "stat": "stat",
    "table": "table",
}

#: Every query runs on the data source the Grafana user picks for this variable.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}

#: Key, on Grafana objects, of the native values kept for a lossless re-import.
KEPT = "trmOtel"

#: Panel options that are also Grafana field defaults.
FIELD_OPTIONS = ("unit", "min", "max", "decimals")


def to_grafana(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard JSON of ``dashboard`` (import it into Grafana as is)."""
    return {
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": "Exported from trm-otel; the native queries are kept under 'trmOtel'.",
        "tags": list(dashboard.tags),
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "style": dashboard.theme,
        "time": {"from": dashboard.time.from_, "to": dashboard.time.to},
        "refresh": dashboard.refresh,
        "schemaVersion": GRAFANA_SCHEMA_VERSION,
        "version": dashboard.version,
        "annotations": {"list": []},
        "templating": {"list": [_datasource_variable(), *(_variable(v) for v in dashboard.variables)]},
        "panels": [_panel(p, dashboard.variables) for p in dashboard.panels],
    }


def export_expr(expr: str, variables: Sequence[Variable], *, heatmap: bool = False) -> str:
    """``expr`` as PromQL with ``${name}`` variables, or a PromQL comment carrying ``expr``."""
    marked, names = with_placeholders(expr)
    try:
        parsed = check_expr(marked, heatmap=heatmap)
    except QueryError:
        return _untranslated(expr)
    several = {i for i, n in enumerate(names) if any(v.name == n and (v.multi or v.include_all) for v in variables)}
    matchers = tuple(_any_of(m, several) for m in parsed.matchers)
    if isinstance(parsed, Selector):
        promql: str | None = selector_to_promql(parsed.metric, matchers, parsed.range_s)
    else:
        promql = to_promql(replace(parsed, matchers=matchers))
    if promql is None:
        return _untranslated(expr)
    return restore_placeholders(promql, names, braces=True)


def export_variable_query(query: str) -> str:
    """``label_values(service.name)`` -> ``label_values(service_name)``; selectors under Prometheus names."""
    selector_text, label = label_values_query(query)
    if selector_text is None:
        return f"label_values({prometheus_label(label)})"
    marked, names = with_placeholders(selector_text)
    try:
        selector = parse_selector(marked)
    except QueryError:
        return query
    series = _series_name(selector.metric)
    if selector.matchers:
        parts = ", ".join(f'{prometheus_label(m.name)}{m.op}"{_escape(m.value)}"' for m in selector.matchers)
        series += "{" + parts + "}"
    series = restore_placeholders(series, names, braces=True)
    return f"label_values({series}, {prometheus_label(label)})"


# --- parts --------------------------------------------------------------------


def _panel(panel: Panel, variables: Sequence[Variable]) -> dict[str, Any]:
    heatmap = panel.type == "heatmap"
    out: dict[str, Any] = {
        "id": panel.id,
        "type": GRAFANA_TYPES[panel.type],
        "title": panel.title,
        "gridPos": {"x": panel.grid.x * 2, "y": panel.grid.y, "w": panel.grid.w * 2, "h": panel.grid.h},
        "datasource": dict(DATASOURCE),
        "fieldConfig": {
            "defaults": {k: panel.options[k] for k in FIELD_OPTIONS if k in panel.options},
            "overrides": [],
        },
        "options": {"calculate": False} if heatmap else {},
        "targets": [],
    }
    for i, target in enumerate(panel.targets):
        item: dict[str, Any] = {
            "refId": _ref_id(i),
            "datasource": dict(DATASOURCE),
            "expr": export_expr(target.expr, variables, heatmap=heatmap),
            "legendFormat": legend_to_grafana(target.legend) if target.legend else ("{{le}}" if heatmap else ""),
            KEPT: {"expr": target.expr, "legend": target.legend},
        }
        durations = exemplar_matchers(with_placeholders(target.expr)[0], heatmap=heatmap) is not None
        if panel.type in ("line", "heatmap") and durations:
            item["exemplar"] = True  # Grafana asks Prometheus for the exemplars /metrics carries
        if heatmap:
            item["format"] = "heatmap"
        elif panel.type in ("table", "pie", "stat"):
            item["instant"] = panel.type != "stat"
        out["targets"].append(item)
    if panel.options:
        out[KEPT] = {"options": panel.options}
    return out


def _datasource_variable() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "hide": 0}


def _variable(variable: Variable) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": variable.name,
        "hide": 0,
        "multi": variable.multi,
        "includeAll": variable.include_all,
        "current": _current(variable.current),
    }
    if variable.label is not None:
        out["label"] = variable.label
    if variable.query is not None:
        query = export_variable_query(variable.query)
        out.update(type="query", datasource=dict(DATASOURCE), query=query, definition=query, refresh=1)
        out[KEPT] = {"query": variable.query}
    else:
        values = variable.values or ()
        out.update(
            type="custom",
            query=",".join(v.replace(",", "\\,") for v in values),
            options=[{"text": v, "value": v, "selected": _selected(variable.current, v)} for v in values],
        )
    return out


def _current(current: str | tuple[str, ...] | None) -> dict[str, Any]:
    if current is None:
        return {}
    if isinstance(current, str):
        return {"text": "All" if current == ALL else current, "value": current}
    return {"text": ["All" if v == ALL else v for v in current], "value": list(current)}


def _selected(current: str | tuple[str, ...] | None, value: str) -> bool:
    return value == current if isinstance(current, str) else value in (current or ())


def _ref_id(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


# --- text ---------------------------------------------------------------------


def _any_of(matcher: Matcher, several: set[int]) -> Matcher:
    """A ``=`` matcher whose whole value is a several-valued variable means "any of": ``=~``."""
    whole = PLACEHOLDER.fullmatch(matcher.value)
    if whole is None or int(whole.group(1)) not in several or matcher.op not in ("=", "!="):
        return matcher
    return Matcher(matcher.name, "=~" if matcher.op == "=" else "!~", matcher.value)


def _series_name(metric: str) -> str:
    if metric in (DURATION_METRIC, CALLS_METRIC):
        return "traces_span_metrics_calls_total"
    known = known_metric(metric)
    return known.prometheus if known is not None else prometheus_label(metric)


def _untranslated(expr: str) -> str:
    lines = "\n".join(f"# {line}" for line in expr.splitlines() or [""])
    return f"# trm-otel query with no PromQL equivalent:\n{lines}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
