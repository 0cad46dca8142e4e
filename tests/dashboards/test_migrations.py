"""Older documents load; newer ones are refused with a message saying what to do."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from trm_otel.dashboards import CURRENT_SCHEMA_VERSION, DashboardError, dump_dashboard, load_dashboard, migrate

V1: dict[str, Any] = {
    "schemaVersion": 1,
    "uid": "shop",
    "title": "Shop",
    "panels": [
        {"id": 1, "title": "P95", "type": "line", "query": "p95(traces.span.metrics.duration[5m])",
         "legend": "P95", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}},
        {"id": 2, "title": "Rate", "type": "line", "query": "rate(traces.span.metrics.calls[1m])",
         "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8}},
        {"id": 3, "title": "Odd", "type": "stat", "query": "", "gridPos": {"x": 5, "y": 8, "w": 3, "h": 2}},
    ],
}  # fmt: skip


def test_current_version_is_two() -> None:
    assert CURRENT_SCHEMA_VERSION == 2


def test_v1_queries_become_targets_and_the_grid_is_halved() -> None:
    out = migrate(V1)
    assert out["schemaVersion"] == 2
    assert [p["targets"] for p in out["panels"]] == [
        [{"expr": "p95(traces.span.metrics.duration[5m])", "legend": "P95"}],
        [{"expr": "rate(traces.span.metrics.calls[1m])", "legend": ""}],
        [],
    ]
    assert [p["grid"] for p in out["panels"]] == [
        {"x": 0, "y": 0, "w": 6, "h": 8},
        {"x": 6, "y": 0, "w": 6, "h": 8},
        {"x": 3, "y": 8, "w": 1, "h": 2},  # columns 5-8 of 24: edges rounded half up
    ]
    assert all("query" not in p and "gridPos" not in p and "legend" not in p for p in out["panels"])


def test_migrate_does_not_change_its_input() -> None:
    before = copy.deepcopy(V1)
    migrate(V1)
    assert V1 == before


def test_a_v1_document_loads() -> None:
    d = load_dashboard(V1)
    assert d.schema_version == 2 and d.panels[1].grid.x == 6
    assert dump_dashboard(d)["panels"][0]["targets"] == [{"expr": "p95(traces.span.metrics.duration[5m])", "legend": "P95"}]


def test_without_a_version_is_version_one_and_current_shapes_pass_through() -> None:
    old = {k: v for k, v in V1.items() if k != "schemaVersion"}
    assert load_dashboard(old) == load_dashboard(V1)
    current = dump_dashboard(load_dashboard(V1))
    del current["schemaVersion"]
    assert migrate(current) == {**current, "schemaVersion": 2}


def test_a_current_document_is_returned_equal() -> None:
    current = dump_dashboard(load_dashboard(V1))
    assert migrate(current) == current


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (3, "schemaVersion: 3 is newer than this trm-otel understands (2); upgrade trm-otel to load this dashboard"),
        (0, "schemaVersion: must be at least 1, got 0"),
        ("2", "schemaVersion: expected a whole number, got '2'"),
        (True, "schemaVersion: expected a whole number, got True"),
    ],
)
def test_bad_versions(version: Any, message: str) -> None:
    with pytest.raises(DashboardError) as caught:
        migrate({**V1, "schemaVersion": version})
    assert str(caught.value) == message


def test_a_v1_panel_with_both_shapes_is_left_for_the_validator() -> None:
    doc = copy.deepcopy(V1)
    doc["panels"][0]["targets"] = []
    with pytest.raises(DashboardError) as caught:
        load_dashboard(doc)
    assert caught.value.problems == [
        ("panels[0].query", "unknown key"),
        ("panels[0].legend", "unknown key"),
    ]
