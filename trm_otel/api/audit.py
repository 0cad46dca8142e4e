"""Auditing the API: every change and every refused request goes into the audit trail.

    GET /api/v1/audit?start=&end=&action=&limit=     admin only, the caller's tenant

The middleware sits outside the auth middleware, so it sees refusals
(401 bad or missing token, 403 role too low) as well as answers. It
records every request that changes something (any method but GET/HEAD/
OPTIONS, whatever the outcome) and every refused read: 401, 403, and 404
on a route that names an object (an id of another tenant looks exactly
like an unknown id, and both are worth seeing). The action is the route
template (``PUT /api/v1/dashboards/{uid}``), the target its parameters
followed, for a change that succeeded, by the scalar fields of its JSON
answer that the parameters do not already say: what a POST made
(``silenceID=…``, ``uid=…, version=1``), the version a PUT wrote, how
many groups a reload read. Neither the query string nor the request
body is ever recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
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
#: Bytes of a change's JSON answer kept to name what it made (answers to changes are small).
_ANSWER_BYTES = 16 * 1024
#: Longest value of an answer field in a target.
_VALUE_CHARS = 200


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
        changes = scope.get("method", "GET") not in _READS
        keep = recorded = False
        answer = bytearray()

        async def record() -> None:
            nonlocal recorded
            recorded = True
            entry = self._entry(scope, status, bytes(answer))
            if entry is not None:
                await run_in_threadpool(self.log.record, entry)

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status, keep
            if message["type"] == "http.response.start":
                status = int(message["status"])
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                keep = changes and status < 400 and b"json" in content_type
            elif message["type"] == "http.response.body":
                if keep:
                    answer.extend(message.get("body", b""))
                    keep = len(answer) <= _ANSWER_BYTES
                    if not keep:
                        answer.clear()
                if not message.get("more_body", False) and not recorded:
                    await record()  # before the answer ends: whoever got it finds it in the trail
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if not recorded:  # no (complete) answer: an error, or the client went away
                await record()

    def _entry(self, scope: dict[str, Any], status: int, answer: bytes = b"") -> AuditEntry | None:
        method = scope.get("method", "GET")
        action, path, params = self._route(scope)
        refused = status in (401, 403) or (status == 404 and bool(params))
        if method in _READS and not refused:
            return None
        principal = scope.get("state", {}).get("principal")
        actor = principal.name if principal is not None else "anonymous"
        tenant = principal.tenant if principal is not None else "default"
        outcome = "refused" if refused else ("ok" if 0 < status < 400 else "failed")
        fields = [(k, str(v)) for k, v in params.items()]
        if outcome == "ok":
            said = {v for _, v in fields}
            fields += [(k, v) for k, v in _answer_fields(answer) if v not in said]
        target = ", ".join(f"{k}={v}" for k, v in fields) or path
        return AuditEntry(time.time(), actor, tenant, action, target, outcome, status)

    def _route(self, scope: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """The action (method and route template), the template, and the path parameters."""
        method = scope.get("method", "GET")
        for route in self.routes_of().routes:
            if isinstance(route, Route):
                match, child = route.matches(scope)
                if match == Match.FULL:
                    return f"{method} {route.path}", route.path, dict(child.get("path_params", {}))
        return f"{method} {scope.get('path', '')}", scope.get("path", ""), {}


def _answer_fields(answer: bytes) -> list[tuple[str, str]]:
    """The top-level scalar fields of a JSON object answer (``uid``, ``version``, ``silenceID``), in order."""
    if not answer:
        return []
    try:
        data = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    return [(str(k), (v if isinstance(v, str) else orjson.dumps(v).decode())[:_VALUE_CHARS])
            for k, v in data.items() if isinstance(v, (str, int, float, bool))]


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
