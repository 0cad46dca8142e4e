"""A Grafana dashboard JSON as a native dashboard, plus a list of what did not carry over.

    >>> from trm_otel.dashboards.defaults import performance
    >>> from trm_otel.dashboards.grafana_export import to_grafana
    >>> dashboard, unmapped = from_grafana(to_grafana(performance()))
    >>> dashboard == performance(), unmapped
    (True, [])

Import maps what has a native equivalent and says what it left behind, as
lines a person reads (``panels[3] (type "news"): panel type has no
equivalent``), rather than refusing the whole dashboard:

* panels: types by the inverse of ``GRAFANA_TYPES`` (plus the legacy
  ``graph``, ``singlestat``, ``table-old``, and ``gauge``/``bargauge``
  drawn as stat/bar); rows are flattened: a row's own panels (nested in a
  collapsed row, following an expanded one) are kept in document order;
  ``gridPos`` is halved to 12 columns by rounding both edges, then each
  panel overlapping an earlier one moves down below it, and when rows or
  panels were dropped (or panels moved) every panel moves up as far as it
  can, which is how Grafana draws its grid anyway. Pre-5 dashboards with
  top-level ``rows`` of ``span``-wide panels are laid out the same way;
* targets: the kept native query when the PromQL is still the one the
  export wrote, else the ``expr`` itself when it is valid in our query
  language; anything else (PromQL without an equivalent, Loki or other
  non-metrics data sources) is listed;
* variables: see :mod:`~trm_otel.dashboards.grafana_variables`; a target
  naming a variable that did not carry over is listed;
* ``time``, ``refresh``, ``tags``, ``title``, ``uid`` (made from the title
  when Grafana's is not usable), ``version``, ``style`` as ``theme``.

Accepts the dashboard itself or the API's ``{"dashboard": {...}, "meta": ...}``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pydantic

from trm_otel.config_types import parse_duration
from trm_otel.dashboards.errors import DashboardError
from trm_otel.dashboards.expressions import check_expr
from trm_otel.dashboards.grafana_export import FIELD_OPTIONS, GRAFANA_TYPES, KEPT, export_expr
from trm_otel.dashboards.grafana_variables import import_variables
from trm_otel.dashboards.layout import Box, compact, halve_columns, unstack
from trm_otel.dashboards.model import Dashboard, Variable, validate_dashboard
from trm_otel.dashboards.promql import legend_from_grafana, legend_to_grafana
from trm_otel.dashboards.time_range import check_time, resolve
from trm_otel.dashboards.variables import placeholder_expr
from trm_otel.errors import ConfigError
from trm_otel.query import QueryError

__all__ = ["from_grafana"]

_FROM_GRAFANA = {grafana: native for native, grafana in GRAFANA_TYPES.items()}
_LEGACY = {"graph": "line", "singlestat": "stat", "table-old": "table", "grafana-piechart-panel": "pie"}
_APPROXIMATE = {"gauge": "stat", "bargauge": "bar"}
_UID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_DEFAULT_BOX = (0, 0, 24, 8)


def from_grafana(doc: Mapping[str, Any]) -> tuple[Dashboard, list[str]]:
    """``(dashboard, unmapped)``: the native dashboard and one line per item it could not carry over.

    Raises :class:`DashboardError` only when ``doc`` is not a dashboard at all.
    """
    if isinstance(doc, Mapping) and isinstance(doc.get("dashboard"), Mapping):
        doc = doc["dashboard"]
    if not isinstance(doc, Mapping) or not any(k in doc for k in ("panels", "rows", "title", "templating")):
        raise DashboardError([("", "not a Grafana dashboard: expected an object with title and panels")])
    notes: list[str] = []
    native: dict[str, Any] = {
        "uid": _uid(doc, notes),
        "title": _text(doc.get("title")) if _text(doc.get("title")).strip() else "Imported dashboard",
        "tags": [t for t in _list(doc.get("tags")) if isinstance(t, str)],
        "time": _time(doc.get("time"), notes),
        "refresh": _refresh(doc.get("refresh"), notes),
        "theme": "dark" if doc.get("style") == "dark" else "light",
        "version": doc["version"] if _is_int(doc.get("version")) and doc["version"] >= 0 else 0,
    }
    variables = import_variables(doc.get("templating"), notes)
    native["variables"] = [v.model_dump(mode="json", exclude_none=True) for v in variables]
    native["panels"] = _panels(doc, variables, notes)
    annotations = doc.get("annotations")
    for i, item in enumerate(_list(annotations.get("list")) if isinstance(annotations, Mapping) else []):
        if isinstance(item, Mapping) and not item.get("builtIn"):
            notes.append(f'annotations.list[{i}] ("{_text(item.get("name"))}"): annotations are not supported')
    if _list(doc.get("links")):
        notes.append(f"links: {len(doc['links'])} dashboard link(s) not supported")
    try:
        dashboard = Dashboard.model_validate(native)
    except pydantic.ValidationError as err:  # a gap in this mapping, not in the user's document
        raise DashboardError(ConfigError.from_validation_error(err, known_keys_hint=Dashboard).problems) from None
    return validate_dashboard(dashboard), notes


# --- dashboard fields ---------------------------------------------------------


def _uid(doc: Mapping[str, Any], notes: list[str]) -> str:
    uid = doc.get("uid")
    if isinstance(uid, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        return uid
    made = _UID_CHARS.sub("-", _text(doc.get("title")).lower()).strip("-")[:40].strip("-") or "imported"
    if uid not in (None, ""):
        notes.append(f"uid {uid!r}: not 1 to 40 letters, digits, '-' or '_'; using {made!r}")
    return made


def _time(value: Any, notes: list[str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {"from": "now-6h", "to": "now"}
    out = {}
    for key, default in (("from", "now-6h"), ("to", "now")):
        text = value.get(key, default)
        try:
            check_time(text)
        except ValueError:
            notes.append(f"time.{key} ({text!r}): not a time trm-otel reads; using {default!r}")
            text = default
        out[key] = text
    try:
        resolve(out["from"], out["to"], time.time())
    except ValueError as err:
        notes.append(f"time: {str(err).removeprefix('time range: ')}; using the last 6 hours")
        out = {"from": "now-6h", "to": "now"}
    return out


def _refresh(value: Any, notes: list[str]) -> str:
    if value in (None, "", False):
        return ""
    try:
        if isinstance(value, str) and parse_duration(value) >= 1:
            return value
    except ValueError:
        pass
    notes.append(f"refresh ({value!r}): not a duration trm-otel reads; no automatic refresh")
    return ""


# --- panels -------------------------------------------------------------------


def _panels(doc: Mapping[str, Any], variables: Sequence[Variable], notes: list[str]) -> list[dict[str, Any]]:
    used_ids = {p.get("id") for _, p in _flatten(doc, []) if _is_int(p.get("id"))}
    panels: list[dict[str, Any]] = []
    boxes: list[Box] = []
    next_id = 1
    top = _list(doc.get("panels"))
    rearranged = "rows" in doc or any(isinstance(p, Mapping) and p.get("type") == "row" for p in top)
    for path, panel in _flatten(doc, notes):
        native_type = _panel_type(path, panel, notes)
        if native_type is None:
            rearranged = True
            continue
        pid = panel.get("id")
        if not _is_int(pid) or pid < 1 or any(p["id"] == pid for p in panels):
            while next_id in used_ids or any(p["id"] == next_id for p in panels):
                next_id += 1
            pid = next_id
        x, y, w, h = _box(panel)
        nx, nw = halve_columns(x, w)
        boxes.append((nx, max(y, 0), nw, max(h, 1)))
        if _list(panel.get("transformations")):
            notes.append(f'{path} ("{_text(panel.get("title"))}"): transformations are not supported')
        panels.append({
            "id": pid,
            "title": _text(panel.get("title")),
            "type": native_type,
            "targets": _targets(path, panel, native_type, variables, notes),
            "options": _options(panel),
        })
    placed = unstack(boxes)
    if rearranged or placed != boxes:  # close the gaps left by rows and dropped or moved panels, as Grafana would
        placed = compact(placed)
    for panel, (x, y, w, h) in zip(panels, placed):
        panel["grid"] = {"x": x, "y": y, "w": w, "h": h}
    return panels


def _flatten(doc: Mapping[str, Any], notes: list[str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every non-row panel with its path, in document order; rows are noted and dropped."""
    if "panels" not in doc and isinstance(doc.get("rows"), list):
        yield from _legacy_rows(doc["rows"], notes)
        return
    for i, panel in enumerate(_list(doc.get("panels"))):
        path = f"panels[{i}]"
        if not isinstance(panel, Mapping):
            notes.append(f"{path}: not a panel object")
            continue
        if panel.get("type") != "row":
            yield path, panel
            continue
        notes.append(f'{path} (row "{_text(panel.get("title"))}"): rows are flattened; the row\'s panels are kept')
        for j, nested in enumerate(_list(panel.get("panels"))):
            if isinstance(nested, Mapping):
                yield f"{path}.panels[{j}]", nested


