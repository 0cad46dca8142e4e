"""The dashboard service: defaults per tenant, provisioning from files with located errors, documents in and out."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from trm_otel.dashboards import DashboardError, dump_dashboard, to_grafana
from trm_otel.dashboards.defaults import performance, system_overview
from trm_otel.dashboards.service import (
    DashboardsConfig,
    Provisioned,
    is_grafana,
    is_provisioned,
    known_tenants,
    read_document,
)
from trm_otel.dashboards.store import DashboardExists, DashboardNotFound, VersionConflict

from .data import NOW, every_type, make_service

TESTDATA = Path(__file__).parent / "testdata"


def write(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


# ------------------------------------------------------------------ defaults


def test_a_tenant_gets_the_defaults_on_its_first_listing(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    assert [s.uid for s in service.list("shop")] == ["performance", "system-overview"]
    service.delete("shop", "performance")
    assert [s.uid for s in service.list("shop")] == ["system-overview"]
    assert make_service(tmp_path).ensure_defaults("shop") == []  # after a restart too
    assert make_service(tmp_path).ensure_defaults("new") == ["system-overview", "performance"]
    assert known_tenants(service.store, ["ops"]) == ["default", "new", "ops", "shop"]


# ------------------------------------------------------------------ provisioning


def test_provisioning_native_and_grafana_files_from_a_directory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "dashboards"
    write(folder / "a-native.json", every_type())
    grafana = json.loads((TESTDATA / "grafana_services.json").read_text())
    write(folder / "nested" / "b-grafana.json", grafana)
    (folder / "notes.txt").write_text("not a dashboard")
    service = make_service(tmp_path)
    with caplog.at_level(logging.WARNING, "trm_otel.dashboards"):
        done = service.provision(["dashboards"], base_dir=tmp_path)
    imported, unmapped = read_document(grafana)[:2]
    assert done == [
        Provisioned(str(folder / "a-native.json"), "every-type", 1, True),
        Provisioned(str(folder / "nested" / "b-grafana.json"), imported.uid, 1, True, tuple(unmapped)),
    ]
    stored = service.get("default", "every-type")
    assert is_provisioned(stored.summary) and stored.summary.updated_by == f"provisioning:{folder / 'a-native.json'}"
    assert service.get("default", imported.uid).dashboard.title == imported.title
    assert len([r for r in caplog.records if "not carried over" in r.message]) == len(unmapped)


def test_provisioning_again_changes_only_what_changed(tmp_path: Path) -> None:
    file = write(tmp_path / "shop.json", every_type())
    service = make_service(tmp_path)
    assert service.provision([str(file)])[0].version == 1
    assert service.provision([str(file)])[0] == Provisioned(str(file), "every-type", 1, False)
    doc = every_type()
    doc["title"] = "Renamed"
    write(file, doc)
    assert service.provision([str(file)])[0] == Provisioned(str(file), "every-type", 2, True)


def test_provisioning_replaces_an_edited_dashboard_of_the_same_uid(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    service.ensure_defaults("default")
    edited = dump_dashboard(performance()) | {"title": "Edited in the UI", "version": 1}
    assert service.update("default", "performance", edited, by="alice") == 2
    file = write(tmp_path / "perf.json", dump_dashboard(performance()))
    (done,) = service.provision([str(file)])
    assert done.version == 3 and service.get("default", "performance").dashboard.title == "Performance"


def test_provisioning_errors_name_the_file_and_the_key_path_and_write_nothing(tmp_path: Path) -> None:
    overlapping = every_type()
    overlapping["panels"][1]["grid"] = {"x": 0, "y": 0, "w": 6, "h": 8}
    overlapping["panels"][2]["type"] = "gauge"
    duplicate = every_type() | {"title": "Same uid"}
    grafana = to_grafana(system_overview())
    grafana["panels"][0]["gridPos"] = "left"
    files = [
        write(tmp_path / "d" / "1-good.json", dump_dashboard(performance())),
        write(tmp_path / "d" / "2-bad.json", overlapping),
        write(tmp_path / "d" / "3-broken.json", '{"uid": "x",'),
        write(tmp_path / "d" / "4-dup.json", every_type()),
        write(tmp_path / "d" / "5-dup.json", duplicate),
    ]
    service = make_service(tmp_path)
    with pytest.raises(DashboardError) as caught:
        service.provision([str(tmp_path / "d"), "missing.json"], base_dir=tmp_path)
    bad, broken, dup = (str(f) for f in files[1:4])
    problems = caught.value.problems
    assert (f"{bad}: panels[2].type", "unknown panel type 'gauge' (expected one of line, bar, pie, scatter, "
            "heatmap, stat, table)") in problems
    assert problems[0][0] == f"{bad}: panels[2].type"
    assert (broken, "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 13 (char 12)") in problems
    assert (f"{files[4]}: uid", f"'every-type' is also the uid of {dup}") in problems
    assert ("dashboards.provision[1]", f"no such file or directory: {tmp_path / 'missing.json'}") in problems
    assert str(caught.value).startswith(f"{bad}: panels[2].type: unknown panel type 'gauge'")
    assert service.store.list("default") == []  # nothing written


def test_an_overlap_is_located_in_the_file(tmp_path: Path) -> None:
    doc = every_type()
    doc["panels"][1]["grid"] = {"x": 0, "y": 0, "w": 6, "h": 8}
    file = write(tmp_path / "shop.json", doc)
    with pytest.raises(DashboardError) as caught:
        make_service(tmp_path).provision([str(file)])
    assert caught.value.problems == [(f"{file}: panels[1].grid", "overlaps panels[0]")]


def test_config_section() -> None:
    assert DashboardsConfig.model_validate({"provision": ["dashboards/"]}).provision == ("dashboards/",)
    assert DashboardsConfig.model_validate(None).provision == ()
    with pytest.raises(ValueError, match="provison"):
        DashboardsConfig.model_validate({"provison": ["x"]})
    with pytest.raises(ValueError, match="provision"):
        DashboardsConfig.model_validate({"provision": "dashboards/"})


# ------------------------------------------------------------------ documents


def test_create_update_conflict_and_delete(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    doc = every_type()
    del doc["uid"]
    uid, version = service.create("shop", doc, by="alice")
    assert version == 1 and len(uid) == 12 and service.get("shop", uid).dashboard.title == "Every type"
    edit = service.export("shop", uid)
    assert edit["version"] == 1
    assert service.update("shop", uid, edit | {"title": "Mine"}, by="alice") == 2
    with pytest.raises(VersionConflict):
        service.update("shop", uid, edit | {"title": "Theirs"}, by="bob")
    with pytest.raises(DashboardError) as caught:
        service.update("shop", uid, {k: v for k, v in edit.items() if k != "version"}, by="bob")
    assert caught.value.problems[0][0] == "version"
    with pytest.raises(DashboardError, match="uid: 'other' differs from the dashboard in the path"):
        service.update("shop", uid, edit | {"uid": "other"}, by="bob")
    service.delete("shop", uid)
    with pytest.raises(DashboardNotFound):
        service.delete("shop", uid)


def test_import_detects_grafana_and_refuses_a_taken_uid_unless_overwriting(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    grafana = to_grafana(performance())
    assert service.import_dashboard("shop", grafana, by="alice") == ("performance", 1, [])
    with pytest.raises(DashboardExists):
        service.import_dashboard("shop", dump_dashboard(performance()), by="alice")
    assert service.import_dashboard("shop", dump_dashboard(performance()), by="bob", overwrite=True)[1] == 2
    assert service.export("shop", "performance", "grafana")["uid"] == "performance"


@pytest.mark.parametrize(
    ("doc", "grafana"),
    [
        (to_grafana(performance()), True),
        ({"dashboard": {"title": "x"}, "meta": {}}, True),
        ({"title": "x", "schemaVersion": 39}, True),
        ({"title": "x", "panels": [{"id": 1, "type": "timeseries", "targets": [{"refId": "A", "expr": "up"}]}]}, True),
        (dump_dashboard(performance()), False),
        ({"uid": "old", "title": "Old", "panels": [{"id": 1, "type": "line", "query": "p95(x)",
                                                    "gridPos": {"x": 0, "y": 0, "w": 24, "h": 8}}]}, False),
        ({"title": "x", "schemaVersion": 3}, False),  # a newer native schema: refused as such on load
        ([], False),
    ],
)
def test_grafana_detection(doc: Any, grafana: bool) -> None:
    assert is_grafana(doc) is grafana


def test_panel_data_through_the_service(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    service.create("default", every_type(), by="alice")
    out = service.panel_data("default", "every-type", 4, range_="1h")
    assert (out["start"], out["end"], out["step"]) == (NOW - 3600, NOW, 30.0)
    assert {s["name"] for s in service.panel_data("default", "every-type", 4)["series"]} == {"ErrorBurst", "HighLatency"}
    with pytest.raises(DashboardNotFound):
        service.panel_data("other", "every-type", 4)
