"""A short crash loop in CI: three SIGKILLs mid-ingest; storage and alerting come back intact.

The twenty-cycle run with its figures is ``benchmarks/crash_loop.py``
(the same :func:`~benchmarks.crash_loop.run_crash_loop`): after every kill
both SQLite files pass ``integrity_check``, the firing alert is still
firing (in ``alert_state`` and, after the restart, in the API with the
same ``activeAt``), the notification log holds no repeated firing
notification, and the count over the whole history never goes back.
"""

from __future__ import annotations

from .crash_loop import kill_losses, run_crash_loop


def test_three_kills_mid_ingest_leave_storage_and_alerting_intact() -> None:
    result = run_crash_loop(3, seed=5)
    assert result.problems == []
    kills = result.cycles[:-1]
    assert all(c.integrity == {"trm-otel.sqlite3": "ok", "alerting.db": "ok"} for c in kills)
    counts = [c.count_after_restart for c in result.cycles[1:]]
    assert all(b >= a for a, b in zip(counts, counts[1:])), counts  # type: ignore[operator]
    assert result.final_count == counts[-1]
    assert result.acked > result.final_count > 0  # the kills cost the unflushed tail, nothing more
    firing = [c for c in kills if c.alert_before_kill and c.alert_before_kill["state"] == "firing"]
    assert firing, "the rule was meant to fire on the traffic"
    assert all(c.stored_alert_state == "firing" for c in firing)
    assert result.sent_firing >= 1 and result.log_duplicates == 0
    assert all(lost >= 0 for lost, _ in kill_losses(result))
