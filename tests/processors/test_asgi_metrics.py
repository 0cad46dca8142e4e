"""Duration histograms from the real ASGI instrumentation become latency views."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from trm_otel.processors import LatencyAggregator, PercentileMetricReader

# The instrumentation reads OTEL_SEMCONV_STABILITY_OPT_IN once per process,
# so each mode runs in a fresh interpreter.
SCRIPT = textwrap.dedent(
    """
    import asyncio, json
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.trace import NoOpTracerProvider
    import trm_otel

    class Route:
        path_format = "/items/{id}"

    async def app(scope, receive, send):
        status = 500 if scope["path"].endswith("/13") else 200
        await asyncio.sleep(0.002)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(middleware, i):
        scope = {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http",
                 "path": f"/items/{i}", "raw_path": f"/items/{i}".encode(), "query_string": b"",
                 "root_path": "", "headers": [], "server": ("127.0.0.1", 8000),
                 "client": ("127.0.0.1", 5000), "route": Route()}
        messages = [{"type": "http.request", "body": b"", "more_body": False}]
        async def receive():
            return messages.pop() if messages else {"type": "http.disconnect"}
        async def send(message):
            pass
        await middleware(scope, receive, send)

    telemetry = trm_otel.configure(service_name="api", set_global=False)
    # No tracing: only the meters feed trm-otel here.
    middleware = OpenTelemetryMiddleware(app, tracer_provider=NoOpTracerProvider(),
                                         meter_provider=telemetry.meter_provider)
    async def main():
        for i in range(20):
            await call(middleware, i)
    asyncio.run(main())
    views = [v.__class__.__name__ and {f: getattr(v, f) for f in v.__dataclass_fields__}
             for v in telemetry.latency()]
    telemetry.shutdown()
    print(json.dumps(views))
    """
)


@pytest.mark.parametrize(
    ("mode", "endpoint"),
    [
        ("", "GET /items/{id}"),  # old conventions: ms, route in http.target
        ("http", "GET"),  # stable: seconds; plain ASGI sets no http.route (frameworks do)
        ("http/dup", "GET /items/{id}"),  # both recorded: counted once, the routed one used
    ],
    ids=["old-ms", "stable-s", "dup"],
)
def test_asgi_request_durations_are_counted_once_per_request(mode: str, endpoint: str) -> None:
    env = {**os.environ, "OTEL_SEMCONV_STABILITY_OPT_IN": mode}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (view,) = json.loads(out.stdout)
    assert (view["service"], view["endpoint"]) == ("api", endpoint)
    assert (view["count"], view["errors"]) == (20, 1)
    assert 2.0 <= view["p50_ms"] < 100.0


def test_explicit_bucket_histograms_give_approximate_views() -> None:
    reader = PercentileMetricReader(LatencyAggregator(), interval_s=None)
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "api"}),
        views=[
            View(
                instrument_name="http.server.request.duration",
                aggregation=ExplicitBucketHistogramAggregation([0.005, 0.01, 0.025, 0.05, 0.1, 0.25]),
            )
        ],
    )
    histogram = provider.get_meter("asgi").create_histogram("http.server.request.duration", unit="s")
    values = np.linspace(0.011, 0.024, 50)
    for value in values.tolist():
        histogram.record(value, {"http.request.method": "POST", "http.route": "/orders"})
    reader.collect()
    (data,) = reader.aggregator.endpoints(300)
    assert data.ok.approximate
    assert data.ok.count == 50
    p50 = data.ok.quantile(0.5)
    assert 11.0 <= p50 <= 24.0, "the estimate stays inside the bucket the values fell in"
    provider.shutdown()
