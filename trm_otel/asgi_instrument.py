"""ASGI instrumentation for Starlette and FastAPI apps, named by route template.

    >>> import trm_otel
    >>> telemetry = trm_otel.configure(service_name="shop")              # doctest: +SKIP
    >>> app = trm_otel.instrument_asgi(app)                              # doctest: +SKIP
    >>> # GET /items/42 and GET /items/43 are both the span "GET /items/{item_id}"

This is opentelemetry-instrumentation-asgi's ``OpenTelemetryMiddleware``
with one change: the span name and ``http.route`` come from the app's own
routes (the template it matched, through ``Mount`` and ``Host`` prefixes),
never from the raw path, so every product page is one endpoint and the
number of series stays bounded. A request no route matches (a 404) is named
by its method alone, as the semantic conventions say.

On a Starlette (or FastAPI) app the middleware goes *outside* Starlette's
error middleware, so an unhandled exception is seen as the 500 the client
got; the app object itself is returned, instrumented in place. Any other
ASGI callable is wrapped and the wrapper returned (it has no routes, so its
spans are named by method). Instrumenting twice is harmless: a request is
traced once however many instrumented apps it passes (a mounted sub-app,
or an app instrumented both by hand and by ``trm-otel instrument``), and an
app that already has an ``OpenTelemetryMiddleware`` (added by hand, or by
opentelemetry-instrumentation-starlette) is left as it is.

:class:`StarletteInstrumentor` does the same for every Starlette app a
program creates; it is the ``opentelemetry_instrumentor`` entry point
``trm_otel_starlette`` that ``opentelemetry-instrument`` and
``trm-otel instrument`` load (disable it with
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=trm_otel_starlette``). URLs listed
in ``OTEL_PYTHON_STARLETTE_EXCLUDED_URLS`` (or ``OTEL_PYTHON_EXCLUDED_URLS``)
are not traced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.util.http import ExcludeList, get_excluded_urls, sanitize_method

__all__ = ["StarletteInstrumentor", "instrument_asgi", "route_template", "span_details"]

_logger = logging.getLogger(__name__)

ASGIApp = Callable[..., Any]
Scope = dict[str, Any]

# Set in the scope by the outermost instrumented app: inner ones let the request through untraced.
_TRACED = "trm_otel.traced"
# The template span_details found, kept in the scope for _FinalRoute.
_ROUTE = "trm_otel.route"
# Set on a Starlette app instrumented with instrument_asgi(), so the class-wide patch leaves it alone.
_MARK = "_trm_otel_instrumented"
_SKIPPED_SPANS: tuple[str, ...] = ("receive", "send")


def route_template(routes: Sequence[Any], scope: Scope) -> str | None:
    """The template of the route ``scope`` goes to (``"/shop/items/{item_id}"``), or ``None``.

    Follows Starlette's routing: the first full match wins, else the first
    partial one (right path, other method: the 405). A ``Mount`` adds its
    prefix to what matches inside it; a mounted app without routes (static
    files) is its mount's ``"/static/{path}"``.
    """
    from starlette.routing import Host, Match, Mount

    partial: str | None = None
    for route in routes:
        try:
            match, child_scope = route.matches(scope)
        except Exception:  # noqa: BLE001 - a custom route's matcher must not break the request
            continue
        if match == Match.NONE:
            continue
        if isinstance(route, (Mount, Host)):
            # path_format is the path without convertors ({id:int} -> {id}); a Mount's ends in "/{path}".
            prefix = route.path_format[: -len("/{path}")] if isinstance(route, Mount) else ""
            inner = route.routes
            if inner:
                found = route_template(inner, {**scope, **child_scope})
                template = None if found is None else f"{prefix}{found}"
            else:
                template = route.path_format if isinstance(route, Mount) else None
        else:
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if match == Match.FULL:
            return template
        if partial is None:
            partial = template
    return partial


def span_details(app: Any) -> Callable[[Scope], tuple[str, dict[str, str]]]:
    """A ``default_span_details`` callback for ``OpenTelemetryMiddleware``: ``("GET /items/{id}", {...})``.

    ``app`` is anything with ``routes`` (a Starlette or FastAPI app, a
    router); the routes are read at each request, so routes added later
    count. The route includes the server's ``root_path`` (the prefix a proxy
    strips), as the full path does.
    """

    def details(scope: Scope) -> tuple[str, dict[str, str]]:
        routes = getattr(app, "routes", None)
        template = route_template(routes, scope) if routes else None
        if routes is not None:
            scope[_ROUTE] = template  # for _FinalRoute, once the app has answered
        route = None if template is None else f"{scope.get('root_path', '')}{template}"
        attributes = {"http.route": route} if route is not None else {}
        if scope.get("type") == "websocket":
            return route or "websocket", attributes
        method = sanitize_method(str(scope.get("method", "")).strip()) or "HTTP"
        if method == "_OTHER":
            method = "HTTP"
        return (method if route is None else f"{method} {route}"), attributes

    return details


class _Template:
    """What the ASGI middleware reads from ``scope["route"]`` to label its duration metric."""

    def __init__(self, path_format: str) -> None:
        self.path_format = path_format


class _FinalRoute:
    """Leaves the scope telling the middleware's duration metric the route template, not the path.

    The middleware labels ``http.server.duration`` (old conventions) with
    ``scope["root_path"] + scope["route"].path_format`` as the app left them;
    inside a ``Mount("/users/{user}")`` Starlette leaves ``root_path`` as the
    matched path (``/users/ann``), one series per user. Restoring the server's
    ``root_path`` and the whole template keeps the metric on the span's key.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        root_path = scope.get("root_path", "")
        try:
            await self.app(scope, receive, send)
        finally:
            if _ROUTE in scope:
                template = scope[_ROUTE]
                scope["root_path"] = root_path
                scope["route"] = _Template(template) if template is not None else None


