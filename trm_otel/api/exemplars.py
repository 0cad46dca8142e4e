"""``GET /api/v1/exemplars`` and the ``/metrics`` scrape that carries exemplars.

    GET /api/v1/exemplars?q=traces.span.metrics.duration{service.name="shop"}&min_ms=500
    {"exemplars": [{"labels": {"service.name": "shop", "span.name": "GET /cart", ...},
                    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
                    "duration_ms": 1843.2, "time": 1764467405.118,
                    "attributes": {"enduser.id": "u-42", "http.route": "/cart"}}, ...],
     "start": 1764463805.1, "end": 1764467405.1}

Parameters: ``q`` a selector of the span latency series
(``traces.span.metrics.duration`` or ``traces.span.metrics.calls``, with
label matchers; a ``[range]`` sets the default ``start``), ``start`` and
``end`` (unix seconds or RFC 3339; default: the last hour, or the
selector's range, up to now), ``min_ms`` (only spans at least that long),
``limit`` (default 100, at most 1000). The answer lists the exemplars of
every matching series that ended in ``[start, end)``, slowest first, each
span once, each with its series' labels. Exemplars are the spans each
window kept (its slowest few and a uniform sample; see
:mod:`trm_otel.processors.exemplars`), so ``min_ms`` finds slow requests
without scanning traces. Only the caller's tenant is read.

``/metrics`` answers OpenMetrics 1.0 (with exemplars on bucket lines) when
the scraper's ``Accept`` asks for it (:func:`~trm_otel.api.prometheus.wants_openmetrics`),
the 0.0.4 text format otherwise, gzipped when accepted.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trm_otel.api.auth import principal_of
from trm_otel.api.params import BadParameter, Query
from trm_otel.api.prometheus import CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, wants_openmetrics
from trm_otel.api.query import parse_time
from trm_otel.api.responses import compressed, json_response
from trm_otel.api.scrape import scrape
from trm_otel.query.errors import QueryError
from trm_otel.query.lexer import tokenize
from trm_otel.query.parser import _Parser
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher
from trm_otel.views import view_to_dict

if TYPE_CHECKING:
    from trm_otel.api.app import ApiContext

__all__ = ["DEFAULT_RANGE_S", "MAX_EXEMPLARS", "exemplar_routes", "parse_selector"]

#: ``start`` defaults to this long before ``end`` when neither it nor a ``[range]`` is given.
DEFAULT_RANGE_S = 3600.0
#: Largest ``limit``.
MAX_EXEMPLARS = 1000
PARAMETERS = ("q", "start", "end", "min_ms", "limit")

Compute = Callable[..., Awaitable[Any]]


def parse_selector(text: str) -> tuple[str, tuple[Matcher, ...], float | None]:
    """``metric{matchers}[range]`` as (metric, matchers, range s or None); :class:`QueryError` naming the spot."""
    parser = _Parser(tokenize(text))
    selector = parser.selector()
    parser.expect("end", "end of selector")
    return selector


def exemplar_routes(context: ApiContext, compute: Compute) -> list[Route]:
    """The exemplar list and the content-negotiating ``/metrics``, over ``context``."""

    async def exemplars(request: Request) -> Response:
        query = Query.from_items(request.query_params.multi_items(), PARAMETERS)
        text = query.text("q")
        if text is None:
            raise BadParameter('q: required, e.g. q=traces.span.metrics.duration{service.name="shop"}')
        try:
            metric, matchers, range_s = parse_selector(text)
        except QueryError as err:
            raise BadParameter(f"q: {err}") from None
        if metric not in (DURATION_METRIC, CALLS_METRIC):
            raise BadParameter(f"q: exemplars are kept for {DURATION_METRIC} (and {CALLS_METRIC}), not {metric!r}")
        raw_end, raw_start = query.text("end"), query.text("start")
        end = parse_time("end", raw_end) if raw_end is not None else context.aggregator.clock()
        start = parse_time("start", raw_start) if raw_start is not None else end - (range_s or DEFAULT_RANGE_S)
        if not start < end:
            raise BadParameter(f"start: must be before end ({start:g} >= {end:g})")
        min_ms = _non_negative(query, "min_ms")
        limit = query.integer("limit", default=100, minimum=1, maximum=MAX_EXEMPLARS)
        aggregator = context.aggregator_of(principal_of(request).tenant)

        def answer() -> dict[str, Any]:
            found = aggregator.exemplars(matchers, start, end, min_ms=min_ms, limit=limit)
            return {
                "exemplars": [{"labels": labels, **view_to_dict(exemplar)} for labels, exemplar in found],
                "start": start,
                "end": end,
            }

        return json_response(await compute(answer))

    async def metrics(request: Request) -> Response:
        accept_encoding = request.headers.get("accept-encoding", "")
        openmetrics = wants_openmetrics(request.headers.get("accept", ""))
        aggregator = context.aggregator_of(principal_of(request).tenant)

        def body() -> tuple[bytes, dict[str, str]]:
            text = scrape(aggregator, context.slo, context.self_metrics(), context.version, openmetrics=openmetrics)
            return compressed(text.encode(), accept_encoding)

        content, headers = await compute(body)
        headers["Vary"] = "Accept, Accept-Encoding"
        return Response(content, media_type=OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE, headers=headers)

    return [
        Route("/api/v1/exemplars", exemplars, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _non_negative(query: Query, name: str) -> float:
    raw = query.text(name)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise BadParameter(f"{name}: not a number: {raw!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise BadParameter(f"{name}: must be a number >= 0, got {raw!r}")
    return value
