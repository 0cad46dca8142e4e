"""The dashboard page in a real browser: drawing, time ranges, live updates, editing, offline, theme."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from .browser import UiServer, fetches, open_dashboard, panels, wait_until

GRAFANA_FILE = Path(__file__).parents[1] / "dashboards" / "testdata" / "grafana_services.json"


def copy_of(server: UiServer, uid: str, title: str) -> str:
    """A new dashboard with ``uid``'s panels, so a test may change it freely; its uid."""
    doc = server.api("GET", f"/api/v1/dashboards/{uid}").json()
    new_uid = f"ui-{uuid.uuid4().hex[:10]}"
    doc.update(uid=new_uid, title=title, version=0)
    created = server.api("POST", "/api/v1/dashboards", json=doc)
    assert created.status_code == 201, created.text
    return created.json()["uid"]


def data_requests(urls: list[str]) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(u).query) for u in urls if "/panels/" in u and u.split("?")[0].endswith("/data")]


def test_dashboard_draws_every_panel_with_data(ui_server: UiServer, page: Any) -> None:
    doc = ui_server.api("GET", "/api/v1/dashboards/performance").json()
    open_dashboard(page, ui_server, "performance", "range=5m")

    shown = panels(page)
    assert sorted(p["id"] for p in shown) == sorted(p["id"] for p in doc["panels"])
    assert [p for p in shown if p["state"] != "ready" or not p["svg"]] == []
    assert {p["id"]: p["title"] for p in shown} == {p["id"]: p["title"] for p in doc["panels"]}
    response_time = next(p for p in shown if p["id"] == 1)
    assert [t["name"] for t in response_time["traces"]] == ["P50", "P95", "P99", "exemplars"]
    assert all(t["points"] > 0 for t in response_time["traces"]), response_time
    assert page.title() == "Performance · trm-otel"


def test_list_page_links_to_every_dashboard(ui_server: UiServer, page: Any) -> None:
    page.goto(ui_server.url + "/")
    wait_until(page, "document.body.dataset.ready === '1'")
    titles = page.locator("#dash-rows a").all_inner_texts()
    assert {"Performance", "System Overview"} <= set(titles)
    page.get_by_role("link", name="Performance", exact=True).click()
    page.wait_for_url("**/d/performance")
    wait_until(page, "document.body.dataset.ready === '1'")

    open_dashboard(page, ui_server, "no-such-dashboard")
    assert 'There is no dashboard "no-such-dashboard"' in page.locator("#grid").inner_text()


def test_changing_the_time_range_refetches_every_panel(ui_server: UiServer, page: Any) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    open_dashboard(page, ui_server, "performance", "range=1h&refresh=off")
    ids = sorted(p["id"] for p in panels(page))
    assert all(q["range"] == ["1h"] for q in data_requests(urls))

    def sent_since(start: float) -> dict[int, list[dict[str, list[str]]]]:
        """Per panel, the query of each data request the page made since ``start`` (page clock, ms)."""
        made = page.evaluate("start => window.trmOtel.requests.filter(r => r.at >= start)", start)
        return {i: [parse_qs(urlsplit(r["url"]).query) for r in made if r["panel"] == i] for i in ids}

    before = fetches(page)
    start = page.evaluate("performance.now()")
    page.get_by_role("button", name="Last 24h").click()
    wait_until(page, "n => [...document.querySelectorAll('[data-panel-id]')].every(el => el.dataset.state === 'ready')"
                     " && window.trmOtel.requests.filter(r => r.url.includes('range=24h')).length >= n", arg=len(ids))
    after = fetches(page)
    assert all(after[i] > before[i] for i in ids), (before, after)
    made = sent_since(start)
    assert all(made[i] and made[i][-1]["range"] == ["24h"] for i in ids), made
    on_the_wire = data_requests(urls)
    assert sum(q.get("range") == ["24h"] for q in on_the_wire) >= len(ids)
    assert page.get_by_role("button", name="Last 24h").get_attribute("aria-pressed") == "true"
    assert "range=24h" in page.url

    start = page.evaluate("performance.now()")
    page.locator("#custom-range summary").click()
    page.get_by_label("From", exact=True).fill("now-2d")
    page.get_by_label("To", exact=True).fill("now")
    page.get_by_role("button", name="Apply").click()
    wait_until(page, "n => [...document.querySelectorAll('[data-panel-id]')].every(el => el.dataset.state === 'ready')"
                     " && window.trmOtel.requests.filter(r => r.url.includes('from=now-2d')).length >= n", arg=len(ids))
    made = sent_since(start)
    assert all(made[i] and made[i][-1]["from"] == ["now-2d"] and made[i][-1]["to"] == ["now"] for i in ids), made
    assert all("range" not in q for i in ids for q in made[i] if "from" in q)
    assert sum(q.get("from") == ["now-2d"] and q.get("to") == ["now"] for q in data_requests(urls)) >= len(ids)
    assert "from=now-2d" in page.url

    # A time the API would refuse is refused in the form, before any request.
    page.locator("#custom-range summary").click()
    page.get_by_label("From", exact=True).fill("yesterday")
    page.get_by_role("button", name="Apply").click()
    assert 'Not a time: "yesterday"' in page.locator("#range-form .form-error").inner_text()
    assert not any("yesterday" in u for u in urls)


