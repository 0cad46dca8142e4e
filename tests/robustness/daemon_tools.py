"""Reading a running daemon from outside: its counters, memory, descriptors, and valid traffic to send it.

    >>> counters = scrape(daemon)                                  # doctest: +SKIP
    >>> counters["trm_otel_pipeline_accepted_items_total", (("signal", "traces"),)]   # doctest: +SKIP
    12000.0
    >>> rss_mib(daemon.process.pid), open_fds(daemon.process.pid)  # doctest: +SKIP
    (96.4, 31)

Shared by the robustness tests and the overload, soak and crash-loop
benchmarks, which judge the daemon only by what any operator could see:
``/metrics``, ``/proc`` and the query API.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "EXPORT_PATHS",
    "Counters",
    "data_files",
    "open_fds",
    "rss_mib",
    "scrape",
    "signal_total",
    "span_request",
    "wait_until",
]

#: gRPC method of each signal's Export.
EXPORT_PATHS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}

Counters = dict[tuple[str, tuple[tuple[str, str], ...]], float]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(api_url: str, timeout: float = 30.0) -> Counters:
    """Every sample of the daemon's ``/metrics``, keyed by (name, sorted labels)."""
    text = httpx.get(f"{api_url}/metrics", timeout=timeout).text
    found: Counters = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        labels = tuple(sorted(_LABEL.findall(match.group(2) or "")))
        try:
            found[match.group(1), labels] = float(match.group(3))
        except ValueError:
            continue
    return found


def signal_total(counters: Counters, name: str, signal: str) -> float:
    """One pipeline counter of one signal (0 when absent)."""
    return counters.get((name, (("signal", signal),)), 0.0)


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


def open_fds(pid: int) -> int:
    """Open file descriptors of ``pid`` (sockets, SQLite files and WAL, pipes)."""
    return psutil.Process(pid).num_fds()


def span_request(service: str, spans: int, seed: int, *, names: int = 10, now_ns: int | None = None) -> bytes:
    """A serialized trace request of ``spans`` valid spans ending now, over ``names`` span names.

    Ids are unique per ``seed`` and span, so requests can be told apart.
    """
    now = time.time_ns() if now_ns is None else now_ns
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    scope = resource_spans.scope_spans.add()
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id = (seed * 1_000_003 + i + 1).to_bytes(16, "big")
        span.span_id = ((seed * 1_000_003 + i + 1) % 2**64 or 1).to_bytes(8, "big")
        span.name = f"op{i % names}"
        span.kind = trace_pb2.Span.SPAN_KIND_SERVER
        span.start_time_unix_nano = now - (1 + i % 50) * 1_000_000
        span.end_time_unix_nano = now
    return request.SerializeToString()


def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds passed; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def data_files(data_dir: Path) -> list[Path]:
    """The SQLite databases in a daemon's data directory."""
    return sorted(p for p in data_dir.rglob("*") if p.suffix in (".db", ".sqlite3"))
