"""Dashboards over HTTP: documents, import/export, panel data and PNG renders, per tenant.

    GET    /api/v1/dashboards                         {"dashboards": [{uid, title, tags, version, updatedAt, updatedBy}]}
    POST   /api/v1/dashboards                         native JSON (uid optional) -> 201 {"uid", "version"}
    POST   /api/v1/dashboards/import                  native or Grafana JSON, ?overwrite=true -> 201 {"uid", "version", "unmapped"}
    GET    /api/v1/dashboards/{uid}                   native JSON with "version"
    PUT    /api/v1/dashboards/{uid}                   native JSON with the "version" it was based on -> {"uid", "version"}
    DELETE /api/v1/dashboards/{uid}                   {"deleted": uid}
    GET    /api/v1/dashboards/{uid}/export            ?format=native|grafana
    GET    /api/v1/dashboards/{uid}/panels/{id}/data  ?range= | ?from=&to=, &step=, &var-NAME=value...
    GET    /api/v1/dashboards/{uid}/panels/{id}/render.png   same, plus &theme=light|dark&width=&height=
    GET    /api/v1/dashboards/{uid}/render.png        ?range= | ?from=&to=, &var-NAME=..., &theme=&width=

Everything is scoped to the caller's tenant (:func:`~trm_otel.api.auth.principal_of`):
another tenant's uid answers 404 like a uid nobody has. The auth
middleware already requires ``viewer`` to read and ``editor`` to write;
changing or deleting a *provisioned* dashboard also needs ``admin``,
because the next start would silently put the file's version back.

Errors are JSON: 400 ``{"error", "problems": [{"path", "message"}]}`` for
an invalid document (paths as in the document: ``panels[1].grid``) or a
target that cannot be answered (``panels[2].targets[0].expr``), 400
``{"error"}`` for a bad parameter (the message starts with its name), 404
for an unknown dashboard or panel, 409 ``{"error", "currentVersion"}``
when a save started from a stale version or a new uid is taken, 413 for a
body over :data:`MAX_BODY_BYTES`, 415 for a body that is not JSON. The
panel data answer is documented in :mod:`trm_otel.dashboards.panel_data`.

Handlers do their SQLite, query and drawing work on worker threads: data
on up to :data:`DATA_THREADS` at once, PNGs on up to :data:`RENDER_THREADS`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trm_otel.api.auth import principal_of
from trm_otel.api.params import BadParameter, Query
from trm_otel.api.responses import error_response, json_response
from trm_otel.dashboards.errors import DashboardError
from trm_otel.dashboards.panel_data import PanelParameterError, UnknownPanel
from trm_otel.dashboards.render import MAX_PX, MIN_PX, THEMES
from trm_otel.dashboards.service import DashboardService, is_provisioned, read_document
from trm_otel.dashboards.store import DashboardExists, DashboardNotFound, VersionConflict

__all__ = ["DATA_THREADS", "MAX_BODY_BYTES", "RENDER_THREADS", "dashboard_routes"]

#: Largest dashboard document these endpoints read (Grafana exports of big dashboards run to hundreds of KB).
MAX_BODY_BYTES = 4 << 20
#: Worker threads panel data may occupy at once.
DATA_THREADS = 4
#: Worker threads PNG renders may occupy at once (renders take a lock; more would only queue there).
RENDER_THREADS = 2

_T = TypeVar("_T")
_TIME_PARAMS = ("range", "from", "to")
_FORMATS = ("native", "grafana")
_Handler = Callable[[Request], Awaitable[Response]]


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", ""))
        self.status, self.body = status, body


def _guarded(handler: _Handler) -> _Handler:
    """One place that turns the service's errors into JSON answers."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _Refused as refused:
            return json_response(refused.body, refused.status)
        except (BadParameter, PanelParameterError) as err:
            return error_response(400, str(err))
        except DashboardError as err:
            problems = [{"path": path, "message": message} for path, message in err.problems]
            return json_response({"error": str(err), "problems": problems}, 400)
        except (DashboardNotFound, UnknownPanel) as err:
            return error_response(404, str(err))
        except (VersionConflict, DashboardExists) as err:
            return json_response({"error": str(err), "currentVersion": err.current_version}, 409)
        except HTTPException as err:  # require(): answer JSON whatever app this route sits in
            return error_response(err.status_code, str(err.detail))

    return guarded