def test_choosing_a_variable_value_refetches_with_it(ui_server: UiServer, page: Any) -> None:
    open_dashboard(page, ui_server, "performance", "range=5m&refresh=off")
    picker = page.locator("details[data-variable='service']")
    picker.locator("summary").click()
    wait_until(page, "() => !!document.querySelector(\"details[data-variable='service'] input[value='shop']\")")
    start = page.evaluate("performance.now()")
    picker.get_by_label("shop", exact=True).check()
    wait_until(page, "start => window.trmOtel.requests.filter(r => r.at >= start && r.url.includes('var-service=shop')).length >= 6"
                     " && [...document.querySelectorAll('[data-panel-id]')].every(el => el.dataset.state === 'ready')", arg=start)
    assert "var-service=shop" in page.url
    assert page.locator("details[data-variable='service'] summary").inner_text() == "Service: shop"
    throughput = page.evaluate("(document.querySelector('[data-panel-id=\"3\"] .chart').data || []).map(t => t.name)")
    assert throughput == ["shop"]

    # The choices come from the server's label values, not from what the panels returned: a service that
    # starts sending now shows in the list after a reload, though every panel still shows only shop.
    newcomer = f"new-{uuid.uuid4().hex[:6]}"
    ui_server.send_spans(newcomer)
    deadline = time.monotonic() + 20
    while newcomer not in ui_server.api("GET", "/api/v1/label/service.name/values").json()["data"]:
        assert time.monotonic() < deadline, f"{newcomer} never reached the daemon"
        time.sleep(0.2)
    page.route("**/api/v1/services*", lambda route: route.abort())  # the old fallback would list it too
    open_dashboard(page, ui_server, "performance", "range=5m&refresh=off&var-service=shop")
    returned = page.evaluate("() => [...document.querySelectorAll('[data-panel-id] .chart')]"
                             ".flatMap(c => (c.data || []).map(t => t.name))")
    assert newcomer not in returned and "shop" in returned
    picker.locator("summary").click()
    offered = wait_until(page, "name => { const boxes = [...document.querySelectorAll("
                               "\"details[data-variable='service'] input[type=checkbox]\")].map(b => b.value);"
                               " return boxes.includes(name) && boxes; }", arg=newcomer)
    assert {"shop", "cart", newcomer} <= set(offered)
    lookups = page.evaluate("window.trmOtel.lookups")
    assert lookups and all(x["ok"] for x in lookups), lookups
    assert lookups[-1]["url"] == "/api/v1/label/service.name/values"


