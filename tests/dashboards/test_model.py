"""The native document: what loads, what is refused (exact messages), and the round trip."""

from __future__ import annotations

import copy
import doctest
import importlib
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from trm_otel.dashboards import (
    CURRENT_SCHEMA_VERSION,
    Dashboard,
    DashboardError,
    Grid,
    Panel,
    dump_dashboard,
    load_dashboard,
    validate_dashboard,
)
from trm_otel.dashboards.defaults import default_dashboards, performance, system_overview
from trm_otel.errors import TrmOtelError

from .strategies import dashboards

P95 = 'p95(traces.span.metrics.duration{service.name="shop"}[5m]) by (span.name)'


def base() -> dict[str, Any]:
    return {
        "uid": "shop",
        "title": "Shop",
        "variables": [{"name": "service", "values": ["shop", "cart"], "current": "shop"}],
        "panels": [
            {"id": 1, "title": "P95", "type": "line", "targets": [{"expr": P95}], "grid": {"x": 0, "y": 0, "w": 6, "h": 8}},
            {"id": 2, "title": "Rate", "type": "bar", "targets": [{"expr": "rate(traces.span.metrics.calls[1m])"}],
             "grid": {"x": 6, "y": 0, "w": 6, "h": 8}},
            {"id": 3, "title": "Latency", "type": "heatmap",
             "targets": [{"expr": 'traces.span.metrics.duration{service.name="$service"}'}],
             "grid": {"x": 0, "y": 8, "w": 12, "h": 8}},
        ],
    }  # fmt: skip


def edit(path: str, value: Any) -> dict[str, Any]:
    """``base()`` with the value at a dotted path (``panels.1.grid.x``) replaced; ``...`` deletes it."""
    doc = base()
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return doc


