"""Alert rules and receivers: slow spans go in, a firing alert arrives at a webhook.

Shows ``examples/configs/alerting.yaml`` (route + webhook receiver) with its
rule file ``examples/configs/alerting-rules.yaml`` (``SlowCheckout``: P95 of
checkout over 250 ms). The program runs a small HTTP server standing in for
your webhook endpoint, starts the daemon on that config, sends it checkout
spans of ~400 ms through the plain OpenTelemetry SDK (any OTLP sender
would do), and prints the Alertmanager-style notification when it arrives,
then the same alert as ``GET /api/v1/alerts`` shows it.

Run it with ``python examples/alerting.py`` (about 15 s with the config's
default timings; the tests set ``TRM_EXAMPLE_EVALUATION_INTERVAL=1s`` and
``TRM_EXAMPLE_GROUP_WAIT=1s``).
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from _daemon import running_daemon


def webhook_server() -> tuple[ThreadingHTTPServer, queue.Queue[dict[str, Any]]]:
    """An HTTP server on a free port that puts every JSON body POSTed to it on a queue."""
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.put(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def send_slow_checkouts(grpc_endpoint: str, count: int = 60) -> None:
    """``count`` POST /checkout spans of 300-500 ms, ending now, exported by OTLP/gRPC."""
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("examples.alerting")
    now = time.time_ns()
    for i in range(count):
        duration_ns = int(random.uniform(300, 500) * 1e6)
        end = now - i * 5_000_000
        tracer.start_span("POST /checkout", start_time=end - duration_ns).end(end_time=end)
    provider.shutdown()  # flushes


def main() -> None:
    server, received = webhook_server()
    webhook = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    with running_daemon("configs/alerting.yaml", env={"WEBHOOK_URL": webhook}) as daemon:
        send_slow_checkouts(daemon.grpc_endpoint)
        print(f"sent 60 slow POST /checkout spans; waiting for the alert at {webhook} ...")
        started = time.monotonic()
        notification = received.get(timeout=90)
        print(f"notification after {time.monotonic() - started:.1f} s: status={notification['status']}"
              f" receiver={notification['receiver']}")
        for alert in notification["alerts"]:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
            print(f"  {alert['status']}: {labels}")
            print(f"  summary: {alert['annotations']['summary']}")
        alerts = httpx.get(f"{daemon.api_url}/api/v1/alerts", params={"state": "firing"}).json()["alerts"]
        print(f"GET /api/v1/alerts?state=firing: {[a['labels']['alertname'] for a in alerts]}")
    server.shutdown()


if __name__ == "__main__":
    main()
