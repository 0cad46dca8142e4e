"""The dashboard store: versions, conflicts, tenants, defaults offered once, and documents read back migrated."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from trm_otel.dashboards import Dashboard, DashboardError, load_dashboard
from trm_otel.dashboards.defaults import default_dashboards, performance, system_overview
from trm_otel.dashboards.store import (
    DATABASE_NAME,
    DashboardExists,
    DashboardNotFound,
    DashboardStore,
    VersionConflict,
)


@pytest.fixture
def store(tmp_path: Path) -> DashboardStore:
    clock = iter(range(1000, 100000))
    return DashboardStore(tmp_path / DATABASE_NAME, clock=lambda: float(next(clock)))


def retitled(dashboard: Dashboard, title: str) -> Dashboard:
    return dashboard.model_copy(update={"title": title})


def test_create_get_list(store: DashboardStore) -> None:
    assert store.create("shop", performance(), by="alice") == 1
    stored = store.get("shop", "performance")
    assert stored.dashboard == performance().model_copy(update={"version": 1})
    assert (stored.summary.title, stored.summary.version, stored.summary.updated_by) == ("Performance", 1, "alice")
    assert stored.summary.tags == ("performance", "spanmetrics")
    store.create("shop", system_overview(), by="bob")
    assert [s.uid for s in store.list("shop")] == ["performance", "system-overview"]  # by title


def test_creating_a_taken_uid_is_refused_with_the_current_version(store: DashboardStore) -> None:
    store.create("shop", performance(), by="alice")
    store.update("shop", "performance", retitled(performance(), "P"), 1, by="alice")
    with pytest.raises(DashboardExists) as caught:
        store.create("shop", performance(), by="bob")
    assert caught.value.current_version == 2
    assert "already exists (version 2)" in str(caught.value)


def test_update_bumps_the_version_and_refuses_a_stale_one(store: DashboardStore) -> None:
    store.create("shop", performance(), by="alice")
    assert store.update("shop", "performance", retitled(performance(), "Mine"), 1, by="alice") == 2
    with pytest.raises(VersionConflict) as caught:
        store.update("shop", "performance", retitled(performance(), "Theirs"), 1, by="bob")
    assert (caught.value.expected_version, caught.value.current_version) == (1, 2)
    assert str(caught.value).startswith("dashboard 'performance' was changed since version 1 (now 2)")
    stored = store.get("shop", "performance")
    assert (stored.dashboard.title, stored.summary.version, stored.summary.updated_by) == ("Mine", 2, "alice")


def test_update_and_get_of_a_missing_uid(store: DashboardStore) -> None:
    with pytest.raises(DashboardNotFound, match="no dashboard with uid 'performance'"):
        store.update("shop", "performance", performance(), 0, by="alice")
    with pytest.raises(DashboardNotFound):
        store.get("shop", "performance")
    with pytest.raises(ValueError, match="uid: the document's uid 'performance' differs from 'other'"):
        store.update("shop", "other", performance(), 0, by="alice")


def test_tenants_are_apart(store: DashboardStore) -> None:
    store.create("a", performance(), by="alice")
    store.create("b", retitled(performance(), "B's"), by="bob")  # the same uid in another tenant
    store.update("b", "performance", retitled(performance(), "B's again"), 1, by="bob")
    assert store.get("a", "performance").summary.version == 1
    assert store.get("a", "performance").dashboard.title == "Performance"
    assert store.delete("a", "performance") is True
    assert store.delete("a", "performance") is False
    assert store.get("b", "performance").dashboard.title == "B's again"
    assert store.list("a") == [] and [s.uid for s in store.list("b")] == ["performance"]
    with pytest.raises(DashboardNotFound):
        store.get("c", "performance")
    assert store.tenants() == ["b"]


def test_concurrent_updates_from_one_version_let_exactly_one_win(store: DashboardStore) -> None:
    store.create("shop", performance(), by="alice")
    outcomes: list[object] = []

    def save(n: int) -> None:
        try:
            outcomes.append(store.update("shop", "performance", retitled(performance(), f"t{n}"), 1, by=f"u{n}"))
        except VersionConflict as err:
            outcomes.append(err)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(2) == 1
    assert sum(isinstance(o, VersionConflict) and o.current_version == 2 for o in outcomes) == 7


def test_put_overwrites_any_version_and_skips_an_identical_document(store: DashboardStore) -> None:
    assert store.put("default", performance(), by="provisioning:a.json") == (1, True)
    assert store.put("default", performance(), by="provisioning:a.json") == (1, False)
    assert store.put("default", retitled(performance(), "New"), by="provisioning:a.json") == (2, True)
    assert store.put("default", retitled(performance(), "New"), by="alice") == (3, True)  # another writer
    assert store.get("default", "performance").summary.updated_by == "alice"


def test_defaults_are_offered_once(store: DashboardStore) -> None:
    assert store.seed("shop", default_dashboards(), by="d") == ["system-overview", "performance"]
    assert store.seed("shop", default_dashboards(), by="d") == []
    store.delete("shop", "performance")
    assert store.seed("shop", default_dashboards(), by="d") == []  # a deleted default stays deleted
    assert [s.uid for s in store.list("shop")] == ["system-overview"]
    store.create("other", retitled(performance(), "Own"), by="alice")
    assert store.seed("other", default_dashboards(), by="d") == ["system-overview"]  # its own is kept
    assert store.get("other", "performance").dashboard.title == "Own"


def test_stored_bodies_carry_no_version_and_old_schemas_are_migrated(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_NAME
    store = DashboardStore(path)
    store.create("shop", performance(), by="alice")
    store.close()
    db = sqlite3.connect(path)
    (body,) = db.execute("SELECT body FROM dashboards").fetchone()
    assert "version" not in json.loads(body)
    v1 = {"schemaVersion": 1, "uid": "old", "title": "Old", "panels": [
        {"id": 1, "type": "line", "query": "p95(traces.span.metrics.duration)", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8}}]}
    db.execute("INSERT INTO dashboards VALUES ('shop', 'old', 'Old', '[]', ?, 4, 0, 'someone')", (json.dumps(v1),))
    db.commit()
    db.close()
    reopened = DashboardStore(path)
    old = reopened.get("shop", "old").dashboard
    assert old.version == 4 and old.panels[0].grid.x == 6 and old.panels[0].targets[0].expr.startswith("p95(")
    assert old == load_dashboard(v1).model_copy(update={"version": 4})


def test_a_corrupt_stored_document_is_a_dashboard_error(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_NAME
    DashboardStore(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO dashboards VALUES ('shop', 'bad', 'Bad', '[]', '{\"uid\": \"bad\"}', 1, 0, 'x')")
    db.commit()
    db.close()
    with pytest.raises(DashboardError, match="title"):
        DashboardStore(path).get("shop", "bad")
