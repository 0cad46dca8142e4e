"""Every API route, called by another tenant's admin: nothing of tenant A is seen or changed.

The route table is the daemon's own (built the way the daemon builds its
app), so a route added later is walked too; path parameters are filled
with tenant A's real objects (its silence, rule group, dashboard, alert).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

from .daemon_process import DaemonProcess
from .test_tenants_e2e import send

A, B = "tenant-a-admin-0123456789", "tenant-b-admin-0123456789"
SILENCE = {"matchers": [{"name": "service.name", "value": "svc-a", "isRegex": False}],
           "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "a", "comment": "a"}
GROUP = {"rules": [{"alert": "BusyA", "expr": "count(traces.span.metrics.duration[5m]) by (service.name) > 0"}]}
DASHBOARD = {"uid": "a-dash", "title": "A's dashboard", "schemaVersion": 2, "panels": [
    {"id": 1, "title": "p95", "type": "line", "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
     "targets": [{"expr": "p95(traces.span.metrics.duration[5m])", "legend": "p95"}]}]}


def routes() -> list[tuple[str, str]]:
    """``(method, path template)`` of every API route the daemon serves (UI pages and probes left out)."""
    from starlette.routing import Route

    from trm_otel.api import ApiContext, build_api_app
    from trm_otel.api.dashboards import dashboard_routes
    from trm_otel.processors.aggregation import LatencyAggregator
    from trm_otel.slo import SloPolicy
    from trm_otel.ui.routes import ui_routes
    from trm_otel.ui.stream import StreamHub

    context = ApiContext(aggregator=LatencyAggregator(), slo=SloPolicy(), ready=lambda: True, health=dict,
                         self_metrics=list, version="walk", alerting=lambda tenant: None, audit=object())
    found = []
    for route in [*build_api_app(context).routes, *dashboard_routes(object()), *ui_routes(StreamHub())]:
        assert isinstance(route, Route)
        if not (route.path.startswith("/api/") or route.path == "/metrics") or route.path == "/api/v1/stream":
            continue  # the event stream never ends: it has its own test below
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)))
    return sorted(set(found))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, dict[str, str]]]:
    tokens = [{"name": "a-admin", "token": A, "tenant": "tenant-a", "role": "admin"},
              {"name": "b-admin", "token": B, "tenant": "tenant-b", "role": "admin"}]
    with DaemonProcess(tmp_path_factory.mktemp("walk"), {"auth": {"tokens": tokens}}) as process:
        a = {"authorization": f"Bearer {A}"}
        send(OTLPSpanExporter(endpoint=process.grpc_endpoint, insecure=True, headers=a), "svc-a", 5)
        silence = httpx.post(f"{process.api_url}/api/v1/silences", json=SILENCE, headers=a).json()["silenceID"]
        httpx.put(f"{process.api_url}/api/v1/rules/a-rules", json=GROUP, headers=a).raise_for_status()
        httpx.post(f"{process.api_url}/api/v1/dashboards", json=DASHBOARD, headers=a).raise_for_status()
        deadline = time.monotonic() + 30
        alerts: list[dict[str, Any]] = []
        while not alerts and time.monotonic() < deadline:
            alerts = httpx.get(f"{process.api_url}/api/v1/alerts", headers=a).json()["alerts"]
            time.sleep(0.2)
        assert alerts, "tenant A's rule should fire on its own spans"
        objects = {"id": silence, "group": "a-rules", "uid": "a-dash", "fingerprint": alerts[0]["fingerprint"],
                   "name": "service.name"}
        yield process, objects


def test_the_route_table_is_walked_whole() -> None:
    walked = routes()
    assert ("GET", "/api/v1/dashboards/{uid}") in walked and ("POST", "/api/v1/silences") in walked
    assert len(walked) >= 25


@pytest.mark.parametrize(("method", "path"), routes())
def test_another_tenant_sees_and_changes_nothing(daemon: tuple[DaemonProcess, dict[str, str]], method: str,
                                                 path: str) -> None:
    process, objects = daemon
    url = process.api_url + path.format(**{**objects, "id": objects["id"]}).replace("{id}", objects["id"])
    url = re.sub(r"/panels/[^/]+/", "/panels/1/", url)
    b = {"authorization": f"Bearer {B}"}
    body: dict[str, Any] = {}
    if method in ("POST", "PUT"):
        body = {"json": DASHBOARD if "dashboards" in path else GROUP if "rules" in path else
                {"by": "b"} if "ack" in path else SILENCE}
    params = {"range": "1h"}
    if path == "/api/v1/label/{name}/values":  # Prometheus-shaped: no range, and tenant A's service as a selector
        params = {"match[]": '{service.name="svc-a"}'}
    answer = httpx.request(method, url, headers=b, timeout=30, params=params, **body)
    assert answer.status_code < 500, answer.text
    text = answer.text
    # whatever it answered, nothing of A is in it
    for secret in ("svc-a", objects["id"], objects["fingerprint"], "A's dashboard", "a-rules", "BusyA"):
        if secret in url or (method in ("POST", "PUT") and secret in str(body)):
            continue  # an answer may repeat what B itself sent ("no silence with id '...'")
        assert secret not in text, f"{method} {path} showed {secret!r} to tenant B: {text[:300]}"
    creates_own = method == "PUT" and path == "/api/v1/rules/{group}"  # create-or-replace in B's own tenant
    if path == "/api/v1/label/{name}/values":  # a label name is no object of A's: B reads its own (empty) values
        assert answer.status_code == 200 and answer.json() == {"status": "success", "data": []}, text[:300]
    elif "{" in path and method != "POST" and not creates_own:
        assert answer.status_code in (404, 400), f"{method} {path}: {answer.status_code} {text[:200]}"


def test_tenant_a_still_has_everything(daemon: tuple[DaemonProcess, dict[str, str]]) -> None:
    process, objects = daemon
    a = {"authorization": f"Bearer {A}"}
    silences = httpx.get(f"{process.api_url}/api/v1/silences", headers=a).json()
    assert [s["status"]["state"] for s in silences if s["id"] == objects["id"]] == ["active"]
    assert httpx.get(f"{process.api_url}/api/v1/dashboards/a-dash", headers=a).json()["title"] == "A's dashboard"
    groups = httpx.get(f"{process.api_url}/api/v1/rules", headers=a).json()["groups"]
    assert [(g["name"], [r["name"] for r in g["rules"]]) for g in groups] == [("a-rules", ["BusyA"])]
    services = httpx.get(f"{process.api_url}/api/v1/label/service.name/values", headers=a).json()["data"]
    assert "svc-a" in services


def test_the_event_stream_carries_only_the_callers_tenant(daemon: tuple[DaemonProcess, dict[str, str]]) -> None:
    process, objects = daemon
    seen = []
    with httpx.stream("GET", f"{process.api_url}/api/v1/stream", headers={"authorization": f"Bearer {B}"},
                      timeout=30) as answer:
        assert answer.status_code == 200
        deadline = time.monotonic() + 12  # at least one views event (1 s windows)
        for line in answer.iter_lines():
            seen.append(line)
            if line.startswith("event:") or time.monotonic() > deadline:
                if any(x.startswith("data:") for x in seen) or time.monotonic() > deadline:
                    break
    text = "\n".join(seen)
    assert "svc-a" not in text and objects["fingerprint"] not in text
