"""More load than the daemon can take: retryable answers, bounded memory, nothing acknowledged lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import httpx
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from .daemon_process import DaemonProcess

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def request_bytes(spans: int, seed: int) -> bytes:
    now = time.time_ns()
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "overload"
    scope = resource_spans.scope_spans.add()
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id = (seed * 1_000_003 + i + 1).to_bytes(16, "big")
        span.span_id = (seed * 1_000_003 + i + 1).to_bytes(8, "big")
        span.name = f"op{i % 10}"
        span.kind = trace_pb2.Span.SPAN_KIND_SERVER
        span.start_time_unix_nano = now - 5_000_000
        span.end_time_unix_nano = now
    return request.SerializeToString()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_overload_is_refused_retryably_and_every_acknowledged_span_counts(tmp_path: Path) -> None:
    # A small queue and a deliberately slow consumer (the debug exporter printing
    # every span) make the daemon unable to keep up with four eager senders.
    config = {
        "exporters": {"debug": {"verbosity": "detailed"}},
        "service": {
            "queue": {"max_pending_items": 2000},
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["latency"], "exporters": ["debug"]}},
        },
    }
    with DaemonProcess(tmp_path, config) as daemon:
        payloads = [request_bytes(500, seed) for seed in range(8)]
        results = {"ok": 0, "unavailable": 0, "retry_info": 0, "other": []}
        lock = threading.Lock()
        peak_rss = [0.0]

        def sender(index: int) -> None:
            with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
                export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
                for n in range(25):
                    try:
                        export(payloads[(index + n) % len(payloads)], timeout=30)
                        with lock:
                            results["ok"] += 1
                    except grpc.RpcError as error:
                        with lock:
                            if error.code() == grpc.StatusCode.UNAVAILABLE:
                                results["unavailable"] += 1
                                details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
                                if details and status_pb2.Status.FromString(details).details:
                                    results["retry_info"] += 1
                            else:
                                results["other"].append(error.code())

        def watch_memory() -> None:
            while any(t.is_alive() for t in senders):
                peak_rss[0] = max(peak_rss[0], rss_mib(daemon.process.pid))
                time.sleep(0.05)

        senders = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
        for thread in senders:
            thread.start()
        watcher = threading.Thread(target=watch_memory)
        watcher.start()
        for thread in senders:
            thread.join()
        watcher.join()

        assert results["other"] == []
        assert results["unavailable"] > 0, "the daemon was expected to be overloaded"
        assert results["retry_info"] == results["unavailable"], "every refusal carries RetryInfo"
        acknowledged = results["ok"] * 500
        views = daemon.wait_for_count(acknowledged, timeout=60, service="overload")
        time.sleep(1.0)
        views = daemon.get("/api/v1/latency", service="overload")["views"]
        assert sum(v["count"] for v in views) == acknowledged
        assert peak_rss[0] < 400, f"peak RSS {peak_rss[0]:.0f} MiB"
        assert httpx.get(f"{daemon.api_url}/readyz").status_code == 200
