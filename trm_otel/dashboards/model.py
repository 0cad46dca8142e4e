"""The native dashboard document, as pydantic models, and its validation.

    >>> d = load_dashboard({
    ...     "uid": "shop", "title": "Shop",
    ...     "panels": [{"id": 1, "title": "P95", "type": "line",
    ...                 "targets": [{"expr": "p95(traces.span.metrics.duration[5m]) by (service.name)"}],
    ...                 "grid": {"x": 0, "y": 0, "w": 6, "h": 8}}]})
    >>> d.panels[0].grid.w, dump_dashboard(d)["time"]
    (6, {'from': 'now-6h', 'to': 'now'})

Validation has two layers, reported together as one :class:`DashboardError`:
the models check each value where it stands (types, ranges, unknown keys,
the uid's form, a panel type), and :func:`check_dashboard` checks what
needs the whole document (overlapping panels, duplicate ids and names,
target expressions against the query parser and the variables). Models
built in code skip the second layer until :func:`validate_dashboard`;
:func:`load_dashboard` (JSON in) runs migrations and both.

The grid has 12 columns (``x`` 0-11, ``w`` 1-12, ``x + w`` at most 12) and
rows of unbounded height; ``y`` and ``h`` are in row units. ``version`` is
the server's optimistic-concurrency counter: a document is stored only if
its ``version`` is the stored one, and the server then increments it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from trm_otel.config_types import StrictModel, parse_duration
from trm_otel.dashboards.errors import DashboardError
from trm_otel.dashboards.expressions import check_expr, parse_selector
from trm_otel.dashboards.layout import COLUMNS, overlaps
from trm_otel.dashboards.migrations import CURRENT_SCHEMA_VERSION, migrate
from trm_otel.dashboards.time_range import check_time, resolve
from trm_otel.dashboards.variables import ALL, label_values_query, placeholder_expr
from trm_otel.errors import ConfigError
from trm_otel.query import QueryError

__all__ = [
    "PANEL_TYPES",
    "Dashboard",
    "Grid",
    "Panel",
    "Target",
    "TimeRange",
    "Variable",
    "check_dashboard",
    "dump_dashboard",
    "load_dashboard",
    "validate_dashboard",
]

#: The chart kinds a panel can be.
PANEL_TYPES: tuple[str, ...] = ("line", "bar", "pie", "scatter", "heatmap", "stat", "table")

_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Grid(StrictModel):
    """Where a panel sits: column ``x`` (0-11), row ``y``, ``w`` columns wide, ``h`` rows high."""

    x: int = Field(strict=True, ge=0, le=COLUMNS - 1)
    y: int = Field(strict=True, ge=0)
    w: int = Field(strict=True, ge=1, le=COLUMNS)
    h: int = Field(strict=True, ge=1)


class Target(StrictModel):
    """One series source of a panel: a query (a selector for heatmaps) and its legend template.

    ``legend`` may name labels as ``{{span.name}}``; empty means the
    series' labels as the viewer shows them.
    """

    expr: str = Field(strict=True)
    legend: str = Field(default="", strict=True)

    @field_validator("expr")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class Panel(StrictModel):
    """One chart. ``options`` are free-form display settings (``unit``, ``min``, ``max``, ``stacked``, ...)."""

    id: int = Field(strict=True, ge=1)
    title: str = Field(default="", strict=True)
    type: str = Field(strict=True)
    targets: tuple[Target, ...] = ()
    grid: Grid
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PANEL_TYPES:
            raise ValueError(f"unknown panel type {value!r} (expected one of {', '.join(PANEL_TYPES)})")
        return value


class TimeRange(StrictModel):
    """The dashboard's default range; see :mod:`~trm_otel.dashboards.time_range` for the syntax."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(default="now-6h", alias="from", strict=True)
    to: str = Field(default="now", strict=True)

    @field_validator("from_", "to")
    @classmethod
    def _a_time(cls, value: str) -> str:
        check_time(value)
        return value


class Variable(StrictModel):
    """A choice the viewer makes, referenced in targets as ``$name`` or ``${name}``.

    Its values come from ``query`` (``label_values(service.name)`` or
    ``label_values(METRIC{...}, label)``, looked up by the server) or are
    listed in ``values``. ``current`` is the default choice: one value, a
    list when ``multi``, or ``"$__all"`` when ``include_all``.
    """

    name: str = Field(strict=True)
    label: str | None = Field(default=None, strict=True)
    query: str | None = Field(default=None, strict=True)
    values: tuple[str, ...] | None = None
    multi: bool = Field(default=False, strict=True)
    include_all: bool = Field(default=False, strict=True)
    current: str | tuple[str, ...] | None = None

    @field_validator("name")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if not _VARIABLE_NAME.match(value) or value.startswith("__"):
            raise ValueError(f"must be a letter or '_' then letters, digits or '_' (not starting '__'), got {value!r}")
        return value

    @field_validator("query")
    @classmethod
    def _label_values(cls, value: str | None) -> str | None:
        if value is not None:
            selector, _label = label_values_query(value)
            if selector is not None:
                try:
                    parse_selector(selector)
                except QueryError as err:
                    raise ValueError(f"in the selector: {err}") from None
        return value

    @field_validator("current")
    @classmethod
    def _a_choice(cls, value: str | tuple[str, ...] | None, info: ValidationInfo) -> str | tuple[str, ...] | None:
        chosen = (value,) if isinstance(value, str) else (value or ())
        if isinstance(value, tuple) and not info.data.get("multi") and len(value) != 1:
            raise ValueError(f"a list of {len(value)} values needs multi: true")
        if ALL in chosen and not info.data.get("include_all"):
            raise ValueError(f"{ALL!r} needs include_all: true")
        listed = info.data.get("values")
        missing = [v for v in chosen if v != ALL and listed is not None and v not in listed]
        if missing:
            raise ValueError(f"{missing[0]!r} is not one of the values")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Variable:
        if (self.query is None) == (self.values is None):
            raise ValueError("give either query (label_values(...)) or values (a list), exactly one")
        return self


