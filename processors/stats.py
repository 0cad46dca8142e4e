"""Counters of what the pipeline accepted, dropped, rejected and repaired.

    >>> stats = PipelineStats()
    >>> stats.reject("end_before_start"); stats.snapshot().rejected
    {'end_before_start': 1}

Hot paths never raise on bad input; they count it here instead, and the
counts are exported as OTel metrics (``trm_otel.spans.*``) and shown by
``Telemetry.stats()``, so bad data is visible rather than silently lost.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["PipelineStats", "StatsSnapshot"]


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Totals since start.

    ``accepted`` spans were aggregated; ``dropped`` never reached aggregation
    because the buffer was full; ``rejected`` were unusable, by reason
    (``end_before_start``, ``missing_timestamps``, ``invalid_duration``,
    ``outside_history``); ``repaired`` were aggregated after a fix, by reason
    (``missing_service_name`` -> ``unknown_service``,
    ``non_string_attribute`` -> ``str()``, ``zero_duration`` kept as 0 ms).
    """

    accepted: int = 0
    dropped: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class PipelineStats:
    """Thread-safe counters; ``drop()`` is lock-free for the span hot path."""

    def __init__(self) -> None:
        self._dropped = itertools.count()
        self._accepted = 0
        self._rejected: Counter[str] = Counter()
        self._repaired: Counter[str] = Counter()
        self._lock = threading.Lock()

    def drop(self) -> None:
        next(self._dropped)  # atomic in CPython, no lock on the caller's thread

    def accept(self, n: int) -> None:
        with self._lock:
            self._accepted += n

    def reject(self, reason: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._rejected[reason] += n

    def repair(self, reason: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._repaired[reason] += n

    def merge_counts(self, rejected: Counter[str], repaired: Counter[str]) -> None:
        with self._lock:
            self._rejected.update(rejected)
            self._repaired.update(repaired)

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            # itertools.count has no read; its repr carries the next value.
            dropped = int(repr(self._dropped)[6:-1])
            return StatsSnapshot(
                accepted=self._accepted,
                dropped=dropped,
                rejected=dict(self._rejected),
                repaired=dict(self._repaired),
            )
