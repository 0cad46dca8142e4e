"""Crash loop: 20 cycles of start, ingest, SIGKILL at a random moment, restart; nothing durable may suffer.

    python benchmarks/crash_loop.py              # 20 cycles
    TRM_CRASH_CYCLES=5 python benchmarks/crash_loop.py

The run and every check are :func:`tests.robustness.crash_loop.run_crash_loop`
(its docstring says what is checked after each kill and each restart); the
CI variant ``tests/robustness/test_crash_loop.py`` runs three cycles.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.robustness.crash_loop import kill_losses, run_crash_loop  # noqa: E402


def bench_crash_loop(rounds: int) -> Any:
    from benchmarks.run import Section

    cycles = int(os.environ.get("TRM_CRASH_CYCLES", "20"))
    r = run_crash_loop(cycles, log=print)
    kills = r.cycles[:-1]
    section = Section(f"Crash loop: {cycles} x (start, ingest 1-4 s, SIGKILL, restart)")
    section.add("problems found (integrity, counts, alert state, notification log)", f"{len(r.problems)}", "0",
                not r.problems)
    ok = sum(all(v == "ok" for v in c.integrity.values()) for c in kills)
    section.add("PRAGMA integrity_check ok, both databases, after each kill", f"{ok} of {len(kills)}", "all",
                ok == len(kills))
    counts = [c.count_after_restart for c in r.cycles if c.count_after_restart is not None]
    monotone = all(b >= a for a, b in zip(counts, counts[1:]))
    section.add("span count over the whole history after each restart", f"{counts[0]:,} ... {counts[-1]:,}",
                "never lower", monotone)
    fired = [c for c in kills if c.alert_before_kill and c.alert_before_kill["state"] == "firing"]
    kept = sum(1 for c in r.cycles[1:] if c.alert_after_restart and c.alert_after_restart["state"] == "firing")
    section.add("firing alert still firing, same activeAt, after restart", f"{kept} of {len(fired)}", "all",
                kept == len(fired))
    section.add("sent firing notifications (log) / duplicates within repeat_interval",
                f"{r.sent_firing} / {r.log_duplicates}", "0 duplicates", r.log_duplicates == 0)
    section.add("firing notifications received by the webhook / repeats", f"{r.webhook_firing} / "
                f"{r.webhook_duplicates}")
    lost = r.acked - r.final_count
    worst = max(kill_losses(r), key=lambda loss: loss[1])
    section.add("spans acknowledged / counted at the end", f"{r.acked:,} / {r.final_count:,}")
    section.add("lost to the kills: total, worst kill (in seconds of its traffic)",
                f"{lost:,}, {worst[0]:,} ({worst[1]:.1f} s)", "<= 4 s per kill", worst[1] <= 4.0)
    section.add("restart to ready, median", f"{sorted(c.restart_s for c in r.cycles)[len(r.cycles) // 2]:.1f} s")
    section.notes.append(
        "1 s windows, `storage.flush_interval: 1s`, alerting every 1 s with `group_wait`/`group_interval` 1 s and "
        "`repeat_interval` 1 h; the webhook server outlives the daemons. A kill's loss is what its cycle acknowledged "
        "that the next restart does not count: what was still in memory (the open window, the grace window and up "
        "to one flush interval, as the README says; with 1-4 s of ingest that is most of it). Webhook repeats, if "
        "any, are deliveries sent but not yet marked sent when the kill came: they are re-sent after the restart "
        "(at-least-once), while the log itself holds each once."
    )
    if r.problems:
        section.notes.append("Problems: " + "; ".join(r.problems[:10]))
    return section


if __name__ == "__main__":
    outcome = run_crash_loop(int(os.environ.get("TRM_CRASH_CYCLES", "20")), log=print)
    print(f"problems: {outcome.problems}")
    print(f"acked {outcome.acked:,}, final count {outcome.final_count:,}, sent firing {outcome.sent_firing}, "
          f"log duplicates {outcome.log_duplicates}, webhook firing {outcome.webhook_firing}, "
          f"webhook repeats {outcome.webhook_duplicates}")
