"""Load for the robustness tests and benchmarks: paced OTLP sender processes and the daemon's counters.

    >>> results = run_senders(daemon, [SenderPlan("grpc", 200.0)] * 2, LoadSpec(), duration_s=30)  # doctest: +SKIP
    >>> pipeline(daemon)["accepted"], counted(daemon, LoadSpec())                                  # doctest: +SKIP

Senders are separate processes (the test process's GIL would otherwise
be the bottleneck), each an asyncio loop issuing 1000-span requests over
gRPC or OTLP/HTTP, on a fixed schedule (``rate_rps``) or back to back,
with a deadline per request as an OTLP exporter has; they count answers
by status and the spans acknowledged. Shared by ``benchmarks/overload.py``,
``benchmarks/soak.py`` and the CI soak test.

The repository root is put on ``sys.path`` here because the sender
processes are spawned and must import this module by name, which pytest's
``importlib`` mode does not arrange for.
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import queue
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.daemon_process import DaemonProcess  # noqa: E402
from tests.robustness.daemon_tools import EXPORT_PATHS, scrape, signal_total, span_request  # noqa: E402

__all__ = [
    "MAX_PENDING",
    "LoadSpec",
    "SenderPlan",
    "counted",
    "daemon_config",
    "measure_capacity",
    "pipeline",
    "run_senders",
    "wait_drained",
]

#: The queue bound of the load runs' daemon, in spans: what bounds its memory when the pipeline falls behind.
MAX_PENDING = 200_000
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


@dataclass(frozen=True)
class LoadSpec:
    """The traffic: ``services`` x ``names`` series, ``spans`` spans per request."""

    prefix: str = "load"
    services: int = 10
    names: int = 50
    spans: int = 1000

    def payloads(self, seed: int) -> list[bytes]:
        """One request per service, spans ending now (rebuilt every few seconds by the senders)."""
        now = time.time_ns()
        return [
            span_request(f"{self.prefix}-{i}", self.spans, seed=seed * 1000 + i, names=self.names, now_ns=now)
            for i in range(self.services)
        ]


@dataclass(frozen=True)
class SenderPlan:
    """One sender process: ``transport`` (``grpc`` or ``http``), requests per second (None: as fast as it can).

    ``concurrency`` caps the requests in flight (HTTP: connections);
    ``timeout_s`` is each request's deadline, as an OTLP exporter's (10 s).
    """

    transport: str
    rate_rps: float | None
    concurrency: int = 64
    timeout_s: float = 10.0


# ------------------------------------------------------------------ sender processes


async def _send_all(target: str, plan: SenderPlan, spec: LoadSpec, duration_s: float, start_at: float,
                    seed: int) -> dict[str, Any]:
    """Issue requests on schedule (or back to back) for ``duration_s``; count answers by status."""
    import grpc
    from google.rpc import status_pb2

    counts: collections.Counter[str] = collections.Counter()
    ok_spans = 0
    latencies: list[float] = []
    payloads = spec.payloads(seed)
    built_at = time.monotonic()
    in_flight = asyncio.Semaphore(plan.concurrency)
    channel = grpc.aio.insecure_channel(target) if plan.transport == "grpc" else None
    client = httpx.AsyncClient(base_url=target, timeout=plan.timeout_s,
                               limits=httpx.Limits(max_connections=plan.concurrency)) \
        if plan.transport == "http" else None
    export = channel.unary_unary(EXPORT_PATHS["traces"], request_serializer=None, response_deserializer=None) \
        if channel is not None else None

    async def one(body: bytes) -> None:
        nonlocal ok_spans
        started = time.monotonic()
        try:
            if export is not None:
                try:
                    await export(body, timeout=plan.timeout_s)
                    status = "OK"
                except grpc.aio.AioRpcError as error:
                    status = error.code().name
                    if status == "UNAVAILABLE":
                        details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
                        found = status_pb2.Status.FromString(details).details if details else []
                        if any(d.type_url == RETRY_INFO_TYPE for d in found):
                            status += "+RetryInfo"  # the daemon's own overload answer
                        elif "RST_STREAM" in (error.details() or ""):
                            status += " (stream refused)"  # HTTP/2: over the connection's stream limit
            else:
                response = await client.post("/v1/traces", content=body,  # type: ignore[union-attr]
                                             headers={"Content-Type": "application/x-protobuf"})
                status = "OK" if response.status_code == 200 else str(response.status_code)
                if response.status_code == 503 and response.headers.get("Retry-After"):
                    status += "+Retry-After"
            counts[status] += 1
            if status == "OK":
                ok_spans += spec.spans
                latencies.append(time.monotonic() - started)
        except Exception as error:  # a transport failure is an answer too: count it, by type
            counts[f"error:{type(error).__name__}"] += 1
        finally:
            in_flight.release()

    while time.time() < start_at:
        await asyncio.sleep(0.005)
    t0 = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    issued = 0
    late = 0
    while True:
        now = time.monotonic()
        if now - t0 >= duration_s:
            break
        if plan.rate_rps is not None:
            due = t0 + issued / plan.rate_rps
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 1.0:
                late += 1
        if now - built_at > 5.0:  # keep end times current: spans must land in live windows
            payloads, built_at = spec.payloads(seed + issued), now
        await in_flight.acquire()
        task = asyncio.create_task(one(payloads[issued % len(payloads)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        issued += 1
    elapsed = time.monotonic() - t0
    if tasks:
        await asyncio.gather(*tasks)
    if channel is not None:
        await channel.close()
    if client is not None:
        await client.aclose()
    return {
        "transport": plan.transport, "issued": issued, "elapsed": elapsed, "counts": dict(counts),
        "ok_spans": ok_spans, "late": late,
        "latency_p50": statistics.median(latencies) if latencies else float("nan"),
        "latency_max": max(latencies) if latencies else float("nan"),
    }


def _sender_process(target: str, plan: SenderPlan, spec: LoadSpec, duration_s: float, start_at: float, seed: int,
                    results: Any) -> None:
    results.put(asyncio.run(_send_all(target, plan, spec, duration_s, start_at, seed)))


def run_senders(daemon: DaemonProcess, plans: list[SenderPlan], spec: LoadSpec, duration_s: float,
                seed: int = 0) -> list[dict[str, Any]]:
    """Start one process per plan together; their results once all are done."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 2.0  # spawn and connect first, then all begin at once
    targets = {"grpc": daemon.grpc_endpoint, "http": daemon.http_url}
    processes = [
        context.Process(target=_sender_process,
                        args=(targets[plan.transport], plan, spec, duration_s, start_at, seed + 7919 * i, results))
        for i, plan in enumerate(plans)
    ]
    for process in processes:
        process.start()
    outcomes: list[dict[str, Any]] = []
    deadline = time.monotonic() + duration_s + 300
    while len(outcomes) < len(processes):
        try:
            outcomes.append(results.get(timeout=1.0))
        except queue.Empty:
            failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if failed:
                raise RuntimeError(f"a sender process exited with {failed[0]} before reporting") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"senders did not report within {duration_s + 300:.0f} s") from None
    for process in processes:
        process.join(30)
    return outcomes