def test_query_errors_show_inside_the_panels(ui_server: UiServer, page: Any) -> None:
    open_dashboard(page, ui_server, "performance", "from=now-2x&to=now&refresh=off")
    # live updates refetch every panel each window: look between two of them
    wait_until(page, "() => [...document.querySelectorAll('[data-panel-id]')]"
                     ".every(el => el.dataset.state === 'error')")
    shown = panels(page)
    assert shown and all(p["state"] == "error" for p in shown), shown
    assert all("now-2x" in p["error"] for p in shown), [p["error"] for p in shown]
    assert page.locator("[data-panel-id='1'] .panel-error").get_attribute("role") == "alert"


def test_a_live_update_shows_without_auto_refresh(ui_server: UiServer, page: Any) -> None:
    service = f"live-{uuid.uuid4().hex[:6]}"
    # step=1s: a new series shows at the next second rather than at the next multiple of the automatic 10 s.
    open_dashboard(page, ui_server, "performance", "range=5m&step=1s&refresh=off")
    wait_until(page, "() => document.querySelector('#live').dataset.live === 'live'")
    fetched_before = fetches(page)[3]
    sent_at = page.evaluate("performance.now()")

    ui_server.send_spans(service)
    throughput = "() => (document.querySelector('[data-panel-id=\"3\"] .chart').data || []).map(t => t.name)"
    names = wait_until(page, f"() => ({throughput})().includes({json.dumps(service)}) && ({throughput})()", timeout=20)
    assert service in names
    assert fetches(page)[3] > fetched_before
    requests = page.evaluate("window.trmOtel.requests")
    assert {r["reason"] for r in requests} <= {"initial", "views", "resync"}  # auto-refresh is off
    assert any(r["panel"] == 3 and r["reason"] == "views" and r["at"] >= sent_at for r in requests)
    assert all("step=1s" in r["url"] for r in requests)
    assert page.evaluate("window.trmOtel.events.views") >= 1


def test_auto_refresh_refetches_on_its_interval(ui_server: UiServer, page: Any) -> None:
    page.route("**/api/v1/stream", lambda route: route.abort())  # no live events: only the timer refetches
    open_dashboard(page, ui_server, "performance", "range=5m&refresh=2s")
    assert page.get_by_label("Refresh").input_value() == "2s"
    wait_until(page, "() => window.trmOtel.requests.filter(r => r.reason === 'refresh').length >= 6", timeout=10)
    assert page.evaluate("document.querySelector('#live').dataset.live") == "offline"
    page.get_by_label("Refresh").select_option("off")
    assert "refresh=off" in page.url
    made = page.evaluate("window.trmOtel.requests.length")
    page.wait_for_timeout(2500)
    assert page.evaluate("window.trmOtel.requests.length") == made


def test_an_edited_panel_persists_after_reload(ui_server: UiServer, page: Any) -> None:
    uid = copy_of(ui_server, "performance", "Edit me")
    version = ui_server.api("GET", f"/api/v1/dashboards/{uid}").json()["version"]
    open_dashboard(page, ui_server, uid, "refresh=off")

    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("button", name="Edit Response time").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Title").fill("Latency (edited)")
    dialog.get_by_label("Width (columns, 1-12)").fill("6")
    dialog.get_by_role("button", name="Apply").click()
    page.get_by_role("button", name="Move Slowest endpoints (P95, 15m) up").click()
    assert page.locator("#dirty").is_visible()
    page.get_by_role("button", name="Save").click()
    wait_until(page, "() => document.querySelector('#notice').textContent.includes('Saved')")

    stored = ui_server.api("GET", f"/api/v1/dashboards/{uid}").json()
    assert stored["version"] > version
    by_id = {p["id"]: p for p in stored["panels"]}
    assert by_id[1]["title"] == "Latency (edited)" and by_id[1]["grid"]["w"] == 6
    assert by_id[6]["grid"]["y"] < by_id[5]["grid"]["y"]  # the table moved above the heatmap

    page.reload()
    wait_until(page, "document.body.dataset.ready === '1'")
    assert page.locator("[data-panel-id='1'] h2").inner_text() == "Latency (edited)"
    assert all(p["state"] == "ready" for p in panels(page))


