"""The daemon's HTTP API as one ASGI app: probes, latency queries and ``/metrics``.

    >>> app = build_api_app(ApiContext(aggregator, slo, ready=receivers.listening,
    ...                                health=health_report, self_metrics=daemon_samples,
    ...                                version=__version__))              # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8080)                   # doctest: +SKIP

Routes (the contract is ARCHITECTURE.md, "HTTP API")::

    GET /healthz                 200 {"status": "ok"} while the process serves
    GET /readyz                  200 {"status": "ready"} | 503 {"status": "not ready"}
    GET /api/v1/health           the health report; 503 when "unhealthy"
    GET /api/v1/services         ?range=5m
    GET /api/v1/latency          ?service=&endpoint=&range=5m
    GET /api/v1/bottlenecks      ?service=&range=15m&limit=10
    GET /api/v1/trends           ?service=&endpoint=&range=1h
    GET /api/v1/query            ?q=&time= | ?q=&start=&end=&step= (Prometheus-shaped; see api.query)
    GET /api/v1/exemplars        ?q=&start=&end=&min_ms=&limit= (see api.exemplars)
    GET /metrics                 Prometheus text 0.0.4, or OpenMetrics 1.0 with exemplars (see api.exemplars)
    GET /api/v1/label/{name}/values  ?match[]=&start=&end= (Prometheus-shaped; see api.labels)

Every answer but ``/metrics`` is JSON, errors included: ``{"error": "..."}``
with 400 for a bad or unknown parameter (the message starts with its name),
404 for an unknown path, 405 for another method (with ``Allow``), 500 for a
bug. ``range`` is capped at what the aggregator keeps in memory; the answer's
``range_s`` says which range was actually used. ``/healthz``, ``/readyz`` and
``/metrics`` ignore query parameters: probers and scrape configs add their own.
``/metrics`` is gzipped when the scraper accepts it (Prometheus does).
``/api/v1/query`` answers its errors in Prometheus' shape instead
(``{"status": "error", "errorType": ..., "error": ...}``).

The app runs on the daemon's event loop next to the receivers, so nothing
that merges histograms runs on the loop: queries and scrapes go to worker
threads, at most :data:`QUERY_THREADS` at a time (a dashboard storm then
queues instead of taking every worker thread), while the probes use
starlette's shared pool and so stay answerable while queries queue.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trm_otel.api.auth import principal_of
from trm_otel.api.exemplars import exemplar_routes
from trm_otel.api.params import BadParameter, Query
from trm_otel.api.prometheus import Sample
from trm_otel.api.query import QueryRoute
from trm_otel.api.responses import error_response, json_response
from trm_otel.api.services import service_summaries
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.latency_report import bottleneck_report, latency_views, trend_report
from trm_otel.series_source import SeriesSource
from trm_otel.slo import SloPolicy
from trm_otel.views import view_to_dict

__all__ = ["MAX_LIMIT", "QUERY_THREADS", "ApiContext", "build_api_app"]

_logger = logging.getLogger(__name__)

#: Worker threads the API's queries and scrapes may occupy at once.
QUERY_THREADS = 4
#: Largest ``limit`` accepted by ``/api/v1/bottlenecks``.
MAX_LIMIT = 1000

_T = TypeVar("_T")


@dataclass(frozen=True)
class ApiContext:
    """Everything the API reads; the daemon builds it, tests build it from fakes.

    ``ready`` is true once the receivers listen and the data directory is
    usable; ``health`` returns ``{"status": "healthy"|"degraded"|"unhealthy",
    "checks": [{"name", "status", "detail"}]}``; ``self_metrics`` yields the
    daemon's own counters for ``/metrics``. All three are called on a worker
    thread, once per request. ``query_source`` is what ``/api/v1/query``
    reads (memory, or memory stitched to storage); without one that route
    answers 503. Its apdex defaults come from ``slo``.
    """

    aggregator: LatencyAggregator
    slo: SloPolicy
    ready: Callable[[], bool]
    health: Callable[[], dict[str, Any]]
    self_metrics: Callable[[], Iterable[Sample]]
    version: str
    query_source: SeriesSource | None = None
    alerting: Any = None  # alerting routes are added when present (see trm_otel.api.alerting)
    tenant_aggregator: Callable[[str], LatencyAggregator] | None = None
    audit: Any = None  # an AuditLog: GET /api/v1/audit is added when present
    dashboards: Any = None  # a DashboardService: the dashboard routes are added when present
    stream: Any = None  # a StreamHub: the web UI and /api/v1/stream are added when present

    def aggregator_of(self, tenant: str) -> LatencyAggregator:
        """The caller's tenant's aggregator: each tenant's views read only its own spans."""
        if self.tenant_aggregator is not None:
            return self.tenant_aggregator(tenant)
        if tenant == "default":
            return self.aggregator
        return _EMPTY.setdefault(tenant, LatencyAggregator(window_s=self.aggregator.window_s))


_EMPTY: dict[str, LatencyAggregator] = {}


