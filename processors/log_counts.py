"""Log records counted per window by service and severity: each service's error-log rate.

    >>> counts = LogCounts(window_s=10)
    >>> counts.consume(request)                     # doctest: +SKIP
    >>> counts.counts(300)["checkout"]["ERROR"]     # doctest: +SKIP
    3
    >>> counts.error_rate(300, "checkout")          # doctest: +SKIP
    0.01

The daemon registers ``counts.consume`` as its pipeline's logs handler.

The daemon does not store log bodies; it answers "is this service logging
errors, and how fast", which alert rules and the service list need. Each
record counts in the window of its time (its observed time when the sender
left ``time_unix_nano`` unset, the arrival time when both are unset).

Severity buckets follow the OTel log data model's ``severity_number``
ranges: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24
FATAL. Senders that leave the number at 0 (UNSPECIFIED) often still set a
``severity_text``; it is mapped by name (``WARNING``, ``CRITICAL``,
``SEVERE``, ``ERR``, ``INFO2`` ...), and what stays unknown is UNSPECIFIED.

Counting is vectorised per scope: severity numbers and times go through
numpy once; only records without a severity number look at their text.
Memory is bounded: windows older than ``history_s`` are dropped, and at
most ``max_services`` services are held (records of further services are
counted in ``stats`` as ``service_limit`` and dropped).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from trm_otel.processors.span_batch import UNKNOWN_SERVICE
from trm_otel.processors.windows import WindowGrid

__all__ = ["SEVERITIES", "LogCounts", "severity_of_text"]

#: severity buckets, in index order
SEVERITIES: tuple[str, ...] = ("UNSPECIFIED", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_ERROR, _FATAL = SEVERITIES.index("ERROR"), SEVERITIES.index("FATAL")
_N = len(SEVERITIES)

# Names other logging systems use (syslog, java.util.logging, log4j, .NET,
# Go), mapped to the bucket the OTel spec's appendix puts them in.
_TEXT: Mapping[str, int] = {
    **{name: i for i, name in enumerate(SEVERITIES)},
    "FINEST": 1,
    "FINER": 1,
    "VERBOSE": 1,
    "FINE": 2,
    "CONFIG": 2,
    "INFORMATION": 3,
    "INFORMATIONAL": 3,
    "NOTICE": 3,
    "WARNING": 4,
    "ERR": 5,
    "SEVERE": 5,
    "CRITICAL": 6,
    "CRIT": 6,
    "ALERT": 6,
    "EMERG": 6,
    "EMERGENCY": 6,
    "PANIC": 6,
}


def severity_of_text(text: str) -> int:
    """The bucket index of a ``severity_text`` (0, UNSPECIFIED, when unknown).

    Case-insensitive; a trailing digit is the spec's short-name suffix
    (``ERROR2``, ``INFO4``) and is ignored.
    """
    return _TEXT.get(text.strip().upper().rstrip("0123456789"), 0)


def _service(resource: Resource) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name" and kv.value.string_value:
            return kv.value.string_value
    return UNKNOWN_SERVICE


class LogCounts:
    """Thread-safe per-window counts of log records by service and severity."""

    def __init__(
        self,
        window_s: float = 10.0,
        history_s: float = 3600.0,
        *,
        max_services: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.grid = WindowGrid(float(window_s), float(history_s))
        if max_services < 1:
            raise ValueError(f"max_services must be >= 1, got {max_services}")
        self.window_s = self.grid.window_s
        self.window_ns = self.grid.window_ns
        self.history_s = self.grid.history_s
        self._history_windows = self.grid.history_windows
        self.max_services = max_services
        self.clock = clock
        self._started_s = clock()
        self._windows: dict[int, dict[str, np.ndarray]] = {}
        self._last_window: dict[str, int] = {}
        self._stats: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def stats(self) -> dict[str, int]:
        """Records by fate: ``counted``, ``outside_history`` (older than the
        history or further ahead than it), ``service_limit``."""
        with self._lock:
            return dict(self._stats)

    # ------------------------------------------------------------------ input

    def consume(self, request: ExportLogsServiceRequest) -> None:
        """Count every record of one request (the pipeline's logs handler)."""
        now_ns = int(self.clock() * 1e9)
        with self._lock:
            oldest = self._evict(now_ns)
            for resource_logs in request.resource_logs:
                service = _service(resource_logs.resource)
                for scope_logs in resource_logs.scope_logs:
                    if scope_logs.log_records:
                        self._count(service, scope_logs.log_records, now_ns, oldest)

    def _count(self, service: str, records: Sequence[LogRecord], now_ns: int, oldest: int) -> None:
        n = len(records)
        numbers = np.fromiter((r.severity_number for r in records), np.int64, n)
        codes = np.where((numbers >= 1) & (numbers <= 24), (numbers - 1) // 4 + 1, 0)
        for i in np.flatnonzero(codes == 0).tolist():
            codes[i] = severity_of_text(records[i].severity_text)
        stamps = np.fromiter((r.time_unix_nano or r.observed_time_unix_nano for r in records), np.uint64, n)
        stamps[stamps == 0] = now_ns
        windows = (stamps // np.uint64(self.window_ns)).astype(np.int64)
        # Too old for the history, or so far ahead that no eviction would reach it.
        keep = (windows >= oldest) & (windows <= now_ns // self.window_ns + self._history_windows)
        if not keep.all():
            self._stats["outside_history"] += int(n - keep.sum())
            windows, codes = windows[keep], codes[keep]
        if windows.size == 0:
            return
        if service not in self._last_window and len(self._last_window) >= self.max_services:
            self._stats["service_limit"] += int(windows.size)
            return
        distinct, position = np.unique(windows, return_inverse=True)
        counts = np.bincount(position.ravel() * _N + codes, minlength=distinct.size * _N).reshape(-1, _N)
        for window, row in zip(distinct.tolist(), counts):
            by_service = self._windows.setdefault(window, {})
            held = by_service.get(service)
            if held is None:
                by_service[service] = row.copy()
            else:
                held += row
        self._last_window[service] = max(self._last_window.get(service, 0), int(distinct[-1]))
        self._stats["counted"] += int(windows.size)

    def _evict(self, now_ns: int) -> int:
        """Drop windows and services older than the history; return the oldest window kept."""
        oldest = self.grid.oldest(now_ns / 1e9)
        for window in [w for w in self._windows if w < oldest]:
            del self._windows[window]
        for service in [s for s, w in self._last_window.items() if w < oldest]:
            del self._last_window[service]
        return oldest

    # ------------------------------------------------------------------ reads

    def _totals(self, range_s: float, now: float) -> tuple[dict[str, np.ndarray], int | None]:
        first = self.grid.first(range_s, now)
        totals: dict[str, np.ndarray] = {}
        earliest = None
        with self._lock:
            for window, by_service in self._windows.items():
                if window < first:
                    continue
                earliest = window if earliest is None else min(earliest, window)
                for service, counts in by_service.items():
                    held = totals.get(service)
                    totals[service] = counts.copy() if held is None else held + counts
        return totals, earliest

    def counts(self, range_s: float, service: str | None = None) -> dict[str, dict[str, int]]:
        """``{service: {severity: records}}`` over the last ``range_s`` seconds.

        Every severity is present (zeros included) for each service that
        logged anything in the range; services are sorted by name.
        """
        totals, _ = self._totals(range_s, self.clock())
        return {
            name: dict(zip(SEVERITIES, counts.tolist()))
            for name, counts in sorted(totals.items())
            if service is None or name == service
        }

    def error_rate(self, range_s: float, service: str) -> float:
        """ERROR + FATAL records per second of ``service`` over the covered range.

        The covered range is the last ``range_s`` seconds, shortened to what
        this instance has seen (since it started, or since the oldest window
        it holds if that is earlier), and never shorter than one window: a
        daemon up for 30 s reports errors per second over those 30 s, not
        diluted over a 5-minute range it did not watch.
        """
        now = self.clock()
        totals, earliest = self._totals(range_s, now)
        counts = totals.get(service)
        if counts is None:
            return 0.0
        held_from = self._started_s if earliest is None else min(self._started_s, earliest * self.window_ns / 1e9)
        seconds = max(self.window_s, now - max(now - range_s, held_from))
        return float(counts[_ERROR] + counts[_FATAL]) / seconds
