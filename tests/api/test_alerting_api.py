"""The alerting endpoints over the real app, service and SQLite: shapes, errors and edits."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from trm_otel.alerting.config import AlertingConfig
from trm_otel.alerting.service import AlertingService
from trm_otel.api import ApiContext, build_api_app
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.query import MemorySource

from .test_app import NOW, POLICY, fed_aggregator

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

RULES = """\
groups:
  - name: shop
    rules:
      - alert: Busy
        expr: count(traces.span.metrics.duration[1m]) by (service.name) > 0
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.service.name }}: {{ $value }} spans"}
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, AlertingService]]:
    (tmp_path / "rules.yaml").write_text(RULES)
    aggregator = fed_aggregator()
    scalars = ScalarSeriesStore(window_s=10, history_s=3600, clock=lambda: NOW)
    config = AlertingConfig.model_validate({"rule_files": [str(tmp_path / "rules.yaml")]})
    service = AlertingService(config, data_dir=tmp_path, source=MemorySource(aggregator, scalars), slo=POLICY,
                              scalars=scalars, clock=lambda: NOW)
    service.evaluate_due(NOW)
    app = build_api_app(ApiContext(aggregator, POLICY, ready=lambda: True, health=lambda: {}, self_metrics=lambda: [],
                                   version="t", query_source=MemorySource(aggregator, scalars),
                                   alerting=lambda tenant: service))
    with TestClient(app) as client:
        yield client, service


def test_rules_and_alerts(setup: tuple[TestClient, AlertingService]) -> None:
    client, _ = setup
    (group,) = client.get("/api/v1/rules").json()["groups"]
    (rule,) = group["rules"]
    assert rule["name"] == "Busy" and rule["state"] == "firing" and rule["health"] == "ok"
    alerts = client.get("/api/v1/alerts").json()["alerts"]
    assert sorted(a["labels"]["service.name"] for a in alerts) == ["checkout", "search"]
    checkout = next(a for a in alerts if a["labels"]["service.name"] == "checkout")
    assert checkout["state"] == "firing" and checkout["annotations"]["summary"] == "checkout: 300 spans"
    assert client.get("/api/v1/alerts?state=pending").json()["alerts"] == []
    assert client.get("/api/v1/alerts?state=nope").status_code == 400


def test_alerts_series_counts_firing_alerts(setup: tuple[TestClient, AlertingService]) -> None:
    client, _ = setup
    answer = client.get("/api/v1/query", params={"q": 'last(ALERTS{alertstate="firing"}[1m]) by (alertname)',
                                                 "time": NOW + 1}).json()
    (series,) = answer["data"]["result"]
    assert series["metric"] == {"alertname": "Busy"} and float(series["value"][1]) == 2.0


