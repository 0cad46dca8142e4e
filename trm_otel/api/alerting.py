"""Alerting over HTTP: rules, alerts and acks, silences (Alertmanager API v2 shapes), deliveries.

    GET    /api/v1/rules                    {"groups": [{name, file, interval, rules: [...]}]}
    PUT    /api/v1/rules/{group}            a rule group as JSON; 400 with every problem, nothing changed
    DELETE /api/v1/rules/{group}            an API-made group (file groups: edit the file, then reload)
    POST   /api/v1/rules/reload             re-read rule_files; 400 (old rules kept) when invalid
    GET    /api/v1/alerts                   ?state=firing|pending|resolved|suppressed
    POST   /api/v1/alerts/{fingerprint}/ack {"by", "comment", "expiresAt" (RFC 3339) | "duration": "1h"}
    GET    /api/v1/silences                 [silence, ...] as Alertmanager's GET /api/v2/silences
    POST   /api/v1/silences                 a silence; {"silenceID": id}
    GET    /api/v1/silences/{id}
    DELETE /api/v1/silences/{id}            expires it (it stays listed as expired)
    GET    /api/v1/notifications            recent deliveries with status, attempts and last error

Bodies are JSON; validation problems answer 400 with ``{"error": ...,
"problems": [{"path", "message"}]}`` where the paths name the field. Every
handler does its SQLite work on a worker thread.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trm_otel.alerting.service import AlertingService
from trm_otel.alerting.silences import Silence
from trm_otel.api.auth import principal_of
from trm_otel.api.params import Query
from trm_otel.api.responses import error_response, json_response
from trm_otel.config_types import parse_duration
from trm_otel.errors import ConfigError

__all__ = ["MAX_BODY_BYTES", "alerting_routes"]

#: Largest request body these endpoints read.
MAX_BODY_BYTES = 1 << 20
_STATES = ("firing", "pending", "resolved", "suppressed")


async def _json_body(request: Request) -> Any:
    if "json" not in request.headers.get("content-type", "application/json"):
        raise _Refused(415, "the body must be JSON (Content-Type: application/json)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _Refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise _Refused(400, f"the body is not valid JSON: {err}") from None


class _Refused(Exception):
    def __init__(self, status: int, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems


def _problems(err: ConfigError) -> _Refused:
    problems = [{"path": path, "message": message} for path, message in err.problems]
    return _Refused(400, str(err), problems)


def _time(value: Any, field: str) -> float:
    if not isinstance(value, str):
        raise _Refused(400, f"{field}: expected an RFC 3339 time such as 2026-11-30T12:00:00Z")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _Refused(400, f"{field}: not an RFC 3339 time: {value!r}") from None


class AlertingHandlers:
    def __init__(self, services: Callable[[str], AlertingService]) -> None:
        self.services = services

    def _service(self, request: Request) -> AlertingService:
        """The caller's tenant's alerting: rules, alerts, silences and deliveries never cross tenants."""
        return self.services(principal_of(request).tenant)

    async def _guard(self, request: Request, handler: Any) -> Response:
        """Runs a changing handler: no query parameters (a typo must not pass as accepted), refusals as JSON."""
        Query.from_items(request.query_params.multi_items(), ())
        try:
            return await handler(request)
        except _Refused as refused:
            response = error_response(refused.status, refused.message)
            if refused.problems is not None:
                return json_response({"error": refused.message, "problems": refused.problems}, refused.status)
            return response

    # ----------------------------------------------------------------- rules

    async def rules(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        return json_response({"groups": await run_in_threadpool(self._service(request).rules_json)})

    async def put_rules(self, request: Request) -> Response:
        async def handle(request: Request) -> Response:
            name = request.path_params["group"]
            body = await _json_body(request)
            if isinstance(body, dict):
                body.setdefault("name", name)
                if body["name"] != name:
                    raise _Refused(400, f"name: {body['name']!r} differs from the group in the path ({name!r})")
            try:
                group = await run_in_threadpool(self._service(request).put_rule_group, body)
            except ConfigError as err:
                raise _problems(err) from None
            return json_response({"name": group.name, "rules": len(group.rules)})

        return await self._guard(request, handle)

    async def delete_rules(self, request: Request) -> Response:
        async def handle(request: Request) -> Response:
            name = request.path_params["group"]
            try:
                found = await run_in_threadpool(self._service(request).delete_rule_group, name)
            except ConfigError as err:
                raise _Refused(409, str(err)) from None
            if not found:
                raise _Refused(404, f"no rule group {name!r}")
            return json_response({"deleted": name})

        return await self._guard(request, handle)

    async def reload(self, request: Request) -> Response:
        async def handle(request: Request) -> Response:
            try:
                rules = await run_in_threadpool(self._service(request).reload)
            except ConfigError as err:
                raise _problems(err) from None
            return json_response({"groups": len(rules.groups)})

        return await self._guard(request, handle)

    # ---------------------------------------------------------------- alerts

    async def alerts(self, request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), ("state",))
        state = query.text("state")
        if state is not None and state not in _STATES:
            return error_response(400, f"state: expected one of {', '.join(_STATES)}, got {state!r}")
        alerts = await run_in_threadpool(self._service(request).alerts_json)
        if state is not None:
            alerts = [a for a in alerts if a["state"] == state]
        return json_response({"alerts": alerts})

    async def ack(self, request: Request) -> Response:
        async def handle(request: Request) -> Response:
            fingerprint = request.path_params["fingerprint"]
            body = await _json_body(request)
            if not isinstance(body, dict):
                raise _Refused(400, "the body must be an object with by, comment and expiresAt or duration")
            unknown = sorted(set(body) - {"by", "createdBy", "comment", "expiresAt", "duration"})
            if unknown:
                raise _Refused(400, f"{unknown[0]}: unknown field (expected by, comment, expiresAt or duration)")
            by = body.get("by", body.get("createdBy"))
            if not isinstance(by, str) or not by.strip():
                raise _Refused(400, "by: who acknowledges is required")
            comment = body.get("comment", "")
            if not isinstance(comment, str):
                raise _Refused(400, "comment: expected a string")
            now = self._service(request).clock()
            if "expiresAt" in body:
                expires = _time(body["expiresAt"], "expiresAt")
            else:
                try:
                    expires = now + parse_duration(body.get("duration", "1h"))
                except ValueError as err:
                    raise _Refused(400, f"duration: {err}") from None
            service = self._service(request)
            try:
                ack = await run_in_threadpool(
                    lambda: service.ack(fingerprint, by=by, comment=comment, expires_at=expires)
                )
            except KeyError:
                raise _Refused(404, f"no firing alert with fingerprint {fingerprint!r}") from None
            except ValueError as err:
                raise _Refused(400, f"expiresAt: {err}") from None
            return json_response({"fingerprint": fingerprint, "ack": ack.to_json()})

        return await self._guard(request, handle)

    # -------------------------------------------------------------- silences

    async def silences(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        service = self._service(request)
        found = await run_in_threadpool(service.silences.list, service.tenant)
        now = service.clock()
        return json_response([s.to_api_json(now) for s in found])

    async def post_silence(self, request: Request) -> Response:
        async def handle(request: Request) -> Response:
            body = await _json_body(request)
            service = self._service(request)
            try:
                silence = Silence.parse(body)
                silence_id = await run_in_threadpool(service.silences.create_or_update, service.tenant, silence)
            except ConfigError as err:
                raise _problems(err) from None
            except KeyError:
                raise _Refused(404, f"id: no silence with id {body.get('id')!r} to update") from None
            except ValueError as err:
                raise _Refused(400, str(err)) from None
            return json_response({"silenceID": silence_id})

        return await self._guard(request, handle)

    async def get_silence(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        service = self._service(request)
        silence_id = request.path_params["id"]
        try:
            silence = await run_in_threadpool(service.silences.get, service.tenant, silence_id)
        except KeyError:
            return error_response(404, f"no silence with id {silence_id!r}")
        return json_response(silence.to_api_json(service.clock()))

    async def delete_silence(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        service = self._service(request)
        silence_id = request.path_params["id"]
        try:
            await run_in_threadpool(service.silences.expire, service.tenant, silence_id)
        except KeyError:
            return error_response(404, f"no silence with id {silence_id!r}")
        return json_response({"expired": silence_id})

    # ---------------------------------------------------------- deliveries

    async def notifications(self, request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), ("limit",))
        limit = query.integer("limit", default=100, minimum=1, maximum=1000)
        service = self._service(request)

        def answer() -> list[dict[str, Any]]:
            out = []
            for d in service.log.deliveries(service.tenant, limit=limit):
                n = d.notification
                out.append({
                    "id": d.id, "receiver": d.receiver, "integration": d.integration, "status": d.status,
                    "attempts": d.attempts, "lastError": d.last_error, "groupKey": n.group_key,
                    "notificationStatus": n.status, "alerts": [a.fingerprint for a in n.alerts],
                    "folded": n.folded, "escalationStep": n.escalation_step,
                })
            return out

        return json_response({"notifications": await run_in_threadpool(answer)})


def alerting_routes(services: Callable[[str], AlertingService]) -> list[Route]:
    """The routes over ``services(tenant)``, the alerting of the caller's tenant."""
    h = AlertingHandlers(services)
    return [
        Route("/api/v1/rules", h.rules, methods=["GET"]),
        Route("/api/v1/rules/reload", h.reload, methods=["POST"]),
        Route("/api/v1/rules/{group}", h.put_rules, methods=["PUT"]),
        Route("/api/v1/rules/{group}", h.delete_rules, methods=["DELETE"]),
        Route("/api/v1/alerts", h.alerts, methods=["GET"]),
        Route("/api/v1/alerts/{fingerprint}/ack", h.ack, methods=["POST"]),
        Route("/api/v1/silences", h.silences, methods=["GET"]),
        Route("/api/v1/silences", h.post_silence, methods=["POST"]),
        Route("/api/v1/silences/{id}", h.get_silence, methods=["GET"]),
        Route("/api/v1/silences/{id}", h.delete_silence, methods=["DELETE"]),
        Route("/api/v1/notifications", h.notifications, methods=["GET"]),
    ]