def test_a_new_panel_loads_once_saved(ui_server: UiServer, page: Any) -> None:
    uid = copy_of(ui_server, "performance", "Add to me")
    open_dashboard(page, ui_server, uid, "refresh=off&range=1h")
    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("button", name="Add panel").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Title").fill("Overall P95")
    dialog.get_by_label("Type").select_option("stat")
    dialog.get_by_label("Query 1", exact=True).fill("p95(traces.span.metrics.duration[5m])")
    dialog.get_by_label("Unit").fill("ms")
    dialog.get_by_role("button", name="Apply").click()
    new = page.locator("[data-panel-id='7']")
    assert "save the dashboard" in new.locator(".panel-note").inner_text()
    page.get_by_role("button", name="Save").click()
    wait_until(page, "() => document.querySelector('[data-panel-id=\"7\"] .main-svg') !== null")
    stored = ui_server.api("GET", f"/api/v1/dashboards/{uid}").json()
    added = next(p for p in stored["panels"] if p["id"] == 7)
    assert added["type"] == "stat" and added["targets"] == [{"expr": "p95(traces.span.metrics.duration[5m])", "legend": ""}]


def test_discarding_brings_back_the_saved_dashboard(ui_server: UiServer, page: Any) -> None:
    open_dashboard(page, ui_server, "performance", "range=5m&refresh=off")
    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("button", name="Remove Active alerts").click()
    page.get_by_role("button", name="Move Throughput right").click()
    assert page.locator("[data-panel-id='2']").count() == 0 and page.locator("#dirty").is_visible()
    page.get_by_role("button", name="Discard changes").click()
    wait_until(page, "() => document.querySelector('[data-panel-id=\"2\"]')?.dataset.state === 'ready'")
    assert not page.locator("#dirty").is_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('[data-panel-id=\"3\"]')).gridColumnStart") == "1"
    assert all(p["svg"] for p in panels(page))


def test_a_save_conflict_says_so_and_offers_a_reload(ui_server: UiServer, page: Any) -> None:
    uid = copy_of(ui_server, "performance", "Contested")
    open_dashboard(page, ui_server, uid, "refresh=off")
    theirs = ui_server.api("GET", f"/api/v1/dashboards/{uid}").json()
    theirs["title"] = "Changed elsewhere"
    assert ui_server.api("PUT", f"/api/v1/dashboards/{uid}", json=theirs).status_code == 200

    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("button", name="Remove Active alerts").click()
    page.get_by_role("button", name="Save").click()
    notice = page.locator("#notice")
    wait_until(page, "() => document.querySelector('#notice').textContent.includes('someone else')")
    assert notice.get_attribute("role") == "alert"
    notice.get_by_role("button", name="Reload the saved version (drops your changes)").click()
    wait_until(page, "document.body.dataset.ready === '1' && document.querySelector('#dash-title').textContent === 'Changed elsewhere'")
    assert page.locator("[data-panel-id='2']").count() == 1  # the removal was not saved