def test_ack(setup: tuple[TestClient, AlertingService]) -> None:
    client, service = setup
    fingerprint = client.get("/api/v1/alerts").json()["alerts"][0]["fingerprint"]
    answer = client.post(f"/api/v1/alerts/{fingerprint}/ack", json={"by": "alice", "comment": "on it",
                                                                   "duration": "30m"})
    assert answer.status_code == 200, answer.text
    acked = next(a for a in client.get("/api/v1/alerts").json()["alerts"] if a["fingerprint"] == fingerprint)
    assert acked["ackedBy"]["by"] == "alice" and acked["ackedBy"]["comment"] == "on it"
    assert client.post("/api/v1/alerts/0000/ack", json={"by": "a"}).status_code == 404
    assert client.post(f"/api/v1/alerts/{fingerprint}/ack", json={"comment": "x"}).json()["error"].startswith("by:")
    bad = client.post(f"/api/v1/alerts/{fingerprint}/ack", json={"by": "a", "expiresAt": "tomorrow"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("expiresAt: not an RFC 3339 time")
    assert client.post(f"/api/v1/alerts/{fingerprint}/ack", content=b"{", headers={
        "content-type": "application/json"}).status_code == 400
    assert client.post(f"/api/v1/alerts/{fingerprint}/ack", content=b"x", headers={
        "content-type": "text/plain"}).status_code == 415


def test_silences_crud_in_alertmanager_shape(setup: tuple[TestClient, AlertingService]) -> None:
    client, _ = setup
    body = {"matchers": [{"name": "service.name", "value": "search", "isRegex": False}],
            "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "bob",
            "comment": "deploy"}
    silence_id = client.post("/api/v1/silences", json=body).json()["silenceID"]
    (listed,) = client.get("/api/v1/silences").json()
    assert listed["id"] == silence_id and listed["status"] == {"state": "active"}
    assert listed["matchers"] == [{"name": "service.name", "value": "search", "isRegex": False, "isEqual": True}]
    search = next(a for a in client.get("/api/v1/alerts").json()["alerts"]
                  if a["labels"]["service.name"] == "search")
    assert search["state"] == "suppressed" and search["silencedBy"] == [silence_id]
    assert client.delete(f"/api/v1/silences/{silence_id}").status_code == 200
    assert client.get(f"/api/v1/silences/{silence_id}").json()["status"] == {"state": "expired"}
    assert client.delete("/api/v1/silences/nope").status_code == 404
    bad = client.post("/api/v1/silences", json={**body, "matchers": [{"name": "a", "value": ".*", "isRegex": True}]})
    assert bad.status_code == 400 and bad.json()["problems"][0]["path"] == "matchers"
    typo = client.post("/api/v1/silences", json={**body, "endAt": "x"})
    assert typo.status_code == 400 and "did you mean 'endsAt'" in typo.json()["error"]


def test_rule_groups_through_the_api(setup: tuple[TestClient, AlertingService]) -> None:
    client, _ = setup
    group = {"rules": [{"alert": "Slow", "expr": "p95(traces.span.metrics.duration[5m]) > 100", "for": "1m"}]}
    assert client.put("/api/v1/rules/api-made", json=group).status_code == 200
    names = [g["name"] for g in client.get("/api/v1/rules").json()["groups"]]
    assert names == ["shop", "api-made"]
    bad = client.put("/api/v1/rules/api-made", json={"rules": [{"alert": "Slow", "expr": "p95(x) >", "for": "1m"}]})
    assert bad.status_code == 400
    assert bad.json()["problems"][0]["path"] == "request: rules[0].expr"
    assert client.get("/api/v1/rules").json()["groups"][1]["rules"][0]["query"].endswith("> 100")
    assert client.put("/api/v1/rules/shop", json=group).status_code == 400  # a file's group
    assert client.delete("/api/v1/rules/shop").status_code == 409
    assert client.delete("/api/v1/rules/api-made").status_code == 200
    assert client.delete("/api/v1/rules/api-made").status_code == 404
    assert client.post("/api/v1/rules/reload").json() == {"groups": 1}


def test_notifications_log_is_listed(setup: tuple[TestClient, AlertingService]) -> None:
    client, _ = setup
    assert client.get("/api/v1/notifications").json() == {"notifications": []}
    assert np.isfinite(NOW)


@pytest.mark.parametrize("method, path", [
    ("PUT", "/api/v1/rules/api-made"), ("DELETE", "/api/v1/rules/api-made"), ("POST", "/api/v1/rules/reload"),
    ("POST", "/api/v1/alerts/0000/ack"), ("POST", "/api/v1/silences"), ("GET", "/api/v1/silences/x"),
    ("DELETE", "/api/v1/silences/x"),
])
def test_changes_refuse_query_parameters_and_change_nothing(
    setup: tuple[TestClient, AlertingService], method: str, path: str
) -> None:
    """``?dry_run=1`` (or any typo) must not pass for accepted: the change is refused before it is made."""
    client, _ = setup
    group = {"rules": [{"alert": "Slow", "expr": "p95(traces.span.metrics.duration[5m]) > 100"}]}
    answer = client.request(method, path, params={"dry_run": "1"}, json=group)
    assert answer.status_code == 400 and answer.json()["error"].startswith("unknown parameter 'dry_run'")
    assert [g["name"] for g in client.get("/api/v1/rules").json()["groups"]] == ["shop"]
    assert client.get("/api/v1/silences").json() == []
