"""Grafana template variables as native dashboard variables.

    >>> notes = []
    >>> import_variables({"list": [{"name": "service", "type": "query",
    ...     "query": {"query": "label_values(traces_span_metrics_calls_total, service_name)"}}]}, notes)[0].query
    'label_values(traces.span.metrics.calls, service.name)'

Kept: ``query`` variables of the ``label_values(...)`` form (the names of
trm-otel's own series and labels turned back from their Prometheus
spelling, or the kept native query while the Grafana one is the exported
one), ``custom`` (from ``options``, else the comma-separated ``query``),
``constant`` and ``textbox`` (their one value), ``interval`` (its values,
usable as ``[$window]``). The data source variable is dropped silently;
any other kind is listed. ``current`` is kept where it is still a choice
the variable can take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pydantic

from trm_otel.dashboards.expressions import parse_selector
from trm_otel.dashboards.grafana_export import KEPT, export_variable_query
from trm_otel.dashboards.model import Variable
from trm_otel.dashboards.promql import label_from_prometheus, metric_from_prometheus
from trm_otel.dashboards.variables import ALL, label_values_query, restore_placeholders, with_placeholders
from trm_otel.errors import ConfigError
from trm_otel.query import QueryError

__all__ = ["import_variables"]


def import_variables(templating: Any, notes: list[str]) -> list[Variable]:
    """The variables of Grafana's ``templating`` that have an equivalent; a line in ``notes`` per other one."""
    items = _list(templating.get("list")) if isinstance(templating, Mapping) else []
    out: list[Variable] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or item.get("type") == "datasource":
            continue
        kind, name = item.get("type"), item.get("name")
        where = f'templating.list[{i}] ({kind} variable "{name}")'
        source = _variable_source(item)
        if isinstance(source, str):
            notes.append(f"{where}: {source}")
            continue
        fields = {
            "name": name,
            "label": item.get("label") if isinstance(item.get("label"), str) else None,
            "multi": item.get("multi") is True,
            "include_all": item.get("includeAll") is True,
            **source,
        }
        if any(v.name == name for v in out):
            notes.append(f"{where}: a variable of this name comes earlier")
            continue
        fields["current"] = _current(item.get("current"), fields)
        try:
            out.append(Variable.model_validate(fields))
        except pydantic.ValidationError as err:
            problems = ConfigError.from_validation_error(err, known_keys_hint=Variable).problems
            notes.append(f"{where}: " + "; ".join(f"{p}: {m}" if p else m for p, m in problems))
    return out


def _variable_source(item: Mapping[str, Any]) -> dict[str, Any] | str:
    """``{"query": ...}`` or ``{"values": [...]}``, or why the variable cannot be kept."""
    kind = item.get("type")
    query = item.get("query")
    if isinstance(query, Mapping):
        query = query.get("query")
    if kind == "query":
        kept = item.get(KEPT)
        if isinstance(kept, Mapping) and isinstance(kept.get("query"), str):
            try:
                if export_variable_query(kept["query"]) == query:
                    return {"query": kept["query"]}
            except ValueError:
                pass
        if not isinstance(query, str):
            return "no query"
        try:
            selector, label = label_values_query(query)
        except ValueError:
            return f"query {query!r} has no equivalent (only label_values(...) is supported)"
        label = label_from_prometheus(label)
        if selector is None:
            return {"query": f"label_values({label})"}
        series = _selector_from_prometheus(selector)
        if series is None:
            return f"query {query!r} has no equivalent (its selector is not valid here)"
        return {"query": f"label_values({series}, {label})"}
    if kind == "custom":
        options = [o.get("value") for o in _list(item.get("options")) if isinstance(o, Mapping)]
        values = [v for v in options if isinstance(v, str) and v != ALL]
        if not values and isinstance(query, str):
            values = [v.replace("\\,", ",").split(" : ")[-1].strip() for v in re.split(r"(?<!\\),", query)]
        return {"values": [v for v in dict.fromkeys(values) if v]} if any(values) else "no values"
    if kind == "interval" and isinstance(query, str):
        return {"values": [v.strip() for v in query.split(",") if v.strip()]}
    if kind in ("constant", "textbox"):
        value = query
        current = item.get("current")
        if not (isinstance(value, str) and value) and isinstance(current, Mapping):
            value = current.get("value")
        return {"values": [value]} if isinstance(value, str) and value else "no value"
    return "variable type has no equivalent"


def _selector_from_prometheus(text: str) -> str | None:
    """A Prometheus selector with the names of trm-otel's own series turned back; ``None`` if invalid."""
    marked, names = with_placeholders(text)
    try:
        selector = parse_selector(marked)
    except QueryError:
        return None
    out = metric_from_prometheus(selector.metric)
    if selector.matchers:
        parts = (f'{label_from_prometheus(m.name)}{m.op}"{_escape(m.value)}"' for m in selector.matchers)
        out += "{" + ", ".join(parts) + "}"
    return restore_placeholders(out, names)


def _current(current: Any, fields: Mapping[str, Any]) -> str | list[str] | None:
    if not isinstance(current, Mapping):
        return None
    value = current.get("value")
    chosen = [value] if isinstance(value, str) else [v for v in _list(value) if isinstance(v, str)]
    listed = fields.get("values")
    chosen = [v for v in chosen if v != ALL or fields["include_all"]]
    chosen = [v for v in chosen if listed is None or v == ALL or v in listed]
    if not chosen:
        return None
    if not isinstance(value, str) and (fields["multi"] or len(chosen) == 1):
        return chosen
    return chosen[0]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
