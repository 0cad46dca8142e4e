"""Span names for Starlette apps under the OpenTelemetry ASGI middleware.

    >>> OpenTelemetryMiddleware(app, default_span_details=route_span_details(app))  # doctest: +SKIP

The ASGI middleware runs before routing, so on its own it names spans after
the method only (or the raw path), which would make every product page its
own endpoint. Matching the app's routes first gives the template instead:
``GET /products/{id}``, as framework instrumentations name them.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import Match, Route
from starlette.types import Scope

__all__ = ["route_span_details"]


def route_span_details(app: Starlette) -> Callable[[Scope], tuple[str, dict[str, str]]]:
    """A ``default_span_details`` callback naming spans ``"METHOD /route/{param}"``."""

    def details(scope: Scope) -> tuple[str, dict[str, str]]:
        method = scope.get("method", "HTTP")
        for route in app.routes:
            if isinstance(route, Route) and route.matches(scope)[0] == Match.FULL:
                return f"{method} {route.path}", {"http.route": route.path}
        return method, {}

    return details