async def _json_body(request: Request) -> Any:
    if "json" not in request.headers.get("content-type", "application/json"):
        raise _Refused(415, {"error": "the body must be JSON (Content-Type: application/json)"})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _Refused(413, {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"})
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise _Refused(400, {"error": f"the body is not valid JSON: {err}"}) from None


def _split(request: Request, allowed: tuple[str, ...]) -> tuple[Query, dict[str, list[str]]]:
    """The plain parameters (strictly checked) and the ``var-NAME`` ones (values in order, blanks dropped)."""
    plain, variables = [], {}
    for name, value in request.query_params.multi_items():
        if name.startswith("var-"):
            if not name[4:]:
                raise BadParameter("var-: name the variable, as in var-service=shop")
            values = variables.setdefault(name[4:], [])
            if value != "":
                values.append(value)
        else:
            plain.append((name, value))
    return Query.from_items(plain, allowed), variables


def _times(query: Query) -> dict[str, str | None]:
    return {"range_": query.text("range"), "from_": query.text("from"), "to": query.text("to")}


def _rfc3339(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Handlers:
    def __init__(self, service: DashboardService) -> None:
        self.service = service
        self._data = anyio.CapacityLimiter(DATA_THREADS)
        self._render = anyio.CapacityLimiter(RENDER_THREADS)
        self._documents = anyio.CapacityLimiter(DATA_THREADS)

    async def _run(self, limiter: anyio.CapacityLimiter, func: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        return await anyio.to_thread.run_sync(functools.partial(func, *args, **kw), limiter=limiter)

    async def _writable(self, request: Request, tenant: str, uid: str) -> None:
        """Admins only may change what provisioning wrote; a missing uid is left to the write to report."""
        try:
            stored = await self._run(self._documents, self.service.get, tenant, uid)
        except (DashboardNotFound, DashboardError):
            return
        if is_provisioned(stored.summary):
            principal = principal_of(request)
            if not principal.may("admin"):
                source = stored.summary.updated_by.split(":", 1)[1]
                raise _Refused(403, {"error": f"dashboard {uid!r} is provisioned from {source}: edit that file "
                                              f"(an admin may change it here until the next start)"})

    # ------------------------------------------------------------ documents

    async def list(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        tenant = principal_of(request).tenant
        found = await self._run(self._documents, self.service.list, tenant)
        return json_response({"dashboards": [
            {"uid": s.uid, "title": s.title, "tags": list(s.tags), "version": s.version,
             "updatedAt": _rfc3339(s.updated_at), "updatedBy": s.updated_by}
            for s in found
        ]})

    async def create(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        principal = principal_of(request)
        body = await _json_body(request)
        uid, version = await self._run(self._documents, self.service.create, principal.tenant, body, principal.name)
        return json_response({"uid": uid, "version": version}, 201)

    async def get(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        uid = request.path_params["uid"]
        doc = await self._run(self._documents, self.service.export, principal_of(request).tenant, uid, "native")
        return json_response(doc)

    async def put(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        principal, uid = principal_of(request), request.path_params["uid"]
        body = await _json_body(request)
        await self._writable(request, principal.tenant, uid)
        version = await self._run(self._documents, self.service.update, principal.tenant, uid, body, principal.name)
        return json_response({"uid": uid, "version": version})

    async def delete(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        principal, uid = principal_of(request), request.path_params["uid"]
        await self._writable(request, principal.tenant, uid)
        await self._run(self._documents, self.service.delete, principal.tenant, uid)
        return json_response({"deleted": uid})

    async def export(self, request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), ("format",))
        fmt = query.text("format") or "native"
        if fmt not in _FORMATS:
            raise BadParameter(f"format: expected native or grafana, got {fmt!r}")
        uid = request.path_params["uid"]
        doc = await self._run(self._documents, self.service.export, principal_of(request).tenant, uid, fmt)
        return json_response(doc)

    async def import_(self, request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), ("overwrite",))
        overwrite = query.text("overwrite") or "false"
        if overwrite not in ("true", "false"):
            raise BadParameter(f"overwrite: expected true or false, got {overwrite!r}")
        principal = principal_of(request)
        body = await _json_body(request)
        if overwrite == "true":
            uid = await self._run(self._documents, _uid_of, body)
            if uid is not None:
                await self._writable(request, principal.tenant, uid)
        uid, version, unmapped = await self._run(
            self._documents, self.service.import_dashboard, principal.tenant, body, principal.name,
            overwrite=overwrite == "true",
        )
        return json_response({"uid": uid, "version": version, "unmapped": unmapped}, 201)

    # ----------------------------------------------------------------- data

    async def panel_data(self, request: Request) -> Response:
        query, variables = _split(request, (*_TIME_PARAMS, "step"))
        data = await self._run(
            self._data, self.service.panel_data, principal_of(request).tenant, request.path_params["uid"],
            request.path_params["id"], step=query.text("step"), variables=variables, **_times(query),
        )
        return json_response(data)

    async def panel_png(self, request: Request) -> Response:
        query, variables = _split(request, (*_TIME_PARAMS, "theme", "width", "height"))
        theme = _theme(query)
        width = query.integer("width", default=800, minimum=MIN_PX, maximum=MAX_PX)
        height = query.integer("height", default=400, minimum=MIN_PX, maximum=MAX_PX)
        png = await self._run(
            self._render, self.service.render_panel, principal_of(request).tenant, request.path_params["uid"],
            request.path_params["id"], variables=variables, theme=theme, width=width, height=height, **_times(query),
        )
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def dashboard_png(self, request: Request) -> Response:
        query, variables = _split(request, (*_TIME_PARAMS, "theme", "width"))
        theme = _theme(query)
        width = query.integer("width", default=1200, minimum=MIN_PX, maximum=MAX_PX)
        png = await self._run(
            self._render, self.service.render_dashboard, principal_of(request).tenant, request.path_params["uid"],
            variables=variables, theme=theme, width=width, **_times(query),
        )
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


def _uid_of(doc: Any) -> str | None:
    """The uid a document would be stored under; ``None`` if invalid (the import then reports why)."""
    try:
        return read_document(doc)[0].uid
    except DashboardError:
        return None


def _theme(query: Query) -> str | None:
    theme = query.text("theme")
    if theme is not None and theme not in THEMES:
        raise BadParameter(f"theme: expected {' or '.join(THEMES)}, got {theme!r}")
    return theme


def dashboard_routes(service: DashboardService) -> list[Route]:
    """The dashboard routes over ``service``; add them to the API app (the auth middleware wraps it)."""
    h = _Handlers(service)
    base = "/api/v1/dashboards"
    return [
        Route(base, _guarded(h.list), methods=["GET"]),
        Route(base, _guarded(h.create), methods=["POST"]),
        Route(f"{base}/import", _guarded(h.import_), methods=["POST"]),
        Route(f"{base}/{{uid}}", _guarded(h.get), methods=["GET"]),
        Route(f"{base}/{{uid}}", _guarded(h.put), methods=["PUT"]),
        Route(f"{base}/{{uid}}", _guarded(h.delete), methods=["DELETE"]),
        Route(f"{base}/{{uid}}/export", _guarded(h.export), methods=["GET"]),
        Route(f"{base}/{{uid}}/render.png", _guarded(h.dashboard_png), methods=["GET"]),
        Route(f"{base}/{{uid}}/panels/{{id:int}}/data", _guarded(h.panel_data), methods=["GET"]),
        Route(f"{base}/{{uid}}/panels/{{id:int}}/render.png", _guarded(h.panel_png), methods=["GET"]),
    ]
