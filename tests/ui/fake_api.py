"""A test double of the dashboards HTTP contract, to develop the UI without the daemon.

    >>> server = FakeApiServer().start()            # doctest: +SKIP
    >>> server.url                                   # doctest: +SKIP
    'http://127.0.0.1:41234'
    >>> server.add_service("ui-live")                # doctest: +SKIP  (new series + a views event)
    >>> server.stop()                                # doctest: +SKIP

With ``tokens`` the API needs a bearer token (the real auth middleware)
while the pages and assets stay public (:class:`PublicUi`). It serves the real UI routes (:func:`trm_otel.ui.ui_routes`) and the real
event stream (:class:`trm_otel.ui.StreamHub`, publishing ``views`` every
second like a daemon with 1 s windows), and answers the dashboards API from
an in-memory dict, validating documents with the real model code
(``load_dashboard``, ``from_grafana``, ``to_grafana``, the time-range
parser). Panel data is synthetic and deterministic: a function of the
series and the timestamp, so two fetches of one range agree. Only the
browser tests' ``fake`` variant uses it; the ``daemon`` variant runs the
same assertions against the real daemon.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import zlib
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trm_otel.api.auth import Authenticator, AuthMiddleware, TokenConfig
from trm_otel.dashboards import ALL, DashboardError, dump_dashboard, from_grafana, load_dashboard, to_grafana
from trm_otel.dashboards.defaults import default_dashboards
from trm_otel.dashboards.time_range import auto_step, resolve, resolve_range
from trm_otel.ui import StreamHub, ui_routes

__all__ = ["FakeApiServer", "PublicUi", "build_fake_app"]

_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_LEGEND = re.compile(r"\{\{\s*([A-Za-z0-9_.:/-]+)\s*\}\}")
_BUCKETS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]
_OTHER_LABELS = {"disk.io.direction": ["read", "write"], "network.io.direction": ["receive", "transmit"],
                 "system.filesystem.mountpoint": ["/", "/var"], "span.name": ["GET /", "POST /cart"]}


def _error(status: int, message: str, problems: list[tuple[str, str]] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": message, **extra}
    if problems is not None:
        body["problems"] = [{"path": p, "message": m} for p, m in problems]
    return JSONResponse(body, status_code=status)


class FakeState:
    """The dashboards by uid, the known services, and the hub."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub
        self.lock = threading.Lock()
        self.services = ["shop", "cart"]
        self.docs: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        for dashboard in default_dashboards():
            self._store(dump_dashboard(dashboard), "provisioning")

    def _store(self, doc: dict[str, Any], who: str) -> int:
        version = self.docs.get(doc["uid"], {}).get("version", 0) + 1
        doc = {**doc, "version": version}
        self.docs[doc["uid"]] = doc
        self.meta[doc["uid"]] = {"updatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "updatedBy": who}
        return version


class PublicUi:
    """Auth on the API but not on the UI's pages and assets (they hold no data): how the daemon should wire it."""

    def __init__(self, app: Any, authenticator: Authenticator) -> None:
        self.app = app
        self.guarded = AuthMiddleware(app, authenticator)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/" or path.startswith(("/d/", "/static/"))):
            await self.app(scope, receive, send)
        else:
            await self.guarded(scope, receive, send)


def build_fake_app(hub: StreamHub | None = None) -> tuple[Starlette, FakeState]:
    state = FakeState(hub or StreamHub(heartbeat_s=15.0))

    async def listing(request: Request) -> Response:
        items = [
            {"uid": uid, "title": d["title"], "tags": d.get("tags", []), "version": d["version"], **state.meta[uid]}
            for uid, d in sorted(state.docs.items(), key=lambda kv: kv[1]["title"].lower())
        ]
        return JSONResponse({"dashboards": items})

    async def create(request: Request) -> Response:
        body = await request.json()
        try:
            dashboard = load_dashboard({**body, "version": 0})
        except DashboardError as err:
            return _error(400, "invalid dashboard", err.problems)
        with state.lock:
            if dashboard.uid in state.docs:
                return _error(409, f"a dashboard {dashboard.uid!r} exists", currentVersion=state.docs[dashboard.uid]["version"])
            version = state._store(dump_dashboard(dashboard), "anonymous")
        return JSONResponse({"uid": dashboard.uid, "version": version}, status_code=201)

    async def one(request: Request) -> Response:
        uid = request.path_params["uid"]
        with state.lock:
            doc = state.docs.get(uid)
            if doc is None:
                return _error(404, f"no dashboard {uid!r}")
            if request.method == "GET":
                return JSONResponse(doc)
            if request.method == "DELETE":
                del state.docs[uid], state.meta[uid]
                return Response(status_code=204)
        body = await request.json()
        with state.lock:
            current = state.docs[uid]["version"]
            if body.get("version") != current:
                return _error(409, f"version {body.get('version')} is not the current {current}", currentVersion=current)
            try:
                dashboard = load_dashboard({**body, "uid": uid})
            except DashboardError as err:
                return _error(400, "invalid dashboard", err.problems)
            version = state._store(dump_dashboard(dashboard), "anonymous")
        return JSONResponse({"uid": uid, "version": version})

    async def export(request: Request) -> Response:
        uid = request.path_params["uid"]
        doc = state.docs.get(uid)
        if doc is None:
            return _error(404, f"no dashboard {uid!r}")
        fmt = request.query_params.get("format", "native")
        if fmt == "native":
            return JSONResponse(doc)
        if fmt == "grafana":
            return JSONResponse(to_grafana(load_dashboard(doc)))
        return _error(400, f"format: expected native or grafana, got {fmt!r}")

    async def import_(request: Request) -> Response:
        body = await request.json()
        try:
            if "dashboard" in body or any("gridPos" in p for p in body.get("panels", []) if isinstance(p, dict)):
                dashboard, unmapped = from_grafana(body)
            else:
                dashboard, unmapped = load_dashboard(body), []
        except DashboardError as err:
            return _error(400, "cannot import this document", err.problems)
        with state.lock:
            existing = state.docs.get(dashboard.uid)
            if existing is not None and request.query_params.get("overwrite") != "true":
                return _error(409, f"a dashboard {dashboard.uid!r} exists (import with ?overwrite=true to replace it)",
                              currentVersion=existing["version"])
            version = state._store(dump_dashboard(dashboard), "anonymous")
        return JSONResponse({"uid": dashboard.uid, "version": version, "unmapped": unmapped}, status_code=201)

    async def data(request: Request) -> Response:
        uid, pid = request.path_params["uid"], int(request.path_params["pid"])
        doc = state.docs.get(uid)
        panel = next((p for p in (doc or {}).get("panels", []) if p["id"] == pid), None)
        if panel is None:
            return _error(404, f"no panel {pid} in dashboard {uid!r}")
        q = request.query_params
        now = time.time()
        try:
            if q.get("from") or q.get("to"):
                start, end = resolve(q.get("from", "now-6h"), q.get("to", "now"), now)
            else:
                start, end = resolve_range(q.get("range", "6h"), now)
        except ValueError as err:
            name = "from" if q.get("from") else "range"
            return _error(400, f"{name}: {err}", [(name, str(err))])
        chosen = q.getlist("var-service")
        services = list(state.services) if not chosen or ALL in chosen else [s for s in state.services if s in chosen]
        return JSONResponse(_panel_data(uid, panel, start, end, services))

    async def services(request: Request) -> Response:
        return JSONResponse({"services": [{"name": s} for s in state.services], "range_s": 300})

    async def label_values(request: Request) -> Response:
        """Prometheus-shaped, like the daemon's: service names, or the other labels' synthetic values."""
        name = request.path_params["name"]
        with state.lock:
            found = list(state.services) if name == "service.name" else list(_OTHER_LABELS.get(name, []))
        return JSONResponse({"status": "success", "data": sorted(found)})

    async def add_service(request: Request) -> Response:
        name = (await request.json())["name"]
        with state.lock:
            if name not in state.services:
                state.services.append(name)
        return JSONResponse({"services": state.services})

    routes = [
        Route("/api/v1/dashboards", listing, methods=["GET"]),
        Route("/api/v1/dashboards", create, methods=["POST"]),
        Route("/api/v1/dashboards/import", import_, methods=["POST"]),
        Route("/api/v1/dashboards/{uid}", one, methods=["GET", "PUT", "DELETE"]),
        Route("/api/v1/dashboards/{uid}/export", export, methods=["GET"]),
        Route("/api/v1/dashboards/{uid}/panels/{pid:int}/data", data, methods=["GET"]),
        Route("/api/v1/services", services, methods=["GET"]),
        Route("/api/v1/label/{name}/values", label_values, methods=["GET"]),
        Route("/_fake/services", add_service, methods=["POST"]),
        *ui_routes(state.hub),
    ]
    return Starlette(routes=routes), state


# ---------------------------------------------------------------- synthetic data


def _seed(*parts: object) -> float:
    return (zlib.crc32("|".join(map(str, parts)).encode()) % 1000) / 1000.0


def _wave(seed: float, t: float) -> float:
    return 0.5 + 0.35 * math.sin(t / 900.0 + seed * 6.28) + 0.1 * math.sin(t / 97.0 + seed * 3.0)


def _series_labels(expr: str, services: list[str]) -> list[dict[str, str]]:
    found = _BY.search(expr)
    if not found:
        return [{}]
    if "ALERTS" in expr:
        return []  # nothing firing
    rows: list[dict[str, str]] = [{}]
    for label in (part.strip() for part in found.group(1).split(",") if part.strip()):
        values = services if label == "service.name" else _OTHER_LABELS.get(label, ["a", "b"])
        rows = [{**row, label: value} for row in rows for value in values]
    return rows


def _name(legend: str, labels: dict[str, str], expr: str) -> str:
    if legend:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), legend)
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or expr