def test_export_and_import(ui_server: UiServer, page: Any) -> None:
    open_dashboard(page, ui_server, "performance", "refresh=off")
    page.locator("#share-menu summary").click()
    with page.expect_download() as native:
        page.get_by_role("button", name="Export native JSON").click()
    assert native.value.suggested_filename == "performance.json"
    assert json.loads(Path(native.value.path()).read_text())["uid"] == "performance"
    page.locator("#share-menu summary").click()
    with page.expect_download() as grafana:
        page.get_by_role("button", name="Export Grafana JSON").click()
    exported = json.loads(Path(grafana.value.path()).read_text())
    assert grafana.value.suggested_filename == "performance.grafana.json"
    assert "panels" in exported.get("dashboard", exported)

    page.set_input_files("#import-file", str(GRAFANA_FILE))
    wait_until(page, "() => document.querySelector('#notice').textContent.includes('Imported')")
    notice = page.locator("#notice")
    assert notice.get_by_role("link").inner_text() == "services-overview"
    unmapped = notice.locator("ul.unmapped li").all_inner_texts()
    assert any("adhoc variable" in item for item in unmapped), unmapped

    page.set_input_files("#import-file", str(GRAFANA_FILE))  # again: the uid is taken now
    wait_until(page, "() => document.querySelector('#notice').textContent.includes('same uid exists')")
    notice.get_by_role("button", name="Replace it").click()
    wait_until(page, "() => document.querySelector('#notice').textContent.includes('Imported services-overview')")

    page.goto(f"{ui_server.url}/d/services-overview?refresh=off")
    wait_until(page, "document.body.dataset.ready === '1'")
    assert page.locator("#dash-title").inner_text() == "Services"
    # $route is label_values(traces.span.metrics.calls{service.name=~"$service"}, span.name): looked up with
    # $service ("All") substituted, as the server substitutes it in the panels' queries
    routes = wait_until(page, "() => { const s = document.querySelector(\"[data-variable='route'] select\");"
                              " const v = s ? [...s.options].map(o => o.value) : [];"
                              " return v.includes('POST /cart') && v; }")
    assert {"GET /", "POST /cart"} <= set(routes)
    looked_up = {x["variable"]: x for x in page.evaluate("window.trmOtel.lookups")}
    assert looked_up["route"]["ok"], looked_up
    assert parse_qs(urlsplit(looked_up["route"]["url"]).query)["match[]"] == [
        'traces.span.metrics.calls{service.name=~".*"}']


def test_the_page_makes_no_request_to_any_other_host(ui_server: UiServer, page: Any) -> None:
    outside: list[str] = []
    requested: list[str] = []

    def only_the_daemon(route: Any) -> None:
        if urlsplit(route.request.url).netloc == ui_server.host:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_daemon)
    page.on("request", lambda request: requested.append(request.url))
    page.goto(ui_server.url + "/")
    wait_until(page, "document.body.dataset.ready === '1'")
    open_dashboard(page, ui_server, "performance", "range=6h")
    page.click("#theme-toggle")
    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("button", name="Edit Throughput").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    page.locator("[data-panel-id='1'] .chart").hover()
    wait_until(page, "() => (window.trmOtel.events.views || 0) >= 1")
    assert outside == []
    assert [u for u in requested if urlsplit(u).netloc != ui_server.host and not u.startswith(("data:", "blob:"))] == []
    assert page.evaluate("document.fonts.size") == 0  # system fonts only: no web font to fetch
    assert any(u.split("?")[0].endswith("/static/plotly.min.js") for u in requested)


def test_the_theme_toggle_changes_the_background_and_is_remembered(ui_server: UiServer, page: Any) -> None:
    open_dashboard(page, ui_server, "performance", "refresh=off")
    background = "getComputedStyle(document.body).backgroundColor"
    chart_font = "document.querySelector('[data-panel-id=\"1\"] .chart')._fullLayout.font.color"
    light, light_font = page.evaluate(background), page.evaluate(chart_font)
    toggle = page.get_by_role("button", name="Dark theme")
    assert toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    assert page.evaluate(background) != light
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    wait_until(page, f"{chart_font} !== {json.dumps(light_font)}")
    page.reload()
    wait_until(page, "document.body.dataset.ready === '1'")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.get_by_role("button", name="Dark theme").get_attribute("aria-pressed") == "true"