def _legacy_rows(rows: list[Any], notes: list[str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Pre-5 ``rows[].panels[]`` with ``span`` (of 12) and a pixel ``height``, as gridPos panels."""
    y = 0
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            continue
        height = _pixels(row.get("height"))
        h = max(1, math.ceil(height / 30)) if height else 8
        x = 0
        for j, panel in enumerate(_list(row.get("panels"))):
            if not isinstance(panel, Mapping):
                continue
            span = panel.get("span")
            w = int(span * 2) if isinstance(span, (int, float)) and 0 < span <= 12 else 24
            if x + w > 24:
                x, y = 0, y + h
            yield f"rows[{i}].panels[{j}]", {**panel, "gridPos": {"x": x, "y": y, "w": w, "h": h}}
            x += w
        y += h
        if row.get("title") and row.get("showTitle"):
            notes.append(f'rows[{i}] (row "{row["title"]}"): rows are flattened; the row\'s panels are kept')


def _panel_type(path: str, panel: Mapping[str, Any], notes: list[str]) -> str | None:
    kind = panel.get("type")
    if isinstance(kind, str) and kind in _FROM_GRAFANA:
        return _FROM_GRAFANA[kind]
    if isinstance(kind, str) and kind in _LEGACY:
        return _LEGACY[kind]
    if isinstance(kind, str) and kind in _APPROXIMATE:
        notes.append(f'{path} (type "{kind}"): drawn as {_APPROXIMATE[kind]}')
        return _APPROXIMATE[kind]
    if "libraryPanel" in panel and kind is None:
        notes.append(f"{path}: library panel; export the dashboard from Grafana with library panels inlined")
        return None
    notes.append(f'{path} (type "{kind}"): panel type has no equivalent')
    return None


def _box(panel: Mapping[str, Any]) -> Box:
    pos = panel.get("gridPos")
    if not isinstance(pos, Mapping) or not all(_is_int(pos.get(k)) for k in ("x", "y", "w", "h")):
        return _DEFAULT_BOX
    return pos["x"], pos["y"], pos["w"], pos["h"]


def _options(panel: Mapping[str, Any]) -> dict[str, Any]:
    kept = panel.get(KEPT)
    if isinstance(kept, Mapping) and isinstance(kept.get("options"), Mapping):
        return dict(kept["options"])
    field_config = panel.get("fieldConfig")
    defaults = field_config.get("defaults") if isinstance(field_config, Mapping) else None
    if not isinstance(defaults, Mapping):
        return {}
    return {k: defaults[k] for k in FIELD_OPTIONS if defaults.get(k) is not None}


# --- targets ------------------------------------------------------------------


def _targets(
    path: str, panel: Mapping[str, Any], native_type: str, variables: Sequence[Variable], notes: list[str]
) -> list[dict[str, str]]:
    heatmap = native_type == "heatmap"
    out: list[dict[str, str]] = []
    for k, target in enumerate(_list(panel.get("targets"))):
        if not isinstance(target, Mapping):
            continue
        ref = target.get("refId")
        where = f'{path}.targets[{k}] (refId "{ref}")' if isinstance(ref, str) else f"{path}.targets[{k}]"
        expr, legend = target.get("expr"), _text(target.get("legendFormat"))
        kept = target.get(KEPT)
        if isinstance(kept, Mapping) and isinstance(kept.get("expr"), str):
            kept_legend = _text(kept.get("legend"))
            as_exported = export_expr(kept["expr"], variables, heatmap=heatmap)
            if expr == as_exported and not _problem(kept["expr"], variables, heatmap):
                exported_legend = legend_to_grafana(kept_legend) or ("{{le}}" if heatmap else "")
                unchanged = legend == exported_legend
                out.append({"expr": kept["expr"], "legend": kept_legend if unchanged else legend})
                continue
        source = _datasource_type(target.get("datasource")) or _datasource_type(panel.get("datasource"))
        if source not in (None, "prometheus"):
            notes.append(f"{where}: {source} query; only Prometheus-style metric queries are imported")
            continue
        if target.get("hide") is True:
            notes.append(f"{where}: hidden query not imported")
            continue
        if not isinstance(expr, str) or not expr.strip():
            notes.append(f"{where}: no expression")
            continue
        problem = _problem(expr, variables, heatmap)
        if problem is not None:
            notes.append(f"{where}: {problem}")
            continue
        out.append({"expr": expr, "legend": legend_from_grafana(legend)})
    return out


def _problem(expr: str, variables: Sequence[Variable], heatmap: bool) -> str | None:
    """Why ``expr`` cannot be a target here (as the validator would judge it), or ``None``."""
    text, problems = placeholder_expr(expr, variables)
    try:
        check_expr(text, heatmap=heatmap)
    except QueryError:
        return f"PromQL has no equivalent in the trm-otel query language: {expr}"
    return f"{problems[0]}: {expr}" if problems else None


def _datasource_type(datasource: Any) -> str | None:
    """``loki`` from ``{"type": "loki", ...}``; ``None`` when unknown or mixed."""
    if isinstance(datasource, Mapping):
        kind = datasource.get("type")
        return kind if isinstance(kind, str) and kind not in ("", "datasource") else None
    return None


# --- small helpers ------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pixels(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]*)?\s*(px)?\s*", value):
        return float(value.strip().removesuffix("px"))
    return None
