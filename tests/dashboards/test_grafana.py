"""Grafana JSON: what the export writes, that its re-import is lossless, and a realistic import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from trm_otel.dashboards import (
    Dashboard,
    DashboardError,
    Grid,
    Panel,
    Target,
    from_grafana,
    load_dashboard,
    to_grafana,
    validate_dashboard,
)
from trm_otel.dashboards.defaults import default_dashboards, performance, system_overview
from trm_otel.dashboards.grafana import GRAFANA_SCHEMA_VERSION

from .strategies import dashboards

TESTDATA = Path(__file__).parent / "testdata"
D = "traces.span.metrics.duration"
DS = {"type": "prometheus", "uid": "${datasource}"}


def through_json(doc: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(doc))


# --- export ---------------------------------------------------------------------


def test_export_top_level() -> None:
    g = to_grafana(performance())
    assert (g["uid"], g["title"], g["tags"], g["id"]) == ("performance", "Performance", ["performance", "spanmetrics"], None)
    assert (g["time"], g["refresh"], g["schemaVersion"], g["version"]) == ({"from": "now-6h", "to": "now"}, "30s", 39, 0)
    assert GRAFANA_SCHEMA_VERSION == 39
    assert (g["style"], g["timezone"]) == ("light", "utc")
    datasource, service = g["templating"]["list"]
    assert datasource == {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "hide": 0}
    assert service["type"] == "query" and service["query"] == "label_values(service_name)"
    assert (service["multi"], service["includeAll"], service["current"]) == (True, True, {"text": "All", "value": "$__all"})
    assert service["trmOtel"] == {"query": "label_values(service.name)"}
    json.dumps(g)  # plain JSON


def test_export_panels_types_and_grid() -> None:
    kinds = ["line", "bar", "pie", "scatter", "heatmap", "stat", "table"]
    panels = tuple(
        Panel(id=i + 1, type=kind, grid=Grid(x=(i % 2) * 5, y=i * 3, w=7 if i % 2 == 0 else 7, h=3),
              targets=(Target(expr=f"{D}" if kind == "heatmap" else f"p95({D})"),))
        for i, kind in enumerate(kinds)
    )  # fmt: skip
    g = to_grafana(validate_dashboard(Dashboard(uid="types", title="Types", panels=panels)))
    assert [p["type"] for p in g["panels"]] == ["timeseries", "barchart", "piechart", "xychart", "heatmap", "stat", "table"]
    assert [p["gridPos"] for p in g["panels"]][:2] == [{"x": 0, "y": 0, "w": 14, "h": 3}, {"x": 10, "y": 3, "w": 14, "h": 3}]


def test_export_targets() -> None:
    g = to_grafana(performance())
    latency, alerts, throughput, errors, heatmap, table = g["panels"]
    assert [t["refId"] for t in latency["targets"]] == ["A", "B", "C"]
    a = latency["targets"][1]
    assert a == {
        "refId": "B",
        "datasource": DS,
        "expr": 'histogram_quantile(0.95, sum by (le) (rate(traces_span_metrics_duration_milliseconds_bucket{service_name=~"${service}"}[5m])))',
        "legendFormat": "P95",
        "trmOtel": {"expr": f'p95({D}{{service.name=~"$service"}}[5m])', "legend": "P95"},
        "exemplar": True,  # span durations on the axis: Grafana shows the exemplars /metrics carries
    }
    assert latency["fieldConfig"] == {"defaults": {"unit": "ms"}, "overrides": []}
    assert latency["trmOtel"] == {"options": {"unit": "ms"}}
    assert latency["datasource"] == DS
    assert alerts["targets"][0]["expr"] == 'sum by (alertname) (last_over_time(ALERTS{alertstate="firing"}[5m]))'
    assert alerts["targets"][0]["legendFormat"] == "{{alertname}}"
    assert throughput["targets"][0]["legendFormat"] == "{{service_name}}"
    assert errors["targets"][0]["expr"] == (
        'sum by (service_name) (rate(traces_span_metrics_calls_total{service_name=~"${service}", '
        'status_code="STATUS_CODE_ERROR"}[5m])) / sum by (service_name) '
        '(rate(traces_span_metrics_calls_total{service_name=~"${service}"}[5m]))'
    )
    assert heatmap["targets"][0]["format"] == "heatmap" and heatmap["targets"][0]["legendFormat"] == "{{le}}"
    assert heatmap["targets"][0]["expr"] == (
        'sum by (le) (rate(traces_span_metrics_duration_milliseconds_bucket{service_name=~"${service}"}[$__rate_interval]))'
    )
    assert table["targets"][0]["instant"] is True
    assert heatmap["targets"][0]["exemplar"] is True
    assert all("exemplar" not in t for p in (alerts, throughput, errors, table) for t in p["targets"])


def test_the_brief_example_translation() -> None:
    d = validate_dashboard(Dashboard(uid="x", title="X", panels=(Panel(
        id=1, type="line", grid=Grid(x=0, y=0, w=12, h=8),
        targets=(Target(expr=f'p95({D}{{service.name="shop"}}[5m]) by (span.name)'),)),)))  # fmt: skip
    assert to_grafana(d)["panels"][0]["targets"][0]["expr"] == (
        "histogram_quantile(0.95, sum by (le, span_name) "
        '(rate(traces_span_metrics_duration_milliseconds_bucket{service_name="shop"}[5m])))'
    )


def test_untranslatable_queries_are_exported_as_a_comment() -> None:
    d = validate_dashboard(Dashboard(uid="x", title="X", panels=(Panel(
        id=1, type="line", grid=Grid(x=0, y=0, w=12, h=8), targets=(Target(expr=f"max({D}[5m])"),)),)))  # fmt: skip
    target = to_grafana(d)["panels"][0]["targets"][0]
    assert target["expr"] == f"# trm-otel query with no PromQL equivalent:\n# max({D}[5m])"
    assert from_grafana(to_grafana(d)) == (d, [])


def test_values_variables_become_custom_variables() -> None:
    doc = {"uid": "env", "title": "Env", "variables": [{"name": "env", "label": "Env", "values": ["prod", "a,b"], "current": "a,b"}]}
    g = to_grafana(load_dashboard(doc))
    env = g["templating"]["list"][1]
    assert env["type"] == "custom" and env["query"] == "prod,a\\,b"
    assert env["options"] == [
        {"text": "prod", "value": "prod", "selected": False},
        {"text": "a,b", "value": "a,b", "selected": True},
    ]
    assert from_grafana(through_json(g))[0].variables == load_dashboard(doc).variables


# --- round trip -----------------------------------------------------------------


@pytest.mark.parametrize("dashboard", default_dashboards(), ids=lambda d: d.uid)
def test_defaults_round_trip_through_grafana(dashboard: Dashboard) -> None:
    assert from_grafana(through_json(to_grafana(dashboard))) == (dashboard, [])
    assert from_grafana({"dashboard": to_grafana(dashboard), "meta": {}}) == (dashboard, [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dashboards())
def test_generated_dashboards_round_trip_through_grafana(d: Dashboard) -> None:
    assert from_grafana(through_json(to_grafana(d))) == (d, [])


def test_edits_made_in_grafana_win_over_the_kept_originals() -> None:
    g = through_json(to_grafana(system_overview()))
    g["title"] = "Hosts"
    g["panels"][0]["title"] = "CPU"
    g["panels"][0]["gridPos"] = {"x": 0, "y": 0, "w": 4, "h": 4}
    g["panels"][1]["gridPos"]["x"] = 4
    g["panels"][4]["targets"][0]["expr"] = 'max(system.cpu.utilization{cpu.mode=""}[1m])'  # our language
    g["panels"][4]["targets"][0]["legendFormat"] = "busy {{service_name}}"
    g["panels"][5]["targets"][0]["expr"] = "avg(rate(node_cpu_seconds_total[5m]))"  # PromQL only
    d, unmapped = from_grafana(g)
    assert d.title == "Hosts" and d.panels[0].title == "CPU"
    assert (d.panels[0].grid, d.panels[1].grid) == (Grid(x=0, y=0, w=2, h=4), Grid(x=2, y=0, w=3, h=4))
    assert d.panels[4].targets == (Target(expr='max(system.cpu.utilization{cpu.mode=""}[1m])', legend="busy {{service.name}}"),)
    assert d.panels[5].targets == ()
    assert unmapped == [
        'panels[5].targets[0] (refId "A"): PromQL has no equivalent in the trm-otel query language: '
        "avg(rate(node_cpu_seconds_total[5m]))"
    ]


# --- a realistic Grafana dashboard ----------------------------------------------


def realistic() -> tuple[Dashboard, list[str]]:
    return from_grafana(json.loads((TESTDATA / "grafana_services.json").read_text()))


def test_realistic_import_lists_what_did_not_map() -> None:
    _, unmapped = realistic()
    assert unmapped == [
        'templating.list[5] (adhoc variable "filters"): variable type has no equivalent',
        "templating.list[6] (query variable \"top\"): query 'query_result(topk(5, up))' has no equivalent "
        "(only label_values(...) is supported)",
        'panels[0] (row "Overview"): rows are flattened; the row\'s panels are kept',
        'panels[1].targets[1] (refId "B"): PromQL has no equivalent in the trm-otel query language: '
        "histogram_quantile(0.99, sum by (le) (rate(traces_span_metrics_duration_milliseconds_bucket"
        '{service_name=~"$service"}[$__rate_interval])))',
        'panels[3] ("Error rate"): transformations are not supported',
        'panels[4] (type "news"): panel type has no equivalent',
        'panels[5] (type "text"): panel type has no equivalent',
        'panels[6] (row "Logs"): rows are flattened; the row\'s panels are kept',
        'panels[6].panels[0] (type "logs"): panel type has no equivalent',
        'panels[6].panels[1].targets[0] (refId "A"): loki query; only Prometheus-style metric queries are imported',
        'panels[7] (row "Details"): rows are flattened; the row\'s panels are kept',
        'panels[7].panels[1] (type "gauge"): drawn as stat',
        "panels[9]: library panel; export the dashboard from Grafana with library panels inlined",
        'panels[10].targets[1] (refId "B"): hidden query not imported',
        'annotations.list[1] ("Deploys"): annotations are not supported',
        "links: 1 dashboard link(s) not supported",
    ]


def test_realistic_import_maps_the_rest() -> None:
    d, _ = realistic()
    assert validate_dashboard(d) is d
    assert (d.uid, d.title, d.tags, d.theme, d.refresh, d.version) == (
        "services-overview", "Services", ("shop", "latency"), "dark", "1m", 12)  # fmt: skip
    assert (d.time.from_, d.time.to) == ("now-24h", "now")
    assert [(p.id, p.type, p.title) for p in d.panels] == [
        (2, "line", "Latency by service"),
        (3, "bar", "Calls per route"),
        (4, "stat", "Error rate"),
        (9, "line", "Errors: logs and spans"),  # from the collapsed row "Logs"
        (11, "heatmap", "Latency distribution"),  # from the collapsed row "Details"
        (12, "stat", "Apdex"),
        (1, "table", "Slowest routes"),  # its id 2 was taken: the first free one
        (14, "line", "Average latency"),  # legacy graph
    ]
    assert [p.grid for p in d.panels] == [
        Grid(x=0, y=0, w=6, h=8),
        Grid(x=6, y=0, w=4, h=8),  # 24-column x 12 w 7: edges 12..19 -> 6..10
        Grid(x=10, y=0, w=2, h=8),
        Grid(x=0, y=8, w=6, h=8),  # rows and dropped panels leave no gaps
        Grid(x=0, y=16, w=6, h=8),
        Grid(x=6, y=8, w=6, h=8),
        Grid(x=0, y=24, w=12, h=8),
        Grid(x=0, y=32, w=12, h=8),
    ]
    assert d.panels[0].targets == (
        Target(expr=f'p95({D}{{service.name=~"$service"}}[$window]) by (service.name)', legend="{{service.name}}"),
    )
    assert d.panels[0].options == {"unit": "ms", "min": 0}
    assert d.panels[2].options == {"unit": "percentunit", "decimals": 1}
    assert d.panels[3].targets == (Target(expr='rate(traces.span.metrics.calls{status.code="STATUS_CODE_ERROR"}[1m])', legend="spans"),)
    assert d.panels[4].targets[0].expr == f'{D}{{service.name=~"$service"}}'


def test_realistic_import_variables() -> None:
    d, _ = realistic()
    assert [dict(v.model_dump(exclude_none=True)) for v in d.variables] == [
        {"name": "service", "label": "Service", "multi": True, "include_all": True, "current": ("$__all",),
         "query": 'label_values(traces.span.metrics.calls{span.kind="SPAN_KIND_SERVER"}, service.name)'},
        {"name": "route", "multi": False, "include_all": False, "current": "GET /cart",
         "query": 'label_values(traces.span.metrics.calls{service.name=~"$service"}, span.name)'},
        {"name": "env", "values": ("prod", "staging"), "multi": False, "include_all": False, "current": "prod"},
        {"name": "window", "values": ("1m", "5m", "15m"), "multi": False, "include_all": False, "current": "5m"},
    ]  # fmt: skip


def test_import_of_a_pre_5_dashboard_with_rows() -> None:
    old = {
        "title": "Old style!",
        "rows": [
            {"title": "A", "height": "250px", "panels": [
                {"id": 1, "type": "graph", "span": 6, "targets": [{"expr": f"p95({D})"}]},
                {"id": 2, "type": "singlestat", "span": 6, "targets": [{"expr": f"count({D})"}]}]},
            {"title": "B", "height": 300, "showTitle": True, "panels": [{"id": 3, "type": "table", "span": 12}]},
        ],
    }  # fmt: skip
    d, unmapped = from_grafana(old)
    assert d.uid == "old-style"
    assert [(p.type, p.grid) for p in d.panels] == [
        ("line", Grid(x=0, y=0, w=6, h=9)),
        ("stat", Grid(x=6, y=0, w=6, h=9)),
        ("table", Grid(x=0, y=9, w=12, h=10)),
    ]
    assert unmapped == ['rows[1] (row "B"): rows are flattened; the row\'s panels are kept']


def test_overlapping_panels_are_moved_down() -> None:
    g = {"uid": "o", "title": "O", "panels": [
        {"id": 1, "type": "stat", "gridPos": {"x": 0, "y": 0, "w": 13, "h": 4}},
        {"id": 2, "type": "stat", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 4}},
        {"id": 3, "type": "stat", "gridPos": {"x": 1, "y": 2, "w": 2, "h": 2}},
    ]}  # fmt: skip
    d, unmapped = from_grafana(g)
    assert [p.grid for p in d.panels] == [
        Grid(x=0, y=0, w=7, h=4),
        Grid(x=6, y=4, w=6, h=4),
        Grid(x=1, y=4, w=1, h=2),
    ]
    assert unmapped == []


@pytest.mark.parametrize(
    ("field", "value", "note", "expected"),
    [
        ("uid", "a/b", "uid 'a/b': not 1 to 40 letters, digits, '-' or '_'; using 'my-dash'", "my-dash"),
        ("time", {"from": "now-1Q"}, "time.from ('now-1Q'): not a time trm-otel reads; using 'now-6h'", None),
        ("refresh", "soon", "refresh ('soon'): not a duration trm-otel reads; no automatic refresh", None),
        ("time", {"from": "now", "to": "now-1h"}, "time: from 'now' must be before to 'now-1h'; using the last 6 hours", None),
        ("templating", {"list": [{"name": "a", "type": "custom", "query": "x"}, {"name": "a", "type": "constant", "query": "y"}]},
         'templating.list[1] (constant variable "a"): a variable of this name comes earlier', None),
        ("templating", {"list": [{"name": "my-var", "type": "custom", "query": "x"}]},
         'templating.list[0] (custom variable "my-var"): name: must be a letter or \'_\' then letters, digits or \'_\' '
         "(not starting '__'), got 'my-var'", None),
    ],
)
def test_dashboard_fields_that_do_not_map(field: str, value: Any, note: str, expected: Any) -> None:
    d, unmapped = from_grafana({"uid": "ok", "title": "My dash", "panels": [], field: value})
    assert unmapped == [note]
    if expected is not None:
        assert d.uid == expected


def test_not_a_dashboard() -> None:
    with pytest.raises(DashboardError, match="^not a Grafana dashboard: expected an object with title and panels$"):
        from_grafana({"foo": 1})


def test_a_target_naming_a_variable_that_did_not_carry_over_is_listed() -> None:
    g = {"title": "T", "templating": {"list": [{"name": "f", "type": "adhoc"}]}, "panels": [
        {"id": 1, "type": "stat", "gridPos": {"x": 0, "y": 0, "w": 6, "h": 4},
         "targets": [{"refId": "A", "expr": f'p95({D}{{span.name="$f"}})'}]}]}  # fmt: skip
    d, unmapped = from_grafana(g)
    assert d.panels[0].targets == ()
    assert unmapped == [
        'templating.list[0] (adhoc variable "f"): variable type has no equivalent',
        f'panels[0].targets[0] (refId "A"): unknown variable $f (the dashboard has no variables): p95({D}{{span.name="$f"}})',
    ]