INVALID: dict[str, tuple[dict[str, Any], list[str]]] = {
    "bad_uid": (edit("uid", "shop dashboard"), ["uid: must be 1 to 40 letters, digits, '-' or '_', got 'shop dashboard'"]),
    "long_uid": (edit("uid", "x" * 41), [f"uid: must be 1 to 40 letters, digits, '-' or '_', got '{'x' * 41}'"]),
    "no_uid": (edit("uid", ...), ["uid: Field required"]),
    "empty_title": (edit("title", "  "), ["title: must not be empty"]),
    "unknown_key": (edit("pannels", []), ["pannels: unknown key (did you mean 'panels'?)"]),
    "unknown_panel_key": (edit("panels.0.gridPos", {}), ["panels[0].gridPos: unknown key (did you mean 'grid'?)"]),
    "unknown_type": (
        edit("panels.2.type", "graph"),
        ["panels[2].type: unknown panel type 'graph' (expected one of line, bar, pie, scatter, heatmap, stat, table)"],
    ),
    "x_too_big": (edit("panels.0.grid.x", 12), ["panels[0].grid.x: Input should be less than or equal to 11"]),
    "x_not_int": (edit("panels.0.grid.x", "1"), ["panels[0].grid.x: Input should be a valid integer"]),
    "w_zero": (edit("panels.0.grid.w", 0), ["panels[0].grid.w: Input should be greater than or equal to 1"]),
    "h_zero": (edit("panels.0.grid.h", 0), ["panels[0].grid.h: Input should be greater than or equal to 1"]),
    "y_negative": (edit("panels.0.grid.y", -1), ["panels[0].grid.y: Input should be greater than or equal to 0"]),
    "out_of_grid": (
        edit("panels.1.grid.w", 7),
        ["panels[1].grid: out of the grid: x + w is 13, the grid has 12 columns"],
    ),
    "overlap": (edit("panels.1.grid.x", 5), ["panels[1].grid: overlaps panels[0]"]),
    "overlap_below": (edit("panels.2.grid.y", 7), ["panels[2].grid: overlaps panels[0]"]),
    "duplicate_id": (edit("panels.2.id", 1), ["panels[2].id: duplicate panel id 1 (also panels[0])"]),
    "id_zero": (edit("panels.0.id", 0), ["panels[0].id: Input should be greater than or equal to 1"]),
    "bad_query": (
        edit("panels.0.targets", [{"expr": P95}, {"expr": "p95(x{a='b'"}]),
        ["panels[0].targets[1].expr: 1:12: expected ',' or '}' after the matcher, got end of query"],
    ),
    "bad_stat": (
        edit("panels.1.targets.0.expr", "P95(x)"),
        ["panels[1].targets[0].expr: 1:1: unknown statistic 'P95' (statistics are lower case: p95)"],
    ),
    "empty_expr": (edit("panels.1.targets.0.expr", " "), ["panels[1].targets[0].expr: must not be empty"]),
    "heatmap_with_stat": (
        edit("panels.2.targets.0.expr", "p95(traces.span.metrics.duration)"),
        [
            "panels[2].targets[0].expr: 1:1: a heatmap shows a histogram's buckets: write a selector without "
            'a statistic, e.g. traces.span.metrics.duration{service.name="shop"}'
        ],
    ),
    "heatmap_with_by": (
        edit("panels.2.targets.0.expr", "traces.span.metrics.duration by (span.name)"),
        ["panels[2].targets[0].expr: 1:30: expected end of the selector, got 'by'"],
    ),
    "heatmap_unclosed": (
        edit("panels.2.targets.0.expr", 'traces.span.metrics.duration{span.name="x"'),
        ["panels[2].targets[0].expr: 1:43: expected ',' or '}' after the matcher, got end of the selector"],
    ),
    "heatmap_of_gauge": (
        edit("panels.2.targets.0.expr", "system.cpu.utilization"),
        [
            "panels[2].targets[0].expr: 1:1: system.cpu.utilization is a gauge, not a histogram; a heatmap needs "
            'histogram series, e.g. traces.span.metrics.duration{service.name="shop"}'
        ],
    ),
    "unknown_variable": (
        edit("panels.2.targets.0.expr", 'traces.span.metrics.duration{service.name="$svc"}'),
        ["panels[2].targets[0].expr: unknown variable $svc (dashboard variables: service)"],
    ),
    "several_values_in_equality": (
        edit("variables.0.multi", True) | {"panels": [
            {"id": 1, "type": "line", "targets": [{"expr": 'p95(x{service.name="shop-$service"})'}],
             "grid": {"x": 0, "y": 0, "w": 6, "h": 8}}]},
        ["panels[0].targets[0].expr: variable $service can have several values, but in '=' it can stand for only "
         "one; make it the whole string or use '=~'"],
    ),  # fmt: skip
    "duplicate_variable": (
        edit("variables.1", {"name": "service", "values": ["a"]}) if False else {
            **base(), "variables": [{"name": "service", "values": ["shop"]}, {"name": "service", "values": ["a"]}]},
        ["variables[1].name: duplicate variable 'service' (also variables[0])"],
    ),
    "variable_name": (
        edit("variables.0.name", "my-service"),
        ["variables[0].name: must be a letter or '_' then letters, digits or '_' (not starting '__'), got 'my-service'"],
    ),
    "variable_without_source": (
        edit("variables.0.values", ...),
        ["variables[0]: give either query (label_values(...)) or values (a list), exactly one"],
    ),
    "variable_bad_query": (
        {**edit("variables.0.values", ...), "variables": [{"name": "service", "query": "up"}]},
        ["variables[0].query: expected label_values(label) or label_values(metric{...}, label), got 'up'"],
    ),
    "variable_bad_selector": (
        {**base(), "variables": [{"name": "service", "query": "label_values(x{a=b}, c)"}]},
        ["variables[0].query: in the selector: 1:5: expected a quoted string after '=', got 'b'"],
    ),
    "current_not_listed": (edit("variables.0.current", "web"), ["variables[0].current: 'web' is not one of the values"]),
    "current_list_not_multi": (
        edit("variables.0.current", ["shop", "cart"]),
        ["variables[0].current: a list of 2 values needs multi: true"],
    ),
    "current_all": (edit("variables.0.current", "$__all"), ["variables[0].current: '$__all' needs include_all: true"]),
    "time_from": (
        edit("time", {"from": "now-5x"}),
        ["time.from: not a time: 'now-5x': unknown unit 'x' (use s, m, h, d, w, M or y)"],
    ),
    "time_order": (edit("time", {"from": "now", "to": "now-1h"}), ["time: from 'now' must be before to 'now-1h'"]),
    "refresh": (edit("refresh", "often"), ["refresh: not a duration: 'often' (use e.g. 500ms, 10s, 5m, 1h30m, 7d)"]),
    "refresh_too_fast": (edit("refresh", "100ms"), ["refresh: must be at least 1s (or \"\" for none), got '100ms'"]),
    "theme": (edit("theme", "blue"), ["theme: Input should be 'light' or 'dark'"]),
    "version": (edit("version", -1), ["version: Input should be greater than or equal to 0"]),
    "newer_schema": (
        edit("schemaVersion", 99),
        [f"schemaVersion: 99 is newer than this trm-otel understands ({CURRENT_SCHEMA_VERSION}); "
         "upgrade trm-otel to load this dashboard"],
    ),  # fmt: skip
    "several_at_once": (
        {**edit("panels.1.grid.x", 5), "panels": [
            *edit("panels.1.grid.x", 5)["panels"][:2],
            {**base()["panels"][2], "id": 2, "targets": [{"expr": "rate(x"}]}]},
        [
            "panels[1].grid: overlaps panels[0]",
            "panels[2].id: duplicate panel id 2 (also panels[1])",
            "panels[2].targets[0].expr: 1:1: a heatmap shows a histogram's buckets: write a selector without a "
            'statistic, e.g. traces.span.metrics.duration{service.name="shop"}',
        ],
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_documents_name_every_problem_with_its_path(name: str) -> None:
    doc, expected = INVALID[name]
    with pytest.raises(DashboardError) as caught:
        load_dashboard(doc)
    assert [f"{p}: {m}" for p, m in caught.value.problems] == expected
    assert str(caught.value) == "\n".join(expected)


def test_the_base_document_is_valid_and_gets_the_defaults() -> None:
    d = load_dashboard(base())
    assert (d.time.from_, d.time.to, d.refresh, d.theme, d.version) == ("now-6h", "now", "30s", "light", 0)
    assert d.schema_version == CURRENT_SCHEMA_VERSION
    assert d.panels[2].grid == Grid(x=0, y=8, w=12, h=8)


def test_the_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(DashboardError) as caught:
        load_dashboard(edit("uid", "a b"))
    err = caught.value
    assert isinstance(err, ValueError) and isinstance(err, TrmOtelError)
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == err.problems and str(again) == str(err)


def test_not_an_object() -> None:
    with pytest.raises(DashboardError, match="^a dashboard is a JSON object, got list$"):
        load_dashboard([])  # type: ignore[arg-type]


def test_models_are_frozen() -> None:
    d = load_dashboard(base())
    with pytest.raises(Exception):
        d.title = "x"  # type: ignore[misc]


def test_models_built_in_code_are_checked_by_validate() -> None:
    grid = Grid(x=0, y=0, w=6, h=4)
    d = Dashboard(uid="x", title="X", panels=(Panel(id=1, type="line", grid=grid), Panel(id=2, type="line", grid=grid)))
    with pytest.raises(DashboardError, match=r"^panels\[1\]\.grid: overlaps panels\[0\]$"):
        validate_dashboard(d)


def test_relative_and_absolute_times_mix() -> None:
    d = load_dashboard(edit("time", {"from": "2025-11-30T00:00:00Z", "to": "now"}))
    assert d.time.from_ == "2025-11-30T00:00:00Z"


# --- the defaults ---------------------------------------------------------------


def test_default_dashboards_are_valid_with_stable_uids() -> None:
    assert [d.uid for d in default_dashboards()] == ["system-overview", "performance"]
    for d in default_dashboards():
        assert validate_dashboard(d) is d
        assert load_dashboard(dump_dashboard(d)) == d


def test_system_overview_reads_the_hostmetrics_names() -> None:
    exprs = " ".join(t.expr for p in system_overview().panels for t in p.targets)
    for name in ("system.cpu.utilization", "system.memory.utilization", "system.disk.io", "system.network.io"):
        assert name in exprs
    for label in ('cpu.mode=""', 'system.memory.state="used"', "disk.io.direction", "network.io.direction"):
        assert label in exprs


def test_performance_has_percentiles_throughput_errors_alerts_and_a_heatmap() -> None:
    panels = {p.title: p for p in performance().panels}
    assert [t.legend for t in panels["Response time"].targets] == ["P50", "P95", "P99"]
    assert panels["Throughput"].targets[0].expr.startswith("rate(traces.span.metrics.calls")
    assert panels["Error rate"].targets[0].expr.startswith("error_rate(")
    assert panels["Active alerts"].type == "pie"
    assert panels["Active alerts"].targets[0].expr == 'last(ALERTS{alertstate="firing"}[5m]) by (alertname)'
    assert panels["Latency distribution"].type == "heatmap"
    assert panels["Latency distribution"].targets[0].expr == 'traces.span.metrics.duration{service.name=~"$service"}'


# --- native round trip ----------------------------------------------------------


def test_native_round_trip_of_the_base_document() -> None:
    d = load_dashboard(base())
    doc = dump_dashboard(d)
    assert doc["time"] == {"from": "now-6h", "to": "now"} and doc["schemaVersion"] == CURRENT_SCHEMA_VERSION
    assert load_dashboard(copy.deepcopy(doc)) == d
    assert dump_dashboard(load_dashboard(doc)) == doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dashboards())
def test_generated_dashboards_round_trip_through_native_json(d: Dashboard) -> None:
    validate_dashboard(d)
    assert load_dashboard(dump_dashboard(d)) == d


# --- documentation --------------------------------------------------------------

MODULES = ["", ".model", ".errors", ".migrations", ".variables", ".expressions", ".time_range", ".layout",
           ".promql", ".grafana", ".grafana_export", ".grafana_import", ".grafana_variables", ".defaults"]  # fmt: skip


@pytest.mark.parametrize("suffix", MODULES)
def test_docstring_examples_run(suffix: str) -> None:
    module = importlib.import_module(f"trm_otel.dashboards{suffix}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_public_names() -> None:
    import trm_otel.dashboards as dashboards

    assert sorted(dashboards.__all__) == sorted([
        "ALL", "CURRENT_SCHEMA_VERSION", "PANEL_TYPES", "Dashboard", "DashboardError", "Grid", "Panel", "Target",
        "TimeRange", "Variable", "auto_step", "bind", "check_dashboard", "dump_dashboard", "from_grafana",
        "load_dashboard", "migrate", "resolve", "resolve_range", "substitute", "to_grafana", "validate_dashboard",
    ])  # fmt: skip
    for suffix in MODULES:
        module = importlib.import_module(f"trm_otel.dashboards{suffix}")
        for name in module.__all__:
            assert hasattr(module, name), (suffix, name)
