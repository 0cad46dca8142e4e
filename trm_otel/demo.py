"""The demo: a small instrumented shop and the traffic that keeps it busy.

    $ trm-otel serve --demo      # daemon + shop + traffic, data within seconds
    $ trm-otel demo --otlp-endpoint 127.0.0.1:4317   # shop + traffic into a running daemon

The shop is an ordinary Starlette app instrumented the way a user would do
it (OpenTelemetry ASGI middleware, SDK tracer provider, OTLP gRPC exporter),
so everything the daemon shows has travelled the real path: spans, OTLP
over loopback, receiver, aggregation. Its endpoints are chosen to light up
every view: a fast list, a cart, a slow checkout whose time is mostly one
child call (a dominant-child bottleneck and an SLO breach), and a search that
fails now and then (an error hotspot).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import httpx
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trm_otel.asgi_instrument import span_details
from trm_otel.asgi_server import EmbeddedServer

__all__ = ["DEMO_SERVICE", "build_shop", "run_traffic", "serve_shop"]

_logger = logging.getLogger(__name__)

DEMO_SERVICE = "demo-shop"

#: (method, path to request, weight) of the generated traffic
TRAFFIC: tuple[tuple[str, str, int], ...] = (
    ("GET", "/products", 40),
    ("GET", "/products/{id}", 25),
    ("POST", "/cart", 15),
    ("GET", "/search", 12),
    ("POST", "/checkout", 8),
)


def _routes(tracer: trace.Tracer, rng: random.Random) -> list[Route]:
    async def pause(median_ms: float, sigma: float = 0.4) -> None:
        await asyncio.sleep(rng.lognormvariate(0, sigma) * median_ms / 1000)

    async def products(request: Request) -> JSONResponse:
        await pause(8)
        return JSONResponse({"products": [{"id": i, "name": f"item {i}"} for i in range(10)]})

    async def product(request: Request) -> JSONResponse:
        with tracer.start_as_current_span("SELECT products", kind=trace.SpanKind.CLIENT):
            await pause(6)
        await pause(3)
        return JSONResponse({"id": request.path_params["id"]})

    async def cart(request: Request) -> JSONResponse:
        await pause(20)
        return JSONResponse({"items": 3})

    async def search(request: Request) -> JSONResponse:
        await pause(35, 0.6)
        if rng.random() < 0.08:
            return JSONResponse({"error": "search backend timed out"}, status_code=500)
        return JSONResponse({"hits": rng.randint(0, 50)})

    async def checkout(request: Request) -> JSONResponse:
        with tracer.start_as_current_span("SELECT cart", kind=trace.SpanKind.CLIENT):
            await pause(10)
        with tracer.start_as_current_span("payment.authorize", kind=trace.SpanKind.CLIENT):
            await pause(320, 0.5)
        await pause(15)
        return JSONResponse({"order": rng.randint(1000, 9999)})

    return [
        Route("/products", products),
        Route("/products/{id}", product),
        Route("/cart", cart, methods=["POST"]),
        Route("/search", search),
        Route("/checkout", checkout, methods=["POST"]),
    ]


def build_shop(tracer_provider: TracerProvider, *, seed: int | None = None) -> OpenTelemetryMiddleware:
    """The shop as an ASGI app, traced through ``tracer_provider``."""
    rng = random.Random(seed)
    app = Starlette(routes=_routes(tracer_provider.get_tracer("demo-shop"), rng))
    return OpenTelemetryMiddleware(
        app,
        tracer_provider=tracer_provider,
        default_span_details=span_details(app),
        exclude_spans=["receive", "send"],
    )


def shop_tracer_provider(otlp_endpoint: str) -> TracerProvider:
    """The shop's own SDK setup: spans out by OTLP gRPC, as any service would."""
    provider = TracerProvider(resource=Resource.create({"service.name": DEMO_SERVICE}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True), schedule_delay_millis=1000)
    )
    return provider


async def run_traffic(
    base_url: str,
    stop: asyncio.Event,
    *,
    rps: float = 25.0,
    seed: int | None = None,
    on_error: Callable[[BaseException], Awaitable[None]] | None = None,
) -> int:
    """Send weighted requests at about ``rps`` until ``stop`` is set; returns how many."""
    rng = random.Random(seed)
    weights = [w for *_, w in TRAFFIC]
    sent = 0
    pending: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def one(method: str, path: str) -> None:
            try:
                await client.request(method, path.replace("{id}", str(rng.randint(1, 500))))
            except httpx.HTTPError as error:
                if on_error is not None:
                    await on_error(error)

        while not stop.is_set():
            method, path, _ = rng.choices(TRAFFIC, weights)[0]
            task = asyncio.create_task(one(method, path))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=rng.expovariate(rps))
            except asyncio.TimeoutError:
                pass
        if pending:
            await asyncio.wait(pending, timeout=10)
    return sent


async def serve_shop(otlp_endpoint: str, stop: asyncio.Event, *, host: str = "127.0.0.1", port: int = 8081,
                     rps: float = 25.0) -> None:
    """Run the shop on ``host:port`` with traffic until ``stop`` is set, then flush its spans."""
    provider = shop_tracer_provider(otlp_endpoint)
    server = EmbeddedServer(build_shop(provider), f"{host}:{port}", name="demo-shop")
    bound_port = await server.start()
    _logger.info("demo shop on http://%s:%d sending spans to %s (%s rps)", host, bound_port, otlp_endpoint, rps)
    try:
        await run_traffic(f"http://{host}:{bound_port}", stop, rps=rps)
    finally:
        await server.stop()
        await asyncio.to_thread(provider.shutdown)