def pipeline(daemon: DaemonProcess) -> dict[str, float]:
    """The daemon's trace counters: accepted, refused, processed, failed, pending, aggregated."""
    counters = scrape(daemon.api_url)
    out = {fate: signal_total(counters, f"trm_otel_pipeline_{fate}_items_total", "traces")
           for fate in ("accepted", "refused", "processed", "failed")}
    out["pending"] = counters.get(("trm_otel_pipeline_pending_items", ()), 0.0)
    out["aggregated"] = sum(v for (name, _), v in counters.items() if name == "trm_otel_spans_accepted_total")
    return out


def wait_drained(daemon: DaemonProcess, timeout: float = 120.0) -> dict[str, float]:
    """Poll until nothing is pending; the final counters."""
    deadline = time.monotonic() + timeout
    while True:
        counts = pipeline(daemon)
        if counts["pending"] == 0 or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def counted(daemon: DaemonProcess, spec: LoadSpec, range_: str = "1h") -> int:
    """Spans of ``spec``'s services the query API counts over ``range_``."""
    query = f'count(traces.span.metrics.duration{{service.name=~"{spec.prefix}-.*"}}[{range_}])'
    response = httpx.get(f"{daemon.api_url}/api/v1/query", params={"q": query}, timeout=60)
    response.raise_for_status()
    return int(sum(float(item["value"][1]) for item in response.json()["data"]["result"]))


def measure_capacity(daemon: DaemonProcess, spec: LoadSpec, seconds: float = 10.0, senders: int = 3) -> float:
    """Spans per second the daemon *processes* while closed-loop senders keep it saturated.

    Each sender keeps 64 requests in flight, enough that the daemon, not
    the round trip, sets the pace; the rate is read from the pipeline's
    processed counter once the load has settled.
    """
    marks: list[tuple[float, float]] = []
    stop = threading.Event()

    def mark() -> None:
        time.sleep(4.0)  # spawn (2 s) and warm-up
        while not stop.is_set():
            marks.append((time.monotonic(), pipeline(daemon)["processed"]))
            stop.wait(1.0)

    watcher = threading.Thread(target=mark, daemon=True)
    watcher.start()
    run_senders(daemon, [SenderPlan("grpc", None)] * senders, spec, seconds + 2.0, seed=1)
    stop.set()
    watcher.join()
    (t0, p0), (t1, p1) = marks[0], marks[-1]
    wait_drained(daemon)
    return (p1 - p0) / (t1 - t0)


def daemon_config(directory: Path, **extra: Any) -> dict[str, Any]:
    """The benchmark daemon: 10 s windows, the bounded queue, storage in ``directory``."""
    config: dict[str, Any] = {
        "processors": {"latency": {"window": "10s"}},
        "storage": {"path": str(directory / "data")},
        "service": {"queue": {"max_pending_items": MAX_PENDING}},
    }
    config.update(extra)
    return config


# ------------------------------------------------------------------ the benchmark
