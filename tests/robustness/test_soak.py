"""A short soak in CI: steady traffic for 20 s; descriptors and memory flat, every span counted, queries answered.

The fifteen-minute run with its figures is ``benchmarks/soak.py`` (the same
:func:`~benchmarks.soak.run_soak`); here the rate is fixed and modest, so
the invariants are checked, not performance: no refusal, every
acknowledged span accepted and counted by the query API (memory and
storage stitched: flushes every second), every query answered, no
descriptor leaked, memory within a generous margin of its steady start.
"""

from __future__ import annotations

from .load import LoadSpec
from .soak import run_soak


def test_short_soak_keeps_descriptors_and_memory_flat_and_counts_every_span() -> None:
    result = run_soak(
        20.0,
        rate_spans_s=10_000,
        sample_every_s=1.0,
        history="5s",
        window="1s",
        spec=LoadSpec(prefix="soak", services=5, names=20, spans=200),
        plans=[("grpc", 0.5), ("http", 0.5)],
    )
    assert set(result.answers) <= {"grpc OK", "http OK"}, result.answers
    assert result.alive and result.failed == 0
    assert result.acked == result.accepted == result.counted > 150_000
    assert all(sample.statuses == (200, 200) for sample in result.samples)
    steady = result.steady()
    assert len(steady) >= 5
    assert max(s.fds for s in steady) <= steady[0].fds + 3, [s.fds for s in result.samples]
    assert steady[-1].rss_mib <= steady[0].rss_mib + 30, [round(s.rss_mib) for s in result.samples]
