"""The benchmark harness: measure, compare side by side, write RESULTS.md.

    python benchmarks/run.py              # all benchmarks, rewrites benchmarks/RESULTS.md
    python benchmarks/run.py --quick      # fewer rounds, prints only

Ratios are measured in one process, alternating the two sides round by
round, so machine noise hits both equally; each figure is the median of its
rounds. Targets are checked here and printed as PASS/FAIL, not asserted in
unit tests (timed assertions flake on shared machines). Later issues add
their own sections through the ``BENCHMARKS`` list.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from opentelemetry.sdk.trace import TracerProvider

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trm_otel
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors import LatencyAggregator, LatencySpanProcessor
from trm_otel.processors.span_batch import SpanBatch, batch_from_rows

RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass
class Section:
    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # metric, value, target, verdict
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append((metric, value, target, verdict))
        print(f"  {metric:<58} {value:>16}  {target:<14} {verdict}")


def _spans(tracer, n: int) -> None:
    for _ in range(n):
        tracer.start_span("GET /items/{id}").end()


def bench_span_overhead(rounds: int) -> Section:
    """configure()'s provider vs a bare SDK TracerProvider, start_span().end()."""
    section = Section("Span overhead: `start_span().end()` per span")
    n = 50_000
    bare = TracerProvider().get_tracer("bench")
    telemetry = trm_otel.configure(service_name="bench", set_global=False, system_metrics=False)
    ours = telemetry.tracer_provider.get_tracer("bench")
    reader = telemetry._reader
    _spans(bare, 5_000)
    _spans(ours, 5_000)
    reader.drain()
    bare_us, ours_us, ratios = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        _spans(bare, n)
        bare_us.append((time.perf_counter() - start) / n * 1e6)
        start = time.perf_counter()
        _spans(ours, n)
        reader.drain()  # the aggregation of these spans is part of their cost
        ours_us.append((time.perf_counter() - start) / n * 1e6)
        ratios.append(ours_us[-1] / bare_us[-1])  # paired: both sides of one round share the machine's state
    stats = telemetry.stats()
    telemetry.shutdown()
    b, o = statistics.median(bare_us), statistics.median(ours_us)
    ratio = statistics.median(ratios) - 1
    section.add("bare SDK TracerProvider (no processor)", f"{b:.2f} µs")
    section.add("trm_otel.configure() provider, incl. aggregation", f"{o:.2f} µs")
    section.add("overhead", f"+{ratio * 100:.1f}%", "<= +15%", ratio <= 0.15)
    section.notes.append(
        f"{rounds} alternating rounds of {n:,} spans, overhead = median of the per-round ratios; "
        f"the configured side includes the bulk "
        f"aggregation of its spans (reader drain) inside the timed section. "
        f"Spans accepted {stats.accepted:,}, dropped {stats.dropped:,}."
    )
    return section


def _best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_aggregation(rounds: int) -> Section:
    section = Section("Aggregation throughput (numpy, one core)")
    rng = np.random.default_rng(0)
    values = rng.lognormal(np.log(50), 1.0, 1_000_000)

    def record() -> None:
        ExponentialHistogram().record(values)

    seconds = _best(record, rounds)
    section.add("histogram.record, 1 M lognormal values", f"{len(values) / seconds / 1e6:.0f} M values/s",
                ">= 10 M/s", len(values) / seconds >= 10e6)

    n = 200_000
    now_ns = time.time_ns()
    batch = SpanBatch(
        service=["svc"] * n,
        name=[f"GET /e{i % 20}" for i in range(n)],
        kind=np.full(n, 2, np.int8),
        status=(rng.random(n) < 0.02).astype(np.int8) * 2,
        end_ns=now_ns - rng.integers(0, 60_000_000_000, n),
        duration_ms=values[:n],
        span_id=rng.integers(1, 2**63, n).astype(np.uint64),
        parent_span_id=np.zeros(n, np.uint64),
    )

    def add() -> None:
        LatencyAggregator().add_spans(batch)

    seconds = _best(add, rounds)
    section.add("aggregator.add_spans, 200k spans, 20 series x 7 windows", f"{n / seconds / 1e6:.1f} M spans/s")

    processor = LatencySpanProcessor(buffer_size=10**7)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _spans(provider.get_tracer("bench"), 50_000)
    rows, resources = processor.drain()

    def rows_to_histograms() -> None:
        batch, _, _ = batch_from_rows(rows, resources)
        LatencyAggregator().add_spans(batch)

    seconds = _best(rows_to_histograms, rounds)
    section.add("buffered SDK spans -> columns -> histograms", f"{len(rows) / seconds / 1e6:.2f} M spans/s")
    section.notes.append(
        "`add_spans` includes coding 200k freshly allocated name strings (about 45 ns each, the "
        "largest part), one integer sort to group by series and window, and the histogram updates."
    )
    section.notes.append(
        "The last row is the whole in-process path after `on_end`: the per-span Python work "
        "(reading the buffered tuples into numpy columns) dominates it, not the histogram math."
    )
    return section