class Dashboard(StrictModel):
    """A dashboard: where its panels sit, what they query, and its defaults (time, refresh, theme)."""

    model_config = ConfigDict(populate_by_name=True)

    uid: str = Field(strict=True)
    title: str = Field(strict=True)
    tags: tuple[str, ...] = ()
    time: TimeRange = Field(default_factory=TimeRange)
    refresh: str = Field(default="30s", strict=True)
    theme: Literal["light", "dark"] = "light"
    variables: tuple[Variable, ...] = ()
    panels: tuple[Panel, ...] = ()
    schema_version: int = Field(default=CURRENT_SCHEMA_VERSION, alias="schemaVersion", strict=True)
    version: int = Field(default=0, strict=True, ge=0)

    @field_validator("uid")
    @classmethod
    def _a_uid(cls, value: str) -> str:
        if not _UID.match(value):
            raise ValueError(f"must be 1 to 40 letters, digits, '-' or '_', got {value!r}")
        return value

    @field_validator("title")
    @classmethod
    def _a_title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("refresh")
    @classmethod
    def _a_refresh(cls, value: str) -> str:
        if value == "":
            return value  # no automatic refresh
        seconds = parse_duration(value)
        if seconds < 1:
            raise ValueError(f"must be at least 1s (or \"\" for none), got {value!r}")
        return value

    @field_validator("schema_version")
    @classmethod
    def _current_schema(cls, value: int) -> int:
        if value != CURRENT_SCHEMA_VERSION:
            raise ValueError(f"must be {CURRENT_SCHEMA_VERSION} here (load older documents with load_dashboard)")
        return value


def load_dashboard(doc: Mapping[str, Any]) -> Dashboard:
    """A native JSON document (of any known schema version) as a valid :class:`Dashboard`.

    Raises :class:`DashboardError` listing every problem with its key path.
    """
    migrated = migrate(doc)
    try:
        dashboard = Dashboard.model_validate(migrated)
    except pydantic.ValidationError as err:
        problems = ConfigError.from_validation_error(err, known_keys_hint=Dashboard).problems
        raise DashboardError(problems) from None
    return validate_dashboard(dashboard)


def validate_dashboard(dashboard: Dashboard) -> Dashboard:
    """``dashboard`` itself if :func:`check_dashboard` finds nothing, else :class:`DashboardError`."""
    problems = check_dashboard(dashboard)
    if problems:
        raise DashboardError(problems)
    return dashboard


def dump_dashboard(dashboard: Dashboard) -> dict[str, Any]:
    """The native JSON document; :func:`load_dashboard` reads it back equal."""
    return dashboard.model_dump(mode="json", by_alias=True, exclude_none=True)


def check_dashboard(dashboard: Dashboard) -> list[tuple[str, str]]:
    """The problems only the whole document shows, as ``(key path, message)``, in document order."""
    problems: list[tuple[str, str]] = []
    try:
        resolve(dashboard.time.from_, dashboard.time.to, 1_700_000_000.0)
    except ValueError as err:
        relative = dashboard.time.from_.startswith("now") == dashboard.time.to.startswith("now")
        if relative:  # a mix of relative and absolute times is only ordered at a given moment
            problems.append(("time", str(err).removeprefix("time range: ")))
    names: dict[str, int] = {}
    for i, variable in enumerate(dashboard.variables):
        if variable.name in names:
            message = f"duplicate variable {variable.name!r} (also variables[{names[variable.name]}])"
            problems.append((f"variables[{i}].name", message))
        names.setdefault(variable.name, i)
    ids: dict[int, int] = {}
    for i, panel in enumerate(dashboard.panels):
        if panel.id in ids:
            problems.append((f"panels[{i}].id", f"duplicate panel id {panel.id} (also panels[{ids[panel.id]}])"))
        ids.setdefault(panel.id, i)
        problems.extend(_grid_problems(dashboard, i))
        problems.extend(_target_problems(dashboard, i))
    return problems


def _grid_problems(dashboard: Dashboard, i: int) -> list[tuple[str, str]]:
    grid = dashboard.panels[i].grid
    if grid.x + grid.w > COLUMNS:
        return [(f"panels[{i}].grid", f"out of the grid: x + w is {grid.x + grid.w}, the grid has {COLUMNS} columns")]
    box = (grid.x, grid.y, grid.w, grid.h)
    for j, other in enumerate(dashboard.panels[:i]):
        g = other.grid
        if overlaps(box, (g.x, g.y, g.w, g.h)):
            return [(f"panels[{i}].grid", f"overlaps panels[{j}]")]
    return []


def _target_problems(dashboard: Dashboard, i: int) -> list[tuple[str, str]]:
    panel = dashboard.panels[i]
    problems: list[tuple[str, str]] = []
    for j, target in enumerate(panel.targets):
        path = f"panels[{i}].targets[{j}].expr"
        text, reference_problems = placeholder_expr(target.expr, dashboard.variables)
        problems.extend((path, message) for message in reference_problems)
        if reference_problems:
            continue
        try:
            check_expr(text, heatmap=panel.type == "heatmap")
        except QueryError as err:
            problems.append((path, str(err)))
    return problems
