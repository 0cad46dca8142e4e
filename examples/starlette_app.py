"""A Starlette app instrumented with trm-otel, sending its traces and metrics to the daemon.

Shows ``trm_otel.instrument_asgi(app)``: 150 requests to 90 different URLs
become three endpoints, named by route template (``GET /items/{item_id}``),
and the daemon answers P50/P95/P99 for each at ``/api/v1/latency``.

Run it with ``python examples/starlette_app.py``: it starts a daemon
(``trm-otel serve --config examples/configs/local.yaml``), serves the app
with uvicorn on a free port, sends it real HTTP requests and prints what the
daemon computed. The same app needs no code at all under
``trm-otel instrument -- python app.py`` (see docs/guide.md).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import trm_otel
from _daemon import running_daemon


async def item(request: Request) -> JSONResponse:
    await asyncio.sleep(random.uniform(0.001, 0.004))
    return JSONResponse({"id": request.path_params["item_id"]})


async def search(request: Request) -> JSONResponse:
    await asyncio.sleep(random.uniform(0.010, 0.030))  # the slow one
    return JSONResponse({"q": request.query_params.get("q", ""), "hits": []})


async def add_to_cart(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.path_params["user"], "added": True}, status_code=201)


app = Starlette(
    routes=[
        Route("/items/{item_id}", item),
        Route("/search", search),
        Route("/users/{user}/cart", add_to_cart, methods=["POST"]),
    ]
)


def serve(app: Starlette) -> tuple[uvicorn.Server, str]:
    """Uvicorn in a background thread on a free port; returns the server and its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    with running_daemon("configs/local.yaml") as daemon:
        telemetry = trm_otel.configure(
            service_name="catalog", otlp_endpoint=daemon.grpc_endpoint, system_metrics=False
        )
        trm_otel.instrument_asgi(app)
        server, url = serve(app)

        with httpx.Client(base_url=url) as client:
            for i in range(100):
                client.get(f"/items/{i % 50}")
            for i in range(30):
                client.get("/search", params={"q": f"term{i}"})
            for i in range(20):
                client.post(f"/users/u{i % 10}/cart")
        server.should_exit = True
        telemetry.force_flush()  # send every span now instead of at the next batch

        deadline = time.monotonic() + 30
        views: list[dict] = []
        while time.monotonic() < deadline:
            views = httpx.get(f"{daemon.api_url}/api/v1/latency", params={"service": "catalog"}).json()["views"]
            if sum(v["count"] for v in views) >= 150:
                break
            time.sleep(0.2)
        telemetry.shutdown()

    print(f"150 requests to 90 distinct URLs -> {len(views)} endpoints at the daemon:")
    print(f"{'endpoint':<28}{'count':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  level")
    for view in sorted(views, key=lambda v: v["endpoint"]):
        print(
            f"{view['endpoint']:<28}{view['count']:>6}{view['p50_ms']:>9.1f}"
            f"{view['p95_ms']:>9.1f}{view['p99_ms']:>9.1f}  {view['level']}"
        )


if __name__ == "__main__":
    main()