class _Handlers:
    """The route handlers over one context: parse parameters, compute off-loop, answer."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context
        self._limiter = anyio.CapacityLimiter(QUERY_THREADS)

    async def _compute(self, func: Callable[..., _T], *args: Any) -> _T:
        return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=self._limiter)

    def _range(self, query: Query, default: str) -> float:
        return min(query.duration("range", default), self.context.aggregator.max_range_s)

    def _aggregator(self, request: Request) -> LatencyAggregator:
        return self.context.aggregator_of(principal_of(request).tenant)

    # ---------------------------------------------------------------- probes

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        try:
            ready = bool(await run_in_threadpool(self.context.ready))
        except Exception:
            _logger.exception("the readiness check raised; answering not ready")
            ready = False
        return json_response({"status": "ready"} if ready else {"status": "not ready"}, 200 if ready else 503)

    async def health(self, request: Request) -> Response:
        Query.from_items(request.query_params.multi_items(), ())
        try:
            report = await run_in_threadpool(self.context.health)
        except Exception as err:
            _logger.exception("the health check raised; answering unhealthy")
            detail = f"health check failed: {type(err).__name__}: {err}"
            report = {"status": "unhealthy", "checks": [{"name": "health", "status": "unhealthy", "detail": detail}]}
        return json_response(report, 503 if report.get("status") == "unhealthy" else 200)

    # --------------------------------------------------------------- queries

    async def services(self, request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), ("range",))
        range_s = self._range(query, "5m")
        context = self.context
        aggregator = self._aggregator(request)

        def answer() -> dict[str, Any]:
            summaries = service_summaries(aggregator.endpoints(range_s), context.slo)
            return {"services": [view_to_dict(s) for s in summaries], "range_s": range_s}

        return json_response(await self._compute(answer))

    async def latency(self, request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), ("service", "endpoint", "range"))
        range_s = self._range(query, "5m")
        service, endpoint = query.text("service"), query.text("endpoint")
        context = self.context
        aggregator = self._aggregator(request)

        def answer() -> dict[str, Any]:
            views = latency_views(aggregator, context.slo, range_s, service, endpoint)
            return {"views": [view_to_dict(v) for v in views], "range_s": range_s}

        return json_response(await self._compute(answer))

    async def bottlenecks(self, request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), ("service", "range", "limit"))
        range_s = self._range(query, "15m")
        limit = query.integer("limit", default=10, minimum=1, maximum=MAX_LIMIT)
        service = query.text("service")
        context = self.context
        aggregator = self._aggregator(request)

        def answer() -> dict[str, Any]:
            found = bottleneck_report(aggregator, context.slo, range_s, service, limit)
            return {"bottlenecks": [view_to_dict(b) for b in found], "range_s": range_s}

        return json_response(await self._compute(answer))

    async def trends(self, request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), ("service", "endpoint", "range"))
        range_s = self._range(query, "1h")
        service, endpoint = query.text("service"), query.text("endpoint")
        context = self.context
        aggregator = self._aggregator(request)

        def answer() -> dict[str, Any]:
            found = trend_report(aggregator, context.slo, range_s, service, endpoint)
            return {"trends": [view_to_dict(t) for t in found], "range_s": range_s}

        return json_response(await self._compute(answer))


# ------------------------------------------------------------------ errors


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    return error_response(400, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"not found: {request.url.path}"
    elif exc.status_code == 405:
        # starlette builds Allow from a set: sort it so the header is stable across runs.
        allowed = headers["Allow"] = ", ".join(sorted(m.strip() for m in headers.get("Allow", "GET").split(",")))
        message = f"method {request.method} not allowed on {request.url.path} (allowed: {allowed})"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after answering, so the server logs the traceback.
    return error_response(500, "internal error (the daemon's log has the details)")


def build_api_app(context: ApiContext) -> Starlette:
    """The ASGI app serving the API over ``context``."""
    handlers = _Handlers(context)
    query = QueryRoute(context.query_source, context.slo, context.aggregator.clock, handlers._compute)
    get = ["GET"]  # starlette adds HEAD
    routes = [
        Route("/healthz", handlers.healthz, methods=get),
        Route("/readyz", handlers.readyz, methods=get),
        Route("/api/v1/health", handlers.health, methods=get),
        Route("/api/v1/services", handlers.services, methods=get),
        Route("/api/v1/latency", handlers.latency, methods=get),
        Route("/api/v1/bottlenecks", handlers.bottlenecks, methods=get),
        Route("/api/v1/trends", handlers.trends, methods=get),
        Route("/api/v1/query", query.handle, methods=get),
        *exemplar_routes(context, handlers._compute),  # /api/v1/exemplars and /metrics
    ]
    if context.alerting is not None:
        from trm_otel.api.alerting import alerting_routes

        routes += alerting_routes(context.alerting)
    if context.audit is not None:
        from trm_otel.api.audit import audit_routes

        routes += audit_routes(context.audit)
    if context.dashboards is not None:
        from trm_otel.api.dashboards import dashboard_routes

        routes += dashboard_routes(context.dashboards)
    if context.stream is not None:
        from trm_otel.ui import ui_routes

        routes += ui_routes(context.stream)
    from trm_otel.api.labels import label_routes  # GET /api/v1/label/{name}/values (dashboard variables)

    routes += label_routes(context, handlers._compute)
    return Starlette(
        routes=routes,
        exception_handlers={
            BadParameter: _bad_parameter,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
