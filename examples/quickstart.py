"""Percentiles in-process: trace a few requests, then read P50/P95/P99 back.

Run it with ``python examples/quickstart.py``. It needs nothing but trm-otel:
spans go through the OpenTelemetry SDK into trm-otel's span processor, and
``telemetry.latency()`` answers from the per-window histograms.
"""

from __future__ import annotations

import random
import time

import trm_otel
from opentelemetry.trace import Status, StatusCode


def main() -> None:
    telemetry = trm_otel.configure(service_name="shop", slo={"default": {"p95_ms": 250}})
    tracer = telemetry.tracer_provider.get_tracer("quickstart")
    rng = random.Random(7)
    now = time.time_ns()
    for i in range(5_000):
        endpoint = rng.choice(["GET /products", "GET /cart", "POST /checkout"])
        base_ms = {"GET /products": 20, "GET /cart": 60, "POST /checkout": 180}[endpoint]
        duration_ns = int(rng.lognormvariate(0, 0.5) * base_ms * 1e6)
        start = now - duration_ns - i * 1_000_000
        span = tracer.start_span(endpoint, start_time=start)
        if endpoint == "POST /checkout" and rng.random() < 0.03:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start + duration_ns)

    print(f"{'endpoint':<16}{'count':>7}{'p50':>9}{'p95':>9}{'p99':>9}{'apdex':>7}  level")
    for view in telemetry.latency(range="5m"):
        print(
            f"{view.endpoint:<16}{view.count:>7}{view.p50_ms:>9.1f}{view.p95_ms:>9.1f}"
            f"{view.p99_ms:>9.1f}{view.apdex:>7.2f}  {view.level}"
        )
    for bottleneck in telemetry.bottlenecks(range="5m", limit=3):
        print(f"bottleneck [{bottleneck.kind}] {bottleneck.summary}")
    telemetry.shutdown()


if __name__ == "__main__":
    main()
