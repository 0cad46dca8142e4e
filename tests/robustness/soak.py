"""A soak run: steady load on the real daemon, sampling its memory, descriptors and query latency.

    >>> result = run_soak(600)                  # half the measured capacity for 10 min   # doctest: +SKIP
    >>> result.slope_per_min("rss_mib"), result.acked == result.counted                     # doctest: +SKIP

The daemon runs with storage (1 s flushes) and a short ``history``, so its
in-memory windows reach their steady state early and growth after that is
a leak, not the history filling up. Every ``sample_every_s`` the RSS and
open file descriptors of the daemon (psutil) are sampled and two queries
timed: one answered from memory (``[1m]``), one that also reads storage
(``[5m]``). ``benchmarks/soak.py`` reports the figures; the CI test runs a
short, slow version and checks only the invariants.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from tests.e2e.daemon_process import DaemonProcess
from tests.robustness.daemon_tools import open_fds, rss_mib
from tests.robustness.load import LoadSpec, SenderPlan, counted, daemon_config, measure_capacity, pipeline, \
    run_senders, wait_drained
from trm_otel.config_types import parse_duration

__all__ = ["MEMORY_QUERY", "STORAGE_QUERY", "Sample", "SoakResult", "run_soak"]

MEMORY_QUERY = 'p95(traces.span.metrics.duration{{service.name=~"{prefix}-.*"}}[1m]) by (span.name)'
STORAGE_QUERY = 'count(traces.span.metrics.duration{{service.name=~"{prefix}-.*"}}[5m]) by (service.name)'
STORAGE_QUERY_RANGE_S = 300.0  # the [5m] above


@dataclass
class Sample:
    """One look at the daemon: seconds since the load started, RSS, descriptors, two query latencies."""

    at_s: float
    rss_mib: float
    fds: int
    memory_query_ms: float
    storage_query_ms: float
    statuses: tuple[int, int]
    disk_mib: float = 0.0  # the data directory: SQLite files with their WAL


@dataclass
class SoakResult:
    seconds: float
    rate_spans_s: float
    steady_from_s: float
    samples: list[Sample] = field(default_factory=list)
    acked: int = 0
    accepted: float = 0.0
    counted: int = 0
    failed: float = 0.0
    answers: dict[str, int] = field(default_factory=dict)
    alive: bool = True
    capacity: float | None = None

    def steady(self) -> list[Sample]:
        return [s for s in self.samples if s.at_s >= self.steady_from_s] or self.samples[-2:]

    def slope_per_min(self, value: str) -> float:
        """Least-squares slope of ``value`` over the steady samples, per minute."""
        steady = self.steady()
        if len(steady) < 2:
            return 0.0
        x = np.array([s.at_s for s in steady]) / 60.0
        y = np.array([float(getattr(s, value)) for s in steady])
        return float(np.polyfit(x, y, 1)[0])


def _timed_query(client: httpx.Client, query: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get("/api/v1/query", params={"q": query})
    return (time.perf_counter() - started) * 1e3, response.status_code


def run_soak(
    seconds: float,
    rate_spans_s: float | None = None,
    *,
    sample_every_s: float = 10.0,
    history: str = "2m",
    window: str = "10s",
    spec: LoadSpec | None = None,
    plans: list[tuple[str, float]] | None = None,
) -> SoakResult:
    """Run the soak; ``rate_spans_s=None`` measures capacity first and sends half of it.

    ``plans`` are ``(transport, share)`` of the rate per sender process
    (default two gRPC and one HTTP, 40/40/20).
    """
    spec = spec or LoadSpec(prefix="soak")
    plans = plans or [("grpc", 0.4), ("grpc", 0.4), ("http", 0.2)]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config = daemon_config(directory, processors={"latency": {"window": window, "history": history}})
        config["storage"]["flush_interval"] = "1s"
        with DaemonProcess(directory, config) as daemon:
            assert daemon.process is not None
            pid = daemon.process.pid
            capacity = None
            if rate_spans_s is None:
                capacity = measure_capacity(daemon, LoadSpec(prefix="capacity"))
                rate_spans_s = capacity / 2
            # Steady once memory holds its whole history and the longest query's range is all data (before
            # that the [5m] query reads more storage each sample), plus a flush.
            settled_s = max(parse_duration(history), STORAGE_QUERY_RANGE_S) + 15.0
            result = SoakResult(seconds, rate_spans_s, steady_from_s=min(settled_s, seconds / 2), capacity=capacity)
            before = pipeline(daemon)
            queries = (MEMORY_QUERY.format(prefix=spec.prefix), STORAGE_QUERY.format(prefix=spec.prefix))
            done = threading.Event()
            started = time.monotonic() + 2.0  # run_senders starts the load 2 s from now

            def watch() -> None:
                with httpx.Client(base_url=daemon.api_url, timeout=60) as client:  # one keep-alive connection
                    done.wait(max(0.0, started - time.monotonic()))
                    while not done.is_set():
                        memory_ms, memory_status = _timed_query(client, queries[0])
                        storage_ms, storage_status = _timed_query(client, queries[1])
                        disk = sum(p.stat().st_size for p in (directory / "data").rglob("*") if p.is_file())
                        result.samples.append(Sample(
                            time.monotonic() - started, rss_mib(pid), open_fds(pid), memory_ms, storage_ms,
                            (memory_status, storage_status), disk / 2**20,
                        ))
                        done.wait(sample_every_s)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            sender_plans = [SenderPlan(kind, rate_spans_s * share / spec.spans, concurrency=32) for kind, share in plans]
            outcomes = run_senders(daemon, sender_plans, spec, seconds, seed=3)
            done.set()
            watcher.join()
            after = wait_drained(daemon)
            time.sleep(1.5)  # the last windows flushed, so the count reads both sides
            result.acked = sum(o["ok_spans"] for o in outcomes)
            result.accepted = after["accepted"] - before["accepted"]
            result.failed = after["failed"]
            result.counted = counted(daemon, spec)
            for outcome in outcomes:
                for status, n in outcome["counts"].items():
                    key = f"{outcome['transport']} {status}"
                    result.answers[key] = result.answers.get(key, 0) + n
            result.alive = daemon.process.poll() is None
    return result
