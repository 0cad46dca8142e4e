"""Storage through the real daemon: SIGKILL and restart, back-fill, long ranges."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from .daemon_process import DaemonProcess

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
STABLE = ("count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms")


def request(service: str, end_times_ns: np.ndarray, durations_ms: np.ndarray, first_id: int = 1) -> bytes:
    message = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    scope = resource_spans.scope_spans.add()
    for i, (end, duration) in enumerate(zip(end_times_ns.tolist(), durations_ms.tolist())):
        span = scope.spans.add()
        span.trace_id = (first_id + i).to_bytes(16, "big")
        span.span_id = (first_id + i).to_bytes(8, "big")
        span.name = "GET /stored"
        span.kind = trace_pb2.Span.SPAN_KIND_SERVER
        span.start_time_unix_nano = int(end) - int(duration * 1e6)
        span.end_time_unix_nano = int(end)
        if i % 10 == 0:
            span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    return message.SerializeToString()


def export(endpoint: str, payload: bytes) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        response = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)(payload, timeout=30)
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(response).partial_success
    assert partial.rejected_spans == 0, partial.error_message


def storage_config(tmp_path: Path) -> dict:
    return {"storage": {"path": str(tmp_path / "data"), "flush_interval": "1s"}}


def view(daemon: DaemonProcess, service: str, range_: str = "10m") -> dict:
    (found,) = daemon.get("/api/v1/latency", service=service, endpoint="GET /stored", range=range_)["views"]
    return {k: found[k] for k in STABLE}


def wait_flushed(daemon: DaemonProcess, through_s: float, timeout: float = 20.0) -> None:
    """Until the daemon has written windows up to ``through_s`` (grace of two 1 s windows)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and time.time() < through_s + 3.5:
        time.sleep(0.2)


def test_sigkill_after_a_flush_loses_nothing_that_was_flushed(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    now = time.time_ns()
    ends = now - 30_000_000_000 + np.arange(2000) * 10_000_000  # spread over 20 s, all closed windows
    durations = rng.lognormal(np.log(40), 0.7, 2000)
    config = storage_config(tmp_path)
    first = DaemonProcess(tmp_path, config)
    first.start()
    export(first.grpc_endpoint, request("crash", ends, durations))
    first.wait_for_count(2000, service="crash", range="10m")
    before = view(first, "crash")
    wait_flushed(first, time.time())
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    with DaemonProcess(tmp_path, config) as second:
        after = view(second, "crash")
        answer = second.get("/api/v1/query", q='p99(traces.span.metrics.duration{service.name="crash"}[10m])')
    assert after == before
    (sample,) = answer["data"]["result"]
    assert round(float(sample["value"][1]), 3) == after["p99_ms"], "a query over stored windows equals the view"
    assert after["count"] == 2000 and after["errors"] == 200
    truth = np.sort(durations)[int(np.ceil(0.99 * 2000)) - 1]
    assert after["p99_ms"] == pytest.approx(truth, rel=0.01)


def test_sigkill_during_ingest_and_flushes_leaves_a_consistent_database(tmp_path: Path) -> None:
    config = storage_config(tmp_path)
    first = DaemonProcess(tmp_path, config)
    first.start()
    stop = threading.Event()

    def ingest() -> None:
        n = 0
        while not stop.is_set():
            ends = np.full(500, time.time_ns() - 2_000_000_000) - np.arange(500) * 1_000_000
            try:
                export(first.grpc_endpoint, request("busy", ends, np.full(500, 5.0), first_id=n * 500 + 1))
            except grpc.RpcError:
                return  # the daemon was killed mid-request
            n += 1

    sender = threading.Thread(target=ingest)
    sender.start()
    time.sleep(3.3)  # several flushes happen while requests keep arriving
    first.stop(signal.SIGKILL)
    stop.set()
    sender.join()

    database = tmp_path / "data" / "trm-otel.sqlite3"
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with DaemonProcess(tmp_path, config) as second:
        views = second.get("/api/v1/latency", service="busy", range="10m")["views"]
        assert views and views[0]["count"] % 500 == 0, "only whole requests, never half a transaction"
        export(second.grpc_endpoint, request("busy-again", np.full(10, time.time_ns()), np.full(10, 1.0)))
        second.wait_for_count(10, service="busy-again")


def test_back_filled_spans_over_24_hours_land_in_their_windows(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    now = time.time_ns()
    hours = np.repeat(np.arange(1, 24), 50)  # 50 spans in each of the last 23 hours
    ends = now - hours * 3_600_000_000_000 - rng.integers(0, 3_000_000_000_000, hours.size)
    durations = rng.lognormal(np.log(25), 0.5, hours.size)
    with DaemonProcess(tmp_path, storage_config(tmp_path)) as daemon:
        export(daemon.grpc_endpoint, request("backfill", ends, durations))
        wait_flushed(daemon, time.time())
        deadline = time.monotonic() + 20
        counted = 0
        while time.monotonic() < deadline and counted < hours.size:
            views = daemon.get("/api/v1/latency", service="backfill", range="24h")["views"]
            counted = sum(v["count"] for v in views)
            time.sleep(0.3)
        assert counted == hours.size
        # Count by 1 h steps through the query API; steps on whole hours match the
        # 1 h rollups the store answers with, so every span falls in exactly one step.
        end_s = (now // 3_600_000_000_000 + 1) * 3600
        answer = daemon.get(
            "/api/v1/query",
            q='count(traces.span.metrics.duration{service.name="backfill"}[1h])',
            start=end_s - 24 * 3600,
            end=end_s,
            step="1h",
        )
        (series,) = answer["data"]["result"]
        total = sum(float(v) for _, v in series["values"])
        assert total == hours.size, "every back-filled span is in the hour it ended in"
