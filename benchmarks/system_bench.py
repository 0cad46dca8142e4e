"""System monitor cost: one collection of every host and process metric.

    python -c "from benchmarks.system_bench import bench_system; bench_system(7)"

Measured the way it runs: a real ``MeterProvider`` with the system
instruments and a collecting reader, with ``interval_s=0`` so that every
collection pays for a fresh psutil read (in production most collections
reuse the cached reading and cost only the SDK's part). Each figure is the
median over rounds of the mean of a batch of collections. The psutil read
alone and the top-N variant (off by default) are shown for comparison.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import psutil
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from trm_otel.system import PsutilReader, register_system_instruments

if TYPE_CHECKING:
    from benchmarks.run import Section

TARGET_MS = 5.0
BATCH = 50


def _per_call_ms(fn: Callable[[], object], rounds: int, batch: int = BATCH) -> float:
    fn()  # warm up: first reads set baselines and import lazily
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        means.append((time.perf_counter() - start) / batch * 1000)
    return statistics.median(means)


def _collection(top_n: int, interval_s: float = 0.0) -> tuple[Callable[[], object], MeterProvider]:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    register_system_instruments(provider, PsutilReader(), interval_s=interval_s, top_n=top_n)
    return memory.get_metrics_data, provider


def bench_system(rounds: int) -> Section:
    from benchmarks.run import Section

    section = Section("System monitor: one collection of all host metrics")
    reader = PsutilReader()
    read_ms = _per_call_ms(reader.read, rounds)
    collect, provider = _collection(top_n=0)
    collect_ms = _per_call_ms(collect, rounds)
    provider.shutdown()
    cached, provider = _collection(top_n=0, interval_s=3600.0)
    cached_ms = _per_call_ms(cached, rounds)
    provider.shutdown()
    collect_top, provider = _collection(top_n=5)
    top_ms = _per_call_ms(collect_top, rounds, batch=10)
    provider.shutdown()

    reading = reader.read()
    section.add("psutil read (PsutilReader.read)", f"{read_ms:.2f} ms")
    section.add("collection: fresh read + every instrument callback + SDK", f"{collect_ms:.2f} ms",
                f"<= {TARGET_MS:g} ms", collect_ms <= TARGET_MS)
    section.add("collection reusing the cached reading (within interval)", f"{cached_ms:.2f} ms")
    section.add("collection with top-5 processes (off by default)", f"{top_ms:.2f} ms")
    section.notes.append(
        f"{rounds} rounds of {BATCH} collections (top-N: 10), median of the per-round means; "
        f"host: {psutil.cpu_count()} CPUs, {len(reading.filesystems)} filesystems, {len(reading.disks)} disks, "
        f"{len(reading.networks)} network interfaces, {reading.process_count} processes. "
        f"The top-N walks every process, so its cost grows with the process count."
    )
    return section


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    bench_system(7)
