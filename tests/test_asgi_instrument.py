"""``instrument_asgi`` and the Starlette instrumentor on real Starlette apps and the real SDK.

Every request goes through the app over httpx's ASGI transport; spans land
in the SDK's in-memory exporter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route

import trm_otel
from trm_otel.asgi_instrument import StarletteInstrumentor, instrument_asgi


async def ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def boom(request: Any) -> PlainTextResponse:
    raise RuntimeError("boom")


async def static(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await PlainTextResponse("file")(scope, receive, send)


def shop() -> Starlette:
    api = Starlette(routes=[Route("/orders/{order_id:int}", ok)])
    return Starlette(
        routes=[
            Route("/items/{item_id}", ok),
            Route("/items", ok, methods=["POST"]),
            Route("/boom", boom),
            Mount("/users/{user}", routes=[Route("/cart", ok), Mount("/wish", routes=[Route("/{n}", ok)])]),
            Mount("/api", app=api),
            Mount("/static", app=static),
            Host("admin.example.com", app=Starlette(routes=[Route("/stats", ok)])),
        ]
    )


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def call(app: Any, *requests: tuple[str, str], host: str = "shop.example.com") -> list[int]:
    async def run() -> list[int]:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            return [(await client.request(method, path)).status_code for method, path in requests]

    return asyncio.run(run())


def server_spans(exporter: InMemorySpanExporter) -> list[tuple[str, Any]]:
    spans = exporter.get_finished_spans()
    assert all(s.kind == SpanKind.SERVER for s in spans), [(s.name, s.kind) for s in spans]
    return [(s.name, (s.attributes or {}).get("http.route")) for s in spans]


def test_spans_are_named_by_the_route_template(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    app = instrument_asgi(shop(), tracer_provider=provider)
    statuses = call(
        app,
        ("GET", "/items/1"),
        ("GET", "/items/2"),
        ("POST", "/items"),
        ("DELETE", "/items/3"),
        ("GET", "/users/ann/cart"),
        ("GET", "/users/bob/wish/7"),
        ("GET", "/api/orders/12"),
        ("GET", "/static/css/site.css"),
        ("GET", "/nothing/here"),
        ("BREW", "/items/4"),
    )
    assert statuses == [200, 200, 200, 405, 200, 200, 200, 200, 404, 405]
    assert server_spans(exporter) == [
        ("GET /items/{item_id}", "/items/{item_id}"),
        ("GET /items/{item_id}", "/items/{item_id}"),
        ("POST /items", "/items"),
        ("DELETE /items/{item_id}", "/items/{item_id}"),
        ("GET /users/{user}/cart", "/users/{user}/cart"),
        ("GET /users/{user}/wish/{n}", "/users/{user}/wish/{n}"),
        ("GET /api/orders/{order_id}", "/api/orders/{order_id}"),
        ("GET /static/{path}", "/static/{path}"),
        ("GET", None),
        ("HTTP /items/{item_id}", "/items/{item_id}"),
    ]


def test_host_routes_are_matched_by_host(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    app = instrument_asgi(shop(), tracer_provider=provider)
    assert call(app, ("GET", "/stats"), host="admin.example.com") == [200]
    assert server_spans(exporter) == [("GET /stats", "/stats")]


def test_an_unhandled_exception_is_the_500_the_client_saw(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    app = instrument_asgi(shop(), tracer_provider=provider)
    assert call(app, ("GET", "/boom")) == [500]
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET /boom"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes is not None and span.attributes["http.status_code"] == 500


def test_instrumenting_twice_traces_once(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    app = shop()
    assert instrument_asgi(app, tracer_provider=provider) is app
    assert instrument_asgi(app, tracer_provider=provider) is app
    call(app, ("GET", "/api/orders/1"))  # passes through the instrumented sub-app too
    assert server_spans(exporter) == [("GET /api/orders/{order_id}", "/api/orders/{order_id}")]


@pytest.fixture
def instrumentor(provider: TracerProvider) -> Iterator[StarletteInstrumentor]:
    instrumentor = StarletteInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield instrumentor
    instrumentor.uninstrument()


def test_the_instrumentor_covers_every_app(exporter: InMemorySpanExporter, instrumentor: StarletteInstrumentor) -> None:
    call(shop(), ("GET", "/items/9"), ("GET", "/api/orders/3"))
    assert server_spans(exporter) == [
        ("GET /items/{item_id}", "/items/{item_id}"),
        ("GET /api/orders/{order_id}", "/api/orders/{order_id}"),
    ]
    instrumentor.uninstrument()
    exporter.clear()
    call(shop(), ("GET", "/items/9"))
    assert exporter.get_finished_spans() == ()


def test_the_instrumentor_and_instrument_asgi_together_trace_once(
    exporter: InMemorySpanExporter, provider: TracerProvider, instrumentor: StarletteInstrumentor
) -> None:
    call(instrument_asgi(shop(), tracer_provider=provider), ("GET", "/items/1"))
    assert server_spans(exporter) == [("GET /items/{item_id}", "/items/{item_id}")]


def test_a_plain_asgi_app_is_wrapped_and_named_by_method(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    wrapped = instrument_asgi(static, tracer_provider=provider)
    assert wrapped is not static
    call(wrapped, ("GET", "/a/b/c"))
    assert server_spans(exporter) == [("GET", None)]


def test_excluded_urls_are_not_traced(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    app = instrument_asgi(shop(), tracer_provider=provider, excluded_urls="/static/.*")
    call(app, ("GET", "/static/x.js"), ("GET", "/items/1"))
    assert [name for name, _ in server_spans(exporter)] == ["GET /items/{item_id}"]


def test_configure_and_instrument_asgi_give_percentiles_per_template() -> None:
    telemetry = trm_otel.configure(service_name="shop", system_metrics=False, set_global=False)
    try:
        app = trm_otel.instrument_asgi(
            shop(), tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        call(app, *[("GET", f"/items/{i}") for i in range(50)], *[("GET", f"/users/u{i}/cart") for i in range(10)])
        views = {v.endpoint: v.count for v in telemetry.latency()}
        assert views == {"GET /items/{item_id}": 50, "GET /users/{user}/cart": 10}
    finally:
        telemetry.shutdown()


def test_the_duration_metric_is_labelled_by_template_too(provider: TracerProvider) -> None:
    """Inside ``Mount("/users/{user}")`` the plain middleware would label the metric ``/users/ann/cart``."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    app = instrument_asgi(shop(), tracer_provider=provider, meter_provider=meters)
    call(app, ("GET", "/users/ann/cart"), ("GET", "/users/bob/cart"), ("GET", "/items/1"), ("GET", "/nope/1"))
    data = reader.get_metrics_data()
    assert data is not None
    labels = sorted(
        (point.attributes.get("http.target", ""), point.count)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name in ("http.server.duration", "http.server.request.duration")
        for point in metric.data.data_points
    )
    assert labels == [("", 1), ("/items/{item_id}", 1), ("/users/{user}/cart", 2)]


def test_an_app_with_its_own_otel_middleware_is_left_alone(
    exporter: InMemorySpanExporter, provider: TracerProvider, instrumentor: StarletteInstrumentor
) -> None:
    """As opentelemetry-instrumentation-starlette leaves it: one middleware, one span per request."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette.middleware import Middleware

    app = Starlette(
        routes=[Route("/items/{item_id}", ok)],
        middleware=[Middleware(OpenTelemetryMiddleware, tracer_provider=provider, exclude_spans=["receive", "send"])],
    )
    call(app, ("GET", "/items/1"))
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /items/1"]  # its naming, traced once
