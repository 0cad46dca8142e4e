"""The dashboard routes over the real service, store and stores of data: shapes, errors, roles and tenants."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from trm_otel.api.auth import Authenticator, AuthMiddleware, TokenConfig
from trm_otel.api.dashboards import MAX_BODY_BYTES, dashboard_routes
from trm_otel.dashboards import dump_dashboard, to_grafana
from trm_otel.dashboards.defaults import performance
from trm_otel.dashboards.render import PNG_SIGNATURE
from trm_otel.dashboards.service import DashboardService

from ..dashboards.data import NOW, every_type, make_service, memory_source

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TESTDATA = Path(__file__).parents[1] / "dashboards" / "testdata"
BASE = "/api/v1/dashboards"


@pytest.fixture(scope="module")
def shared_source() -> Any:
    return memory_source()


@pytest.fixture
def service(tmp_path: Path, shared_source: Any) -> DashboardService:
    service = make_service(tmp_path, shared_source)
    service.create("default", every_type(), by="fixture")
    return service


@pytest.fixture
def api(service: DashboardService) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=dashboard_routes(service)), raise_server_exceptions=True) as client:
        yield client


def without_version(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "version"}


# ------------------------------------------------------------------ documents


def test_listing_gives_the_defaults_and_summaries(api: TestClient) -> None:
    answer = api.get(BASE)
    assert answer.status_code == 200
    listed = answer.json()["dashboards"]
    assert [d["uid"] for d in listed] == ["every-type", "performance", "system-overview"]
    assert listed[0] == {"uid": "every-type", "title": "Every type", "tags": [], "version": 1,
                         "updatedAt": "2027-01-15T08:00:00Z", "updatedBy": "fixture"}


def test_create_get_update_delete(api: TestClient) -> None:
    doc = without_version(every_type())
    del doc["uid"]
    created = api.post(BASE, json=doc)
    assert created.status_code == 201
    uid = created.json()["uid"]
    assert created.json() == {"uid": uid, "version": 1}
    got = api.get(f"{BASE}/{uid}").json()
    assert got["version"] == 1 and got["uid"] == uid and got["title"] == "Every type"
    saved = api.put(f"{BASE}/{uid}", json=got | {"title": "Renamed"})
    assert saved.status_code == 200 and saved.json() == {"uid": uid, "version": 2}
    stale = api.put(f"{BASE}/{uid}", json=got | {"title": "Lost update"})
    assert stale.status_code == 409
    assert stale.json() == {
        "error": f"dashboard {uid!r} was changed since version 1 (now 2): reload it, reapply your change and save again",
        "currentVersion": 2,
    }
    no_uid = without_version(got) | {"version": 2}
    del no_uid["uid"]
    assert api.put(f"{BASE}/{uid}", json=no_uid).json() == {"uid": uid, "version": 3}  # the path's uid
    assert api.delete(f"{BASE}/{uid}").json() == {"deleted": uid}
    assert api.delete(f"{BASE}/{uid}").status_code == 404
    assert api.get(f"{BASE}/{uid}").json() == {"error": f"no dashboard with uid {uid!r}"}


def overlapping() -> dict[str, Any]:
    doc = every_type()
    doc["uid"] = "overlap"
    doc["panels"][1]["grid"] = {"x": 0, "y": 0, "w": 6, "h": 8}
    return doc


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "expected"),
    [
        ("POST", BASE, overlapping(), 400,
         {"error": "panels[1].grid: overlaps panels[0]", "problems": [{"path": "panels[1].grid",
                                                                      "message": "overlaps panels[0]"}]}),
        ("POST", BASE, every_type(), 409,
         {"error": "a dashboard with uid 'every-type' already exists (version 1); change the uid, or update it "
                   "with PUT (import: ?overwrite=true)", "currentVersion": 1}),
        ("POST", BASE, [1, 2], 400,
         {"error": "a dashboard is a JSON object, got list", "problems": [{"path": "", "message":
                                                                          "a dashboard is a JSON object, got list"}]}),
        ("PUT", f"{BASE}/every-type", without_version(every_type()), 400,
         {"error": "version: required: the version this edit started from (GET returns it)",
          "problems": [{"path": "version", "message": "required: the version this edit started from (GET returns it)"}]}),
        ("PUT", f"{BASE}/every-type", every_type() | {"uid": "other", "version": 1}, 400,
         {"error": "uid: 'other' differs from the dashboard in the path ('every-type')",
          "problems": [{"path": "uid", "message": "'other' differs from the dashboard in the path ('every-type')"}]}),
        ("PUT", f"{BASE}/nope", every_type() | {"uid": "nope", "version": 1}, 404,
         {"error": "no dashboard with uid 'nope'"}),
        ("POST", f"{BASE}/import", {"panels": "x"}, 400, None),
        ("GET", f"{BASE}/every-type/export?format=yaml", None, 400,
         {"error": "format: expected native or grafana, got 'yaml'"}),
        ("GET", f"{BASE}?q=x", None, 400, {"error": "unknown parameter 'q' (this endpoint takes none)"}),
        ("GET", f"{BASE}/every-type/panels/99/data", None, 404,
         {"error": "dashboard 'every-type' has no panel with id 99"}),
        ("GET", f"{BASE}/nope/panels/1/data", None, 404, {"error": "no dashboard with uid 'nope'"}),
        ("GET", f"{BASE}/every-type/panels/1/data?range=soon", None, 400, None),
        ("GET", f"{BASE}/every-type/panels/1/data?range=1h&from=now-2h", None, 400,
         {"error": "range: give either range or from and to, not both"}),
        ("GET", f"{BASE}/every-type/panels/1/data?rnage=1h", None, 400,
         {"error": "unknown parameter 'rnage' (known: from, range, step, to)"}),
        ("GET", f"{BASE}/every-type/panels/1/data?var-region=eu", None, 400,
         {"error": "var-region: the dashboard has no variable 'region' (its variables: service)"}),
        ("GET", f"{BASE}/every-type/panels/1/render.png?width=50", None, 400,
         {"error": "width: must be from 100 to 4000, got 50"}),
        ("GET", f"{BASE}/every-type/panels/1/render.png?height=4001", None, 400,
         {"error": "height: must be from 100 to 4000, got 4001"}),
        ("GET", f"{BASE}/every-type/render.png?theme=blue", None, 400,
         {"error": "theme: expected light or dark, got 'blue'"}),
        ("GET", f"{BASE}/every-type/render.png?height=300", None, 400,
         {"error": "unknown parameter 'height' (known: from, range, theme, to, width)"}),
    ],
)
def test_errors(api: TestClient, method: str, path: str, body: Any, status: int, expected: Any) -> None:
    answer = api.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    if expected is not None:
        assert answer.json() == expected
    else:
        assert answer.json()["error"]


def test_body_limits(api: TestClient) -> None:
    assert api.post(BASE, content=b"uid: x", headers={"content-type": "text/yaml"}).status_code == 415
    assert api.post(BASE, content=b'{"uid": ', headers={"content-type": "application/json"}).json()["error"].startswith(
        "the body is not valid JSON")
    big = json.dumps(every_type() | {"tags": ["x" * 1000] * (MAX_BODY_BYTES // 1000)})
    answer = api.post(BASE, content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json() == {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"}


def test_a_query_error_names_the_target(api: TestClient) -> None:
    doc = api.get(f"{BASE}/every-type").json()
    doc["panels"][3]["targets"][0]["expr"] = 'count(ALERTS{alertstate="firing"}) by (alertname)'
    assert api.put(f"{BASE}/every-type", json=doc).status_code == 200
    answer = api.get(f"{BASE}/every-type/panels/4/data")
    message = "1:1: count does not apply to 'ALERTS', a gauge (use avg, min, max or last)"
    assert answer.status_code == 400
    assert answer.json() == {"error": f"panels[3].targets[0].expr: {message}",
                             "problems": [{"path": "panels[3].targets[0].expr", "message": message}]}
    png = api.get(f"{BASE}/every-type/render.png")  # the dashboard still renders, the panel shows the error
    assert png.status_code == 200 and png.content.startswith(PNG_SIGNATURE)


# ------------------------------------------------------------------ import / export


def test_export_and_import_round_trip(api: TestClient) -> None:
    native = api.get(f"{BASE}/every-type/export").json()
    assert native == api.get(f"{BASE}/every-type").json() and native["version"] == 1
    grafana = api.get(f"{BASE}/every-type/export?format=grafana").json()
    assert grafana["uid"] == "every-type" and grafana["panels"][0]["type"] == "timeseries"
    taken = api.post(f"{BASE}/import", json=grafana)
    assert taken.status_code == 409 and taken.json()["currentVersion"] == 1
    replaced = api.post(f"{BASE}/import?overwrite=true", json=grafana)
    assert replaced.status_code == 201 and replaced.json() == {"uid": "every-type", "version": 2, "unmapped": []}
    assert without_version(api.get(f"{BASE}/every-type").json()) == without_version(native)
    assert api.post(f"{BASE}/import?overwrite=maybe", json=grafana).json() == {
        "error": "overwrite: expected true or false, got 'maybe'"}


def test_importing_a_real_grafana_dashboard_lists_what_did_not_carry_over(api: TestClient) -> None:
    doc = json.loads((TESTDATA / "grafana_services.json").read_text())
    answer = api.post(f"{BASE}/import", json=doc)
    assert answer.status_code == 201
    body = answer.json()
    assert body["version"] == 1 and isinstance(body["unmapped"], list) and body["unmapped"]
    assert api.get(f"{BASE}/{body['uid']}").status_code == 200


def test_import_of_a_native_document(api: TestClient) -> None:
    doc = dump_dashboard(performance()) | {"uid": "perf-copy"}
    assert api.post(f"{BASE}/import", json=doc).json() == {"uid": "perf-copy", "version": 1, "unmapped": []}
    assert api.post(f"{BASE}/import", json=to_grafana(performance())).status_code == 201  # 'performance' is free


# ------------------------------------------------------------------ data and PNG


def test_panel_data(api: TestClient) -> None:
    answer = api.get(f"{BASE}/every-type/panels/1/data", params={"range": "1h", "step": "5m", "var-service": "shop"})
    assert answer.status_code == 200
    data = answer.json()
    assert (data["start"], data["end"], data["step"], data["unit"]) == (NOW - 3600, NOW, 300.0, "ms")
    assert [s["name"] for s in data["series"]] == ["GET /cart", "POST /pay"]
    assert len(data["series"][0]["times"]) == 13 and data["series"][0]["values"][0] is None
    several = api.get(f"{BASE}/every-type/panels/1/data?var-service=shop&var-service=cart&from=now-1h").json()
    assert len(several["series"]) == 3 and several["start"] == NOW - 3600
    heatmap = api.get(f"{BASE}/every-type/panels/7/data?range=1h").json()
    assert set(heatmap) >= {"buckets", "times", "counts"}


def test_pngs(api: TestClient) -> None:
    panel = api.get(f"{BASE}/every-type/panels/1/render.png?range=1h&theme=dark&width=400&height=200")
    assert panel.status_code == 200 and panel.headers["content-type"] == "image/png"
    assert panel.content.startswith(PNG_SIGNATURE)
    whole = api.get(f"{BASE}/every-type/render.png?range=1h&width=600&var-service=cart")
    assert whole.status_code == 200 and whole.content.startswith(PNG_SIGNATURE)


# ------------------------------------------------------------------ auth and tenants

TOKENS = {
    "alice": ("a" * 24, "tenant-a", "editor"),
    "bob": ("b" * 24, "tenant-b", "viewer"),
    "carol": ("c" * 24, "tenant-b", "editor"),
    "dave": ("d" * 24, "default", "editor"),
    "root": ("r" * 24, "default", "admin"),
}


@pytest.fixture
def secured(service: DashboardService) -> Iterator[dict[str, TestClient]]:
    tokens = [TokenConfig(token=t, tenant=tenant, role=role, name=name) for name, (t, tenant, role) in TOKENS.items()]
    app = AuthMiddleware(Starlette(routes=dashboard_routes(service)), Authenticator(tokens))
    with TestClient(app) as anonymous:
        clients = {"anonymous": anonymous}
        for name, (token, _, _) in TOKENS.items():
            clients[name] = TestClient(app, headers={"authorization": f"Bearer {token}"})
        yield clients


def test_tenants_never_see_each_other(secured: dict[str, TestClient]) -> None:
    alice, bob, carol = secured["alice"], secured["bob"], secured["carol"]
    doc = without_version(every_type()) | {"uid": "shared"}
    assert alice.post(BASE, json=doc).status_code == 201
    assert {d["uid"] for d in alice.get(BASE).json()["dashboards"]} == {"shared", "performance", "system-overview"}
    assert "shared" not in {d["uid"] for d in bob.get(BASE).json()["dashboards"]}
    assert bob.get(f"{BASE}/shared").status_code == 404
    assert bob.get(f"{BASE}/shared/panels/1/data").status_code == 404
    assert bob.get(f"{BASE}/shared/render.png").status_code == 404
    assert carol.put(f"{BASE}/shared", json=doc | {"version": 1}).status_code == 404
    assert carol.delete(f"{BASE}/shared").status_code == 404
    assert carol.post(BASE, json=doc | {"title": "Carol's"}).status_code == 201  # the same uid, her tenant
    assert alice.get(f"{BASE}/shared").json()["title"] == "Every type"
    assert bob.get(f"{BASE}/shared").json()["title"] == "Carol's"
    assert bob.get(f"{BASE}/every-type").status_code == 404  # the default tenant's


def test_data_of_another_tenant_is_not_read(secured: dict[str, TestClient]) -> None:
    alice = secured["alice"]
    alice.post(BASE, json=without_version(every_type()))
    answer = alice.get(f"{BASE}/every-type/panels/4/data").json()
    assert answer["series"] == []  # the stores hold the default tenant's data only
    assert secured["dave"].get(f"{BASE}/every-type/panels/4/data").json()["series"] != []


@pytest.mark.parametrize(
    ("who", "method", "path", "status"),
    [
        ("anonymous", "GET", BASE, 401),
        ("anonymous", "GET", f"{BASE}/every-type/render.png", 401),
        ("bob", "GET", BASE, 200),
        ("bob", "PUT", f"{BASE}/performance", 403),
        ("bob", "POST", BASE, 403),
        ("bob", "DELETE", f"{BASE}/performance", 403),
        ("bob", "POST", f"{BASE}/import", 403),
    ],
)
def test_roles(secured: dict[str, TestClient], who: str, method: str, path: str, status: int) -> None:
    answer = secured[who].request(method, path, json=without_version(every_type()))
    assert answer.status_code == status
    assert ("error" in answer.json()) is (status >= 400)


def test_only_admins_change_provisioned_dashboards(service: DashboardService, secured: dict[str, TestClient],
                                                   tmp_path: Path) -> None:
    file = tmp_path / "prov.json"
    file.write_text(json.dumps(dump_dashboard(performance()) | {"uid": "prov"}))
    service.provision([str(file)])
    doc = secured["dave"].get(f"{BASE}/prov").json()
    refused = secured["dave"].put(f"{BASE}/prov", json=doc | {"title": "Edited"})
    assert refused.status_code == 403
    assert refused.json() == {"error": f"dashboard 'prov' is provisioned from {file}: edit that file (an admin may "
                                       "change it here until the next start)"}
    assert secured["dave"].delete(f"{BASE}/prov").status_code == 403
    assert secured["dave"].post(f"{BASE}/import?overwrite=true", json=doc).status_code == 403
    assert secured["root"].put(f"{BASE}/prov", json=doc | {"title": "Edited"}).json() == {"uid": "prov", "version": 2}
    assert secured["dave"].delete(f"{BASE}/prov").status_code == 200  # no longer provisioned: an admin saved it
