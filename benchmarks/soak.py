"""Soak: half the measured capacity for 15 minutes; memory, descriptors and query latency must stay flat.

    python benchmarks/soak.py                    # 15 minutes
    TRM_SOAK_SECONDS=120 python benchmarks/soak.py

The daemon runs with storage (1 s flushes) and ``history: 2m``: its
in-memory windows reach their steady state two minutes in, so growth
after that is a leak, not the history filling up (with the default hour
it would fill for the whole run). Two gRPC sender processes and one
OTLP/HTTP process send at half the capacity measured first (as in
:mod:`benchmarks.overload`), over 500 series. Every 10 s the benchmark
samples the daemon's RSS and open file descriptors (psutil) and times two
queries: one answered from memory (``[1m]``) and one that also reads
storage (``[5m]``).

Reported: start, steady start, end and
the least-squares slope over the steady part, per minute. The steady part
starts once the memory holds its whole history and the ``[5m]`` query's
range is all data (5 minutes in, plus a flush): before that the query
reads more stored windows every sample, and its latency grows for that
reason alone. At the end every
acknowledged span must be counted by the query API.
The run itself is :func:`tests.robustness.soak.run_soak`, which the short CI
variant in ``tests/robustness/test_soak.py`` runs too.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.robustness.soak import MEMORY_QUERY, STORAGE_QUERY, run_soak  # noqa: E402


def bench_soak(rounds: int) -> Any:
    from benchmarks.run import Section

    seconds = float(os.environ.get("TRM_SOAK_SECONDS", "900"))
    r = run_soak(seconds)
    steady = r.steady()
    first, last = steady[: max(1, len(steady) // 4)], steady[-max(1, len(steady) // 4):]
    section = Section(f"Soak: half the measured capacity for {seconds / 60:.0f} min")
    section.add("capacity measured / rate sent", f"{(r.capacity or 0) / 1e3:.0f} k / {r.rate_spans_s / 1e3:.0f} k spans/s")
    section.add("answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(r.answers.items())))
    rss_slope = r.slope_per_min("rss_mib")
    section.add("RSS: start / steady start / end",
                f"{r.samples[0].rss_mib:.0f} / {steady[0].rss_mib:.0f} / {r.samples[-1].rss_mib:.0f} MiB")
    section.add("RSS slope over the steady part", f"{rss_slope:+.2f} MiB/min", "<= +1 MiB/min", rss_slope <= 1.0)
    fd_growth = r.samples[-1].fds - steady[0].fds
    section.add("open fds: start / steady start / end (slope)",
                f"{r.samples[0].fds} / {steady[0].fds} / {r.samples[-1].fds} ({r.slope_per_min('fds'):+.2f}/min)",
                "end <= steady start + 2", fd_growth <= 2)
    for name, label in (("memory_query_ms", "[1m], from memory"), ("storage_query_ms", "[5m], memory + storage")):
        start_ms = statistics.median(getattr(s, name) for s in first)
        end_ms = statistics.median(getattr(s, name) for s in last)
        section.add(f"query {label}: steady start / end median (slope)",
                    f"{start_ms:.1f} / {end_ms:.1f} ms ({r.slope_per_min(name):+.2f} ms/min)",
                    "end <= 1.5x start + 5 ms", end_ms <= 1.5 * start_ms + 5.0)
    section.add("spans acknowledged / accepted / counted by the query API",
                f"{r.acked:,} / {r.accepted:,.0f} / {r.counted:,}", "all equal",
                r.acked == r.accepted == r.counted)
    section.add("daemon alive, pipeline failures", f"{r.alive}, {r.failed:.0f}", "True, 0", r.alive and r.failed == 0)
    section.notes.append(
        f"{len(r.samples)} samples every 10 s; the steady part starts at {r.steady_from_s:.0f} s (the [5m] "
        "query's range all data, plus a flush; `history: 2m`). Queries: `" + MEMORY_QUERY.format(prefix="soak") + "` and `"
        + STORAGE_QUERY.format(prefix="soak") + "` over one keep-alive connection. Storage flushes every second, so "
        "the [5m] query stitches memory to disk on every run. 10 services x 50 span names, 1000-span requests, "
        "two gRPC and one OTLP/HTTP sender processes on the same 2-core machine."
    )
    return section


if __name__ == "__main__":
    outcome = run_soak(float(os.environ.get("TRM_SOAK_SECONDS", "900")))
    for sample in outcome.samples:
        print(f"{sample.at_s:7.1f} s  rss {sample.rss_mib:6.1f} MiB  fds {sample.fds:3d}  "
              f"memory query {sample.memory_query_ms:7.1f} ms  storage query {sample.storage_query_ms:7.1f} ms  "
              f"disk {sample.disk_mib:7.1f} MiB")
    print(f"acked {outcome.acked:,} accepted {outcome.accepted:,.0f} counted {outcome.counted:,} "
          f"answers {outcome.answers} rss slope {outcome.slope_per_min('rss_mib'):+.2f} MiB/min")
