"""``GET /api/v1/label/{name}/values``: the values a label takes, answered like Prometheus.

    GET /api/v1/label/service.name/values
    {"status": "success", "data": ["cart", "shop"]}

    GET /api/v1/label/span.name/values?match[]=traces.span.metrics.calls{service.name="shop"}
    {"status": "success", "data": ["GET /", "POST /cart"]}

What dashboard variables (``label_values(service.name)``,
``label_values(METRIC{...}, label)``) are filled from. The answer has the
shape of Prometheus' label values API: ``data`` is the sorted, distinct,
non-empty values of ``name`` over the caller's tenant's series, read from
the query source (memory, stitched to storage) with ``select``, so nothing
but the series index is read.

``match[]`` (repeatable) limits the series to those of the selectors
(``METRIC{label="v", ...}``, or ``{label="v"}`` for every metric); the
values of all of them are merged. Without it, every metric the source can
list (:meth:`metric_names`: the span series under
``traces.span.metrics.duration``, every scalar metric in memory, every
metric in storage) is read; a source that cannot list its metrics is read
for the span series only. ``__name__`` lists metric names. ``start`` and
``end`` (unix seconds or RFC 3339) are checked and accepted as Prometheus
clients send them, but do not narrow the answer: series are not indexed by
time, so every series the tenant's memory (since start-up) and storage hold
is considered, as Prometheus does at the granularity of its blocks.

Errors are Prometheus-shaped (``{"status": "error", "errorType":
"bad_data", "error": "match[]: ..."}``, 400) and name the parameter; 503
(``unavailable``) without a query source. Reading needs ``viewer``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trm_otel.api.auth import principal_of
from trm_otel.api.params import BadParameter, Query
from trm_otel.api.query import parse_time
from trm_otel.api.responses import json_response
from trm_otel.api.exemplars import parse_selector
from trm_otel.query import QueryError
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher, SeriesSource

if TYPE_CHECKING:
    from trm_otel.api.app import ApiContext

__all__ = ["LABEL_VALUES_PATH", "MAX_MATCHES", "label_routes", "label_values"]

LABEL_VALUES_PATH = "/api/v1/label/{name}/values"
#: Most ``match[]`` selectors one request may give.
MAX_MATCHES = 20
_MATCH = "match[]"
_PARAMETERS = (_MATCH, "start", "end")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")
_METRIC_NAME = "__name__"
_ANY_METRIC = "__trm_any_metric__"  # stands for the metric of a {matchers}-only selector while parsing

Compute = Callable[..., Awaitable[Any]]
Selector = tuple[str | None, tuple[Matcher, ...]]


def parse_match(text: str) -> Selector:
    """``METRIC{matchers}`` or ``{matchers}`` (metric ``None``: every metric).

    :class:`BadParameter` naming ``match[]`` when it is neither.
    """
    stripped = text.strip()
    any_metric = stripped.startswith("{")
    try:
        metric, matchers, range_s = parse_selector(f"{_ANY_METRIC}{stripped}" if any_metric else stripped)
    except QueryError as err:
        if any_metric and err.line == 1 and err.column is not None:  # a position in what the caller wrote
            err = QueryError(err.message, max(err.column - len(_ANY_METRIC), 1), err.line)
        raise BadParameter(f"{_MATCH}: {err} in {text!r}") from None
    if range_s is not None:
        raise BadParameter(f"{_MATCH}: a series selector takes no [range]: {text!r}")
    if any_metric and not matchers:
        raise BadParameter(f"{_MATCH}: give a metric name or at least one matcher: {text!r}")
    return (None if any_metric else metric), matchers


def _metrics_of(source: SeriesSource, tenant: str) -> list[str]:
    """Every metric the source lists for ``tenant``, the duration standing for the calls (same series)."""
    method = getattr(source, "metric_names", None)
    if method is None:
        return [CALLS_METRIC]  # the span series: what every source can select
    names = set(method(tenant))
    if DURATION_METRIC in names:
        names.discard(CALLS_METRIC)
    return sorted(names)


def label_values(source: SeriesSource, tenant: str, name: str, selectors: Sequence[Selector] = ()) -> list[str]:
    """The sorted distinct non-empty values of label ``name`` over ``tenant``'s series matching any selector.

    No selectors: every metric the source lists. ``__name__``: metric names.
    """
    wanted: Iterable[Selector] = selectors or [(None, ())]
    every: list[str] | None = None
    found: set[str] = set()
    for metric, matchers in wanted:
        if metric is None:
            if every is None:
                every = _metrics_of(source, tenant)
            metrics = every
        else:
            metrics = [metric]
        for each in metrics:
            refs = source.select(each, matchers, tenant)
            if name == _METRIC_NAME:
                if refs:
                    found.add(each)
                    if each == DURATION_METRIC and metric is None:
                        found.add(CALLS_METRIC)
                continue
            for ref in refs:
                value = ref.labels.get(name)
                if value:
                    found.add(value)
    return sorted(found)


def label_routes(context: ApiContext, compute: Compute) -> list[Route]:
    """``GET /api/v1/label/{name}/values`` over ``context.query_source``."""

    async def values(request: Request) -> Response:
        source = context.query_source
        if source is None:
            message = "label values are not available: this API was started without a query source"
            return _error(503, "unavailable", message)
        try:
            selectors = _parameters(request)
            name = request.path_params["name"]
            if not _LABEL.match(name):
                raise BadParameter(f"label name: not a label name (letters, digits, '_', '.', ':', '/', '-'): {name!r}")
        except BadParameter as err:
            return _error(400, "bad_data", str(err))
        tenant = principal_of(request).tenant
        found = await compute(label_values, source, tenant, name, selectors)
        return json_response({"status": "success", "data": found})

    return [Route(LABEL_VALUES_PATH, values, methods=["GET"])]


def _parameters(request: Request) -> list[Selector]:
    items = request.query_params.multi_items()
    unknown = sorted({key for key, _ in items} - set(_PARAMETERS))
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        names = ", ".join(repr(key) for key in unknown)
        raise BadParameter(f"unknown parameter{plural} {names} (known: {', '.join(sorted(_PARAMETERS))})")
    matches = [value for key, value in items if key == _MATCH and value.strip()]
    if len(matches) > MAX_MATCHES:
        raise BadParameter(f"{_MATCH}: at most {MAX_MATCHES} selectors, got {len(matches)}")
    query = Query.from_items([(key, value) for key, value in items if key != _MATCH], ("start", "end"))
    raw_start, raw_end = query.text("start"), query.text("end")
    start = parse_time("start", raw_start) if raw_start is not None else None
    end = parse_time("end", raw_end) if raw_end is not None else None
    if start is not None and end is not None and end < start:
        raise BadParameter("end: must not be before start")
    return [parse_match(text) for text in matches]


def _error(status_code: int, error_type: str, message: str) -> Response:
    return json_response({"status": "error", "errorType": error_type, "error": message}, status_code)
