"""``GET /api/v1/query``: the query language over HTTP, answered like Prometheus.

    GET /api/v1/query?q=p95(traces.span.metrics.duration[5m]) by (span.name)[&time=T]
    {"status": "success", "data": {"resultType": "vector",
     "result": [{"metric": {"span.name": "GET /cart"}, "value": [1800000000, "18.2"]}]}}

    GET /api/v1/query?q=rate(traces.span.metrics.calls)&start=S&end=E&step=1m
    {"status": "success", "data": {"resultType": "matrix",
     "result": [{"metric": {}, "values": [[1799996400, "12.5"], ...]}]}}

The answer has the shape of Prometheus' ``/api/v1/query`` and
``/api/v1/query_range`` so tools that read those read this: values are
strings (``"NaN"``, ``"+Inf"`` included), times unix seconds. Times accept
unix seconds or RFC 3339 (``2026-11-30T02:35:07Z``); ``time`` defaults to
now; ``step`` takes a duration (``30s``, ``5m``) or seconds. A query is
either instant (``time``) or a range (``start``, ``end`` and ``step`` all
given).

Errors are Prometheus-shaped too: ``{"status": "error", "errorType":
"bad_data", "error": "1:8: expected '(' after 'p95', got '{'"}`` with 400
for a bad parameter, a query that does not parse or cannot be answered
(wrong statistic for the series, a limit), and 503 (``unavailable``) when
the API was built without a query source. Parsing and parameter checks run
on the event loop (they are cheap and fail fast); evaluation runs on the
API's bounded worker threads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from trm_otel.api.auth import principal_of
from trm_otel.api.params import BadParameter, Query
from trm_otel.api.responses import json_response
from trm_otel.query import Evaluator, QueryError, parse_query
from trm_otel.series_source import SeriesSource
from trm_otel.slo import SloPolicy

__all__ = ["PARAMETERS", "QueryRoute", "format_value", "parse_time"]

#: The parameters ``/api/v1/query`` accepts.
PARAMETERS = ("q", "time", "start", "end", "step")
_RANGE_PARAMETERS = ("start", "end", "step")
_UNIX_SECONDS = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

Compute = Callable[..., Awaitable[Any]]


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: shortest decimal, ``NaN``, ``+Inf``, ``-Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return np.format_float_positional(value, trim="-")


def _timestamp(time_s: float) -> float | int:
    """Whole seconds as integers (``1800000000``, as Prometheus prints them), else the float."""
    return int(time_s) if float(time_s).is_integer() else time_s


def parse_time(name: str, raw: str) -> float:
    """Unix seconds from ``1800000000.5`` or an RFC 3339 timestamp; :class:`BadParameter` naming ``name``."""
    if _UNIX_SECONDS.fullmatch(raw):
        value = float(raw)
        if not math.isfinite(value):
            raise BadParameter(f"{name}: not a finite time: {raw!r}")
        return value
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise BadParameter(f"{name}: not a unix time in seconds or an RFC 3339 timestamp: {raw!r}") from None
    if parsed.tzinfo is None:
        raise BadParameter(f"{name}: an RFC 3339 timestamp needs a time zone (Z or +hh:mm): {raw!r}")
    return parsed.timestamp()


class QueryRoute:
    """The handler of ``/api/v1/query`` over one source (``None``: answer 503)."""

    def __init__(
        self,
        source: SeriesSource | None,
        slo: SloPolicy | None,
        clock: Callable[[], float],
        compute: Compute,
    ) -> None:
        self.source = source
        self.slo = slo
        self.clock = clock
        self.compute = compute

    async def handle(self, request: Request) -> Response:
        if self.source is None:
            return _error(
                503,
                "unavailable",
                "queries are not available: this API was started without a query source",
            )
        evaluator = Evaluator(self.source, slo=self.slo, tenant=principal_of(request).tenant)
        try:
            params = Query.from_items(request.query_params.multi_items(), PARAMETERS)
            text = params.text("q")
            if text is None:
                raise BadParameter("q: required, e.g. q=p95(traces.span.metrics.duration[5m]) by (span.name)")
            given = [name for name in _RANGE_PARAMETERS if params.text(name) is not None]
            if given:
                start, end, step = self._range(params, given)
                query = parse_query(text)
                series = await self.compute(evaluator.range, query, start, end, step)
                result = [
                    {
                        "metric": s.labels,
                        "values": [[_timestamp(t), format_value(v)] for t, v in zip(s.times_s, s.values)],
                    }
                    for s in series
                ]
                return _success("matrix", result)
            raw_time = params.text("time")
            time_s = self.clock() if raw_time is None else parse_time("time", raw_time)
            query = parse_query(text)
            samples = await self.compute(evaluator.instant, query, time_s)
            result = [{"metric": s.labels, "value": [_timestamp(s.time_s), format_value(s.value)]} for s in samples]
            return _success("vector", result)
        except (BadParameter, QueryError) as err:
            return _error(400, "bad_data", str(err))

    @staticmethod
    def _range(params: Query, given: list[str]) -> tuple[float, float, float]:
        if params.text("time") is not None:
            raise BadParameter("time: not allowed with start, end and step (time is for instant queries)")
        missing = [name for name in _RANGE_PARAMETERS if name not in given]
        if missing:
            raise BadParameter(f"{missing[0]}: required for a range query (give start, end and step together)")
        start = parse_time("start", params.text("start") or "")
        end = parse_time("end", params.text("end") or "")
        step = params.duration("step", default="")
        if end < start:
            raise BadParameter("end: must not be before start")
        return start, end, step


def _success(result_type: str, result: list[dict[str, Any]]) -> Response:
    return json_response({"status": "success", "data": {"resultType": result_type, "result": result}})


def _error(status_code: int, error_type: str, message: str) -> Response:
    return json_response({"status": "error", "errorType": error_type, "error": message}, status_code)