def _scale(unit: str) -> float:
    return {"ms": 300.0, "percentunit": 1.0, "reqps": 50.0, "Bps": 2e6}.get(unit, 100.0)


def _panel_data(uid: str, panel: dict[str, Any], start: float, end: float, services: list[str]) -> dict[str, Any]:
    step = auto_step(start, end)
    unit = panel.get("options", {}).get("unit", "")
    answer: dict[str, Any] = {"uid": uid, "panel": panel["id"], "type": panel["type"], "title": panel.get("title", ""),
                              "start": start, "end": end, "step": step, "unit": unit, "series": []}
    times = [float(t) for t in range(int(math.ceil(start / step) * step), int(end) + 1, int(step))]
    if panel["type"] == "heatmap":
        seed = _seed(uid, panel["id"])
        answer["buckets"] = _BUCKETS
        answer["times"] = times
        answer["counts"] = [[int(40 * math.exp(-((i - 5 - _wave(seed, t)) ** 2) / 2)) for i in range(len(_BUCKETS))]
                            for t in times]
        return answer
    for index, target in enumerate(panel.get("targets", [])):
        for labels in _series_labels(target["expr"], services):
            seed = _seed(uid, panel["id"], index, sorted(labels.items()))
            series: dict[str, Any] = {"target": index, "name": _name(target.get("legend", ""), labels, target["expr"]),
                                      "labels": labels}
            if panel["type"] in ("line", "bar", "scatter"):
                series["times"] = times
                series["values"] = [round(_scale(unit) * _wave(seed, t) * (1 + index * 0.5), 4) for t in times]
            else:
                series["value"] = round(_scale(unit) * _wave(seed, end), 4)
            answer["series"].append(series)
    return answer


# ---------------------------------------------------------------- serving it


class FakeApiServer:
    """The fake app on 127.0.0.1:<free port> in a thread; ``views`` every ``views_every_s``."""

    def __init__(self, views_every_s: float = 1.0, tokens: Sequence[TokenConfig] = ()) -> None:
        self.hub = StreamHub(heartbeat_s=15.0)
        self.app, self.state = build_fake_app(self.hub)
        served: Any = PublicUi(self.app, Authenticator(tokens)) if tokens else self.app
        self.views_every_s = views_every_s
        self._server = uvicorn.Server(uvicorn.Config(served, host="127.0.0.1", port=0, log_level="warning",
                                                     lifespan="off", access_log=False))
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> FakeApiServer:
        async def serve() -> None:
            ticker = asyncio.create_task(self.hub.publish_views_forever(self.views_every_s))
            try:
                await self._server.serve()
            finally:
                ticker.cancel()

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True, name="fake-api")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake API server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def add_service(self, name: str) -> None:
        with self.state.lock:
            if name not in self.state.services:
                self.state.services.append(name)

    def stop(self) -> None:
        self.hub.close()  # open event streams would keep uvicorn's shutdown waiting
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