def test_hovering_one_time_chart_draws_a_crosshair_on_the_others(ui_server: UiServer, page: Any) -> None:
    open_dashboard(page, ui_server, "performance", "range=5m&refresh=off")
    box = page.locator("[data-panel-id='1'] .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    shapes = "id => (document.querySelector(`[data-panel-id=\"${id}\"] .chart`).layout.shapes || []).length"
    wait_until(page, f"() => [3, 4].every(id => ({shapes})(id) === 1)")
    at = page.evaluate("window.trmOtel.crosshair")
    assert page.evaluate("document.querySelector('[data-panel-id=\"3\"] .chart').layout.shapes[0].x0") == at
    page.mouse.move(5, 5)
    wait_until(page, f"() => [3, 4].every(id => ({shapes})(id) === 0)")


def test_the_alert_summary_shows_a_rule_firing_live(ui_server: UiServer, page: Any) -> None:
    if ui_server.kind != "daemon":
        pytest.skip("the fake API has no alerting")
    alerts_fetched: list[str] = []
    page.on("request", lambda request: alerts_fetched.append(request.url) if "/api/v1/alerts" in request.url else None)
    open_dashboard(page, ui_server, "performance", "range=5m&refresh=off")
    wait_until(page, "() => !document.querySelector('#alerts').hidden && !!window.trmOtel.alerts")
    wait_until(page, "() => document.querySelector('#live').dataset.live === 'live'")
    name = f"UiBusy{uuid.uuid4().hex[:6]}"
    group = {"interval": "1s", "rules": [{
        "alert": name, "expr": 'count(traces.span.metrics.duration{service.name="shop"}[1m]) > 0',
        "labels": {"team": "checkout"}}]}
    created = ui_server.api("PUT", f"/api/v1/rules/{name.lower()}", json=group)
    assert created.status_code == 200, created.text
    try:
        # refresh is off: only the event stream can bring it, within the 10 s a refresh would take
        shown = wait_until(page, "name => (window.trmOtel.alerts.alerts || []).find(a => a.alertname === name"
                                 " && a.state === 'firing')", timeout=10, arg=name)
        assert shown["labels"] == {"alertname": name, "team": "checkout"}
        assert page.locator("#alerts").get_attribute("data-state") == "firing"
        count = page.locator("#alerts-count").inner_text()
        summary = page.evaluate("window.trmOtel.alerts")
        assert summary["firing"] >= 1 and count == f"{summary['firing']} firing · {summary['pending']} pending"
        assert len(alerts_fetched) == 1  # the initial list; the rest came from the stream

        page.locator("#alerts summary").click()
        row = page.locator(f"#alert-rows tr:has(th:text-is('{name}'))")
        row.wait_for(state="visible")
        assert "team=checkout" in row.inner_text() and row.locator(".alert-state").inner_text() == "firing"
        assert row.locator("time").get_attribute("datetime") == shown["since"]
        assert page.get_by_role("group", name="Active alerts").is_visible()
        page.keyboard.press("Escape")
        assert not page.locator("#alert-rows").is_visible()
    finally:
        ui_server.api("DELETE", f"/api/v1/rules/{name.lower()}")
    # the rule is gone: its alert resolves, and the summary drops it
    wait_until(page, "name => !(window.trmOtel.alerts.alerts || []).some(a => a.alertname === name)",
               timeout=10, arg=name)


def test_exemplar_points_on_latency_charts_lead_to_their_trace(ui_server: UiServer, page: Any) -> None:
    """The Response time line and the latency heatmap draw the spans behind them; a click shows the trace id."""
    open_dashboard(page, ui_server, "performance", "range=5m&refresh=off")
    count = ("id => ((document.querySelector(`[data-panel-id=\"${id}\"] .chart`).data || [])"
             ".find(t => t.meta === 'exemplars') || {x: []}).x.length")
    assert wait_until(page, f"() => [1, 5].every(id => ({count})(id) > 0)")
    assert page.evaluate(f"({count})(3)") == 0  # throughput is in requests/s: no durations on its axis
    point = page.locator("[data-panel-id='1'] .scatterlayer .trace:last-child .point").first.bounding_box()
    plot = page.locator("[data-panel-id='1'] .nsewdrag").first.bounding_box()
    # Hovering is by time ("x" mode): at the point's time, every trace's nearest point is under the pointer.
    page.mouse.move(point["x"] + point["width"] / 2, plot["y"] + plot["height"] / 2)
    page.wait_for_timeout(100)
    page.mouse.down()
    page.mouse.up()
    shown = wait_until(page, "() => window.trmOtel.exemplar")
    assert len(shown["traceId"]) == 32 and len(shown["spanId"]) == 16 and shown["url"] == ""
    notice = page.locator("#notice")
    assert notice.is_visible() and shown["traceId"] in notice.inner_text()
