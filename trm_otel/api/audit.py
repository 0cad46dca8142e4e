"""Auditing the API: every change and every refused request goes into the audit trail.

    GET /api/v1/audit?start=&end=&action=&limit=     admin only, the caller's tenant

The middleware sits outside the auth middleware, so it sees refusals
(401 bad or missing token, 403 role too low) as well as answers. It
records every request that changes something (any method but GET/HEAD/
OPTIONS, whatever the outcome) and every refused read: 401, 403, and 404
on a route that names an object (an id of another tenant looks exactly
like an unknown id, and both are worth seeing). The action is the route
template (``PUT /api/v1/dashboards/{uid}``), the target its parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from trm_otel.api.auth import require
from trm_otel.api.params import Query
from trm_otel.api.query import parse_time
from trm_otel.api.responses import json_response
from trm_otel.audit import AuditEntry, AuditLog

__all__ = ["AuditMiddleware", "audit_routes"]

_READS = ("GET", "HEAD", "OPTIONS")


class AuditMiddleware:
    def __init__(self, app: Any, log: AuditLog, routes_of: Callable[[], Starlette]) -> None:
        self.app = app
        self.log = log
        self.routes_of = routes_of

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/api/"):
            await self.app(scope, receive, send)
            return
        status = 0

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            entry = self._entry(scope, status)
            if entry is not None:
                await run_in_threadpool(self.log.record, entry)

    def _entry(self, scope: dict[str, Any], status: int) -> AuditEntry | None:
        method = scope.get("method", "GET")
        action, target, names_object = self._route(scope)
        refused = status in (401, 403) or (status == 404 and names_object)
        if method in _READS and not refused:
            return None
        principal = scope.get("state", {}).get("principal")
        actor = principal.name if principal is not None else "anonymous"
        tenant = principal.tenant if principal is not None else "default"
        outcome = "refused" if refused else ("ok" if 0 < status < 400 else "failed")
        return AuditEntry(time.time(), actor, tenant, action, target, outcome, status)

    def _route(self, scope: dict[str, Any]) -> tuple[str, str, bool]:
        method = scope.get("method", "GET")
        for route in self.routes_of().routes:
            if isinstance(route, Route):
                match, child = route.matches(scope)
                if match == Match.FULL:
                    params = child.get("path_params", {})
                    target = ", ".join(f"{k}={v}" for k, v in params.items()) or route.path
                    return f"{method} {route.path}", target, bool(params)
        return f"{method} {scope.get('path', '')}", scope.get("path", ""), False


def audit_routes(log: AuditLog) -> list[Route]:
    async def audit(request: Request) -> Response:
        principal = require(request, "admin")
        query = Query.from_items(request.query_params.multi_items(), ("start", "end", "action", "limit"))
        start, end = query.text("start"), query.text("end")
        start_s = parse_time("start", start) if start else None
        end_s = parse_time("end", end) if end else None
        limit = query.integer("limit", default=500, minimum=1, maximum=10_000)

        def answer() -> list[dict[str, Any]]:
            found = log.query(principal.tenant, start_s=start_s, end_s=end_s, action=query.text("action"), limit=limit)
            return [e.to_json() for e in found]

        return json_response({"entries": await run_in_threadpool(answer)})

    return [Route("/api/v1/audit", audit, methods=["GET"])]