def bench_queries(rounds: int) -> Section:
    section = Section("Merging and quantiles")
    rng = np.random.default_rng(1)
    windows = []
    for _ in range(1000):
        h = ExponentialHistogram()
        h.record(rng.lognormal(np.log(50), 0.8, 500))
        windows.append(h)
    seconds = _best(lambda: ExponentialHistogram.merged(windows), rounds)
    section.add("merge 1000 window histograms (500 values each)", f"{seconds * 1e3:.2f} ms")
    merged = ExponentialHistogram.merged(windows)
    per_call = _best(lambda: [merged.quantiles([0.5, 0.95, 0.99]) for _ in range(1000)], rounds) / 1000
    section.add("P50+P95+P99 of one histogram", f"{per_call * 1e6:.1f} µs")
    for sigma, label in ((0.5, "narrow (sigma 0.5)"), (1.0, "wide (sigma 1.0)")):
        h = ExponentialHistogram()
        h.record(rng.lognormal(np.log(50), sigma, 100_000))
        section.add(f"bucket memory, lognormal {label}, 100k values", f"{h.counts.nbytes / 1024:.1f} KiB")
    return section


def bench_daemon(rounds: int) -> Section:
    from benchmarks.throughput import bench_daemon_throughput

    return bench_daemon_throughput(rounds)


def bench_host(rounds: int) -> Section:
    from benchmarks.system_bench import bench_system

    return bench_system(rounds)


def bench_store(rounds: int) -> Section:
    from benchmarks.storage_bench import bench_storage

    return bench_storage(rounds)


def bench_alerts(rounds: int) -> Section:
    from benchmarks.alert_latency import bench_alerting

    return bench_alerting(rounds)


def bench_dashboard_load(rounds: int) -> Section:
    from benchmarks.dashboard_bench import bench_dashboards

    return bench_dashboards(rounds)


def bench_overload(rounds: int) -> Section:
    from benchmarks.overload import bench_overload as run

    return run(rounds)


def bench_soak(rounds: int) -> Section:
    from benchmarks.soak import bench_soak as run

    return run(rounds)


def bench_crash_loop(rounds: int) -> Section:
    from benchmarks.crash_loop import bench_crash_loop as run

    return run(rounds)


BENCHMARKS: list[Callable[[int], Section]] = [
    bench_span_overhead,
    bench_aggregation,
    bench_queries,
    bench_daemon,
    bench_host,
    bench_store,
    bench_alerts,
    bench_dashboard_load,
    bench_overload,
    bench_soak,
    bench_crash_loop,
]


def render(sections: list[Section]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/run.py`; do not edit by hand.",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- python {platform.python_version()}, numpy {np.__version__}, trm-otel {trm_otel.__version__}",
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", "", "| metric | value | target | |", "|---|---:|---|---|"]
        lines += [f"| {m} | {v} | {t} | {ok} |" for m, v, t, ok in section.rows]
        lines += [""] + [f"{note}" for note in section.notes] + ([""] if section.notes else [])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds; print only, do not write RESULTS.md")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated benchmark names (e.g. bench_alerts); "
                        "their sections replace the same sections in RESULTS.md, the others are kept")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 15
    chosen = BENCHMARKS
    if args.only:
        names = set(args.only.split(","))
        chosen = [b for b in BENCHMARKS if b.__name__ in names]
        unknown = names - {b.__name__ for b in chosen}
        if unknown:
            parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))} (known: "
                         f"{', '.join(b.__name__ for b in BENCHMARKS)})")
    sections = []
    for bench in chosen:
        print(f"{bench.__name__}:")
        sections.append(bench(rounds))
    failed = [row for s in sections for row in s.rows if row[3] == "FAIL"]
    if not args.quick:
        text = render(sections)
        if args.only and RESULTS.exists():
            text = _merged(RESULTS.read_text(), text)
        RESULTS.write_text(text.rstrip("\n") + "\n")
        print(f"wrote {RESULTS}")
    return 1 if failed else 0


def _merged(previous: str, fresh: str) -> str:
    """``previous`` with each section of ``fresh`` replacing its namesake (new ones appended); fresh header."""
    def split(text: str) -> tuple[str, dict[str, str]]:
        head, *blocks = text.split("\n## ")
        return head, {block.split("\n", 1)[0]: "## " + block for block in blocks}

    _, old_sections = split(previous)
    head, new_sections = split(fresh)
    merged = {**old_sections, **new_sections}
    return head + "\n" + "\n".join(block.rstrip("\n") + "\n" for block in merged.values())


if __name__ == "__main__":
    sys.exit(main())
