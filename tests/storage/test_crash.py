"""SIGKILL a writing process at random moments: the file stays consistent and keeps every committed window.

A child process writes windows of many series in a loop (large batches, so
that a kill often lands inside a write transaction or a compaction) and
prints ``commit W`` after each write returns. The parent kills it with
SIGKILL after a random number of windows and a random delay, reopens the
file and checks: ``PRAGMA integrity_check`` is ok, every window whose commit
was printed holds exactly the histograms written (same counts, same
quantiles), the window being written at the kill is all there or not at
all, rollups are the merges of their windows, and writing resumes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from trm_otel.series_source import DURATION_METRIC
from trm_otel.storage import Store
from trm_otel.storage.codec import decode_many

from tests.storage import assert_rollups_are_merges

SERIES = 1500
START = 1_764_460_800
ROOT = Path(__file__).resolve().parents[2]

# Shared by the child (which writes these histograms) and the test (which expects them).
WINDOW = textwrap.dedent(
    """
    import numpy as np
    from trm_otel.histogram import ExponentialHistogram

    def window(start, series):
        '''The histograms of one window: deterministic in (start, series).'''
        out = []
        for i in range(series):
            rng = np.random.default_rng([start, i])
            h = ExponentialHistogram()
            h.record(rng.lognormal(3.5, 0.7, int(rng.integers(1, 120))))
            out.append(h)
        return out
    """
)

CHILD = WINDOW + textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from trm_otel.storage import Store

    path, start, series = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

    def announced(name, method):
        # says so once a write or compaction transaction is open (BEGIN done, COMMIT not yet)
        def inside(self, *args):
            print(name, start, flush=True)
            return method(self, *args)
        return inside

    Store._merge_latency = announced("writing", Store._merge_latency)
    Store._roll_latency = announced("rolling", Store._roll_latency)
    store = Store(path, clock=lambda: start)
    while True:
        histograms = window(start, series)
        rows = [("default", "traces.span.metrics.duration", {"n": str(i)}, start, h) for i, h in enumerate(histograms)]
        print("begin", start, flush=True)
        store.write_latency(rows)
        print("commit", start, flush=True)
        start += 10
        if start % 60 == 0:
            store.compact(start)
    """
)


def expected_window(start: int) -> list:
    namespace: dict = {}
    exec(WINDOW, namespace)
    return namespace["window"](start, SERIES)


def run_and_kill(path: Path, start: int, word: str, times: int, delay_s: float) -> list[tuple[str, int]]:
    """Run the writer until it has said ``word`` ``times`` times, wait ``delay_s``, SIGKILL it; its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(start), str(SERIES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[tuple[str, int]] = []
    try:
        assert child.stdout is not None
        said = 0
        for line in child.stdout:
            said_word, value = line.split()
            lines.append((said_word, int(value)))
            said += said_word == word
            if said == times:
                time.sleep(delay_s)
                break
        else:
            raise AssertionError(f"writer exited early: {child.stderr.read() if child.stderr else ''}")
    finally:
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, errors
    lines.extend((w, int(v)) for w, v in (line.split() for line in rest.splitlines()))
    return lines


def check(path: Path, committed: set[int], new: set[int], interrupted: int | None) -> int:
    """Reopen and verify; returns the next window to write.

    Every committed window must be complete; the new ones (since the last
    check) are compared bucket by bucket with what was written, and by
    quantiles for every 25th series (equal buckets imply equal quantiles).
    """
    store = Store(path, clock=lambda: START)
    try:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(
            store._db.execute("SELECT window_start, COUNT(*) FROM latency WHERE resolution = 10 GROUP BY window_start")
        )
        for start in committed | new:
            assert rows.get(start) == SERIES, f"committed window {start} lost rows"
        if interrupted is not None:
            assert rows.get(interrupted, 0) in (0, SERIES), "a half-written window"
        refs = {ref.labels["n"]: ref.key for ref in store.select("default", DURATION_METRIC, [])}
        for start in sorted(new):
            stored = dict(
                store._db.execute(
                    "SELECT series_id, data FROM latency WHERE resolution = 10 AND window_start = ?", (start,)
                )
            )
            got = decode_many([stored[refs[str(i)]] for i in range(SERIES)])
            for i, (h, want) in enumerate(zip(got, expected_window(start))):
                assert h == want, (start, i)
                if i % 25 == 0:
                    assert h.quantiles([0.5, 0.95, 0.99]) == want.quantiles([0.5, 0.95, 0.99])
        assert_rollups_are_merges(store)
        return max(rows, default=START - 10) + 10
    finally:
        store.close()


def test_sigkill_at_random_moments_loses_no_committed_window(tmp_path: Path) -> None:
    path = tmp_path / "data" / "trm-otel.sqlite3"
    rng = random.Random(int(os.environ.get("TRM_CRASH_SEED", "4")))
    start = START
    committed: set[int] = set()
    # random moments of the loop: between writes, inside one, around a compaction (every 6th window)
    plans = [
        ("begin", 2, 0.0),
        ("begin", 3, rng.uniform(0.0, 0.06)),
        ("begin", 6, rng.uniform(0.0, 0.3)),
        ("commit", 4, rng.uniform(0.0, 0.05)),
    ]
    for word, times, delay in plans:
        lines = run_and_kill(path, start, word, times, delay)
        new = {value for said, value in lines if said == "commit"}
        begun = [value for said, value in lines if said == "begin"]
        interrupted = begun[-1] if begun[-1] not in new else None
        start = check(path, committed, new, interrupted)
        committed |= new
        assert start >= max(committed) + 10
    # writing resumes where it stopped
    store = Store(path, clock=lambda: start)
    histograms = expected_window(start)
    store.write_latency([("default", DURATION_METRIC, {"n": str(i)}, start, h) for i, h in enumerate(histograms)])
    store.compact(start + 3600)
    store.close()
    assert check(path, committed, {start}, None) == start + 10


def test_sigkill_inside_write_and_compaction_transactions(tmp_path: Path) -> None:
    """Killed while a transaction is open: the window is all there or absent, never half."""
    path = tmp_path / "trm-otel.sqlite3"
    start = START
    committed: set[int] = set()
    lost_inside = 0
    plans = [("writing", 1, 0.0), ("writing", 2, 0.002), ("rolling", 1, 0.0), ("writing", 1, 0.01), ("rolling", 1, 0.05)]
    for word, times, delay in plans:
        lines = run_and_kill(path, start, word, times, delay)
        new = {value for said, value in lines if said == "commit"}
        begun = [value for said, value in lines if said == "begin"]
        interrupted = begun[-1] if begun[-1] not in new else None
        start = check(path, committed, new, interrupted)
        lost_inside += word == "writing" and interrupted is not None and start == interrupted
        committed |= new
    assert lost_inside  # at least one kill really landed before its COMMIT
    assert len(committed) >= 6  # and compactions ran (and were killed) in between