class _Traced:
    """Traces a request unless an outer instrumented app already does."""

    def __init__(self, app: ASGIApp, traced: ASGIApp) -> None:
        self.app = app
        self.traced = traced

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket") or scope.get(_TRACED):
            await self.app(scope, receive, send)
            return
        scope[_TRACED] = True
        await self.traced(scope, receive, send)


def _wrap(
    inner: ASGIApp,
    routes_of: Any,
    tracer_provider: Any,
    meter_provider: Any,
    excluded_urls: ExcludeList | str | None,
) -> _Traced:
    if excluded_urls is None:
        excluded_urls = get_excluded_urls("STARLETTE")
    middleware = OpenTelemetryMiddleware(
        _FinalRoute(inner),
        excluded_urls=excluded_urls,
        default_span_details=span_details(routes_of),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        exclude_spans=list(_SKIPPED_SPANS),
    )
    return _Traced(inner, middleware)


def _traced_already(stack: Any) -> bool:
    """Whether a built middleware stack already has an ``OpenTelemetryMiddleware`` (added by hand or by
    opentelemetry-instrumentation-starlette): a second one would trace every request twice."""
    for _ in range(32):
        if isinstance(stack, OpenTelemetryMiddleware):
            return True
        stack = getattr(stack, "app", None)
        if stack is None:
            return False
    return False


def _is_starlette(app: Any) -> bool:
    try:
        from starlette.applications import Starlette
    except ImportError:  # pragma: no cover - starlette is a dependency
        return False
    return isinstance(app, Starlette)


def instrument_asgi(
    app: Any,
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    excluded_urls: str | None = None,
) -> Any:
    """Trace every request of ``app``, spans named ``"METHOD /route/{param}"``; returns the app to serve.

    A Starlette or FastAPI app is instrumented in place and returned; any
    other ASGI app is wrapped and the wrapper returned. The providers default
    to the global ones (what :func:`trm_otel.configure` installs);
    ``excluded_urls`` is a comma-separated list of URL regexes not to trace
    (default: ``OTEL_PYTHON_STARLETTE_EXCLUDED_URLS``).
    """
    if not _is_starlette(app):
        return _wrap(app, app, tracer_provider, meter_provider, excluded_urls)
    if getattr(app, _MARK, False):
        return app
    setattr(app, _MARK, True)
    build = type(app).build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        stack = build(app)
        if _traced_already(stack):
            _logger.warning("instrument_asgi: the app already has an OpenTelemetryMiddleware; leaving it as it is")
            return stack
        return _wrap(stack, app, tracer_provider, meter_provider, excluded_urls)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    app.middleware_stack = None  # rebuilt, with the middleware, at the next request
    return app


class StarletteInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments every Starlette (and FastAPI) app, as :func:`instrument_asgi` does one.

        >>> StarletteInstrumentor().instrument()        # doctest: +SKIP

    Loaded by ``opentelemetry-instrument`` through the entry point
    ``trm_otel_starlette``. It covers apps created before ``instrument()``
    too, as long as they have not served a request yet.
    """

    _original: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("starlette >= 0.13",)

    def _instrument(self, **kwargs: Any) -> None:
        from starlette.applications import Starlette

        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")
        original = Starlette.build_middleware_stack
        StarletteInstrumentor._original = original

        def build_middleware_stack(self: Any) -> ASGIApp:
            stack = original(self)
            if getattr(self, _MARK, False):
                return stack  # instrument_asgi() wraps it itself
            if _traced_already(stack):
                _logger.debug("Starlette app traced by another OpenTelemetryMiddleware: not instrumenting it")
                return stack
            return _wrap(stack, self, tracer_provider, meter_provider, None)

        Starlette.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]

    def _uninstrument(self, **kwargs: Any) -> None:
        from starlette.applications import Starlette

        if StarletteInstrumentor._original is not None:
            Starlette.build_middleware_stack = StarletteInstrumentor._original  # type: ignore[method-assign]
            StarletteInstrumentor._original = None
