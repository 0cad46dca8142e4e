"""The daemon's hand-off between receivers and processing: a bounded queue.

    >>> pipeline = Pipeline(traces=aggregator.add_spans)               # doctest: +SKIP
    >>> pipeline.start()                                               # doctest: +SKIP
    >>> pipeline.offer_traces(batch)   # False: full, answer UNAVAILABLE / 503
    True

Receivers decode a request, validate it, and *offer* it here. An offer is
accepted only if the queue has room for its items; then the receiver answers
success and the data will be processed (unless the process dies before the
worker reaches it). A refused offer is answered with a retryable status
(gRPC ``UNAVAILABLE`` + ``RetryInfo``, HTTP 503 + ``Retry-After``), so the
client keeps the data and sends it again: nothing acknowledged is dropped,
and memory stays bounded by ``max_pending_items``.

Processing runs on one worker thread, in arrival order, off the event loop
that serves the receivers and the API.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["Consumer", "Pipeline", "PipelineCounters"]

_logger = logging.getLogger(__name__)

Signal = Literal["traces", "metrics", "logs"]


DEFAULT_TENANT = "default"


class Consumer(Protocol):
    """What receivers hand decoded requests to (the daemon's :class:`Pipeline`), per tenant."""

    def offer_traces(self, batch: Any, request: Any = None, tenant: str = DEFAULT_TENANT) -> bool: ...

    def offer_metrics(self, request: Any, points: int, tenant: str = DEFAULT_TENANT) -> bool: ...

    def offer_logs(self, request: Any, records: int, tenant: str = DEFAULT_TENANT) -> bool: ...


@dataclass(frozen=True, slots=True)
class PipelineCounters:
    """Items (spans, points, log records) by fate, since start."""

    accepted: dict[str, int]
    refused: dict[str, int]
    processed: dict[str, int]
    failed: dict[str, int]
    pending_items: int
    max_pending_items: int


class Pipeline:
    """Bounded queue + one worker thread; each signal goes to its handlers in order.

    ``traces`` handlers receive a ``SpanBatch``; ``metrics`` handlers an
    ``ExportMetricsServiceRequest``; ``logs`` handlers an
    ``ExportLogsServiceRequest``. A handler that raises is logged and
    counted under ``failed``; the others still run. Every offer belongs to
    a tenant (the sender's token decides which); a handler registered with
    ``tenant_aware=True`` is called as ``handler(tenant, payload)``, the
    others as ``handler(payload)``. With ``coalesce`` a signal's queued
    offers of one tenant are combined (up to ``max_coalesced_items``)
    before its handlers run, so a backlog is worked off in larger, cheaper
    calls; raw handlers still get every request.
    """

    def __init__(
        self,
        *,
        traces: list[Callable[[Any], Any]] | Callable[[Any], Any] | None = None,
        metrics: list[Callable[[Any], Any]] | Callable[[Any], Any] | None = None,
        logs: list[Callable[[Any], Any]] | Callable[[Any], Any] | None = None,
        max_pending_items: int = 500_000,
        coalesce: dict[Signal, Callable[[list[Any]], Any]] | None = None,
        max_coalesced_items: int = 20_000,
    ) -> None:
        if max_pending_items < 1:
            raise ValueError(f"max_pending_items must be >= 1, got {max_pending_items}")
        self.max_pending_items = max_pending_items
        self._handlers: dict[Signal, list[Callable[[Any], Any]]] = {
            "traces": _as_list(traces),
            "metrics": _as_list(metrics),
            "logs": _as_list(logs),
        }
        self._raw_handlers: dict[Signal, list[Callable[[Any], Any]]] = {"traces": [], "metrics": [], "logs": []}
        self._tenant_aware: set[int] = set()
        self._coalesce = dict(coalesce or {})
        self._max_coalesced_items = max_coalesced_items
        self._queue: deque[tuple[Signal, str, tuple[Any, Any], int]] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        signals = ("traces", "metrics", "logs")
        self._accepted = dict.fromkeys(signals, 0)
        self._refused = dict.fromkeys(signals, 0)
        self._processed = dict.fromkeys(signals, 0)
        self._failed = dict.fromkeys(signals, 0)

    def add_handler(
        self, signal: Signal, handler: Callable[..., Any], *, raw: bool = False, tenant_aware: bool = False
    ) -> None:
        """Register one more handler (before ``start``).

        A handler gets the decoded form (a ``SpanBatch`` for traces, the
        request for metrics and logs); with ``raw=True`` it gets the request
        as received (exporters forwarding it), and is skipped when a
        receiver offered no request. ``tenant_aware`` handlers get the
        tenant first.
        """
        (self._raw_handlers if raw else self._handlers)[signal].append(handler)
        if tenant_aware:
            self._tenant_aware.add(id(handler))

    # --------------------------------------------------------------- offers

    def _offer(self, signal: Signal, payload: Any, items: int, tenant: str) -> bool:
        with self._lock:
            if self._stopping or (self._pending + items > self.max_pending_items and self._pending > 0):
                self._refused[signal] += items
                return False
            self._queue.append((signal, tenant, payload, items))
            self._pending += items
            self._accepted[signal] += items
            self._ready.notify()
            return True

    def offer_traces(self, batch: Any, request: Any = None, tenant: str = DEFAULT_TENANT) -> bool:
        """Offer decoded spans; ``request`` (the received protobuf) is what raw handlers forward."""
        return self._offer("traces", (batch, request), len(batch), tenant)

    def offer_metrics(self, request: Any, points: int, tenant: str = DEFAULT_TENANT) -> bool:
        return self._offer("metrics", (request, request), points, tenant)

    def offer_logs(self, request: Any, records: int, tenant: str = DEFAULT_TENANT) -> bool:
        return self._offer("logs", (request, request), records, tenant)

    # --------------------------------------------------------------- worker

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="trm-otel-pipeline", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                signal, tenant, (decoded, raw), items = self._queue.popleft()
                raws = [raw]
                combine = self._coalesce.get(signal)
                if combine is not None and self._queue and self._queue[0][:2] == (signal, tenant):
                    # Under load, hand the handlers several offers (of one tenant) at once.
                    parts = [decoded]
                    while self._queue and self._queue[0][:2] == (signal, tenant) and items < self._max_coalesced_items:
                        _, _, (more, more_raw), more_items = self._queue.popleft()
                        parts.append(more)
                        raws.append(more_raw)
                        items += more_items
                    decoded = combine(parts)
                self._busy = True
            try:
                calls = [(h, decoded) for h in self._handlers[signal]]
                calls += [(h, r) for r in raws if r is not None for h in self._raw_handlers[signal]]
                for handler, payload in calls:
                    try:
                        if id(handler) in self._tenant_aware:
                            handler(tenant, payload)
                        else:
                            handler(payload)
                    except Exception:  # noqa: BLE001 - one bad handler must not stop the pipeline
                        _logger.exception("%s handler %r failed", signal, handler)
                        with self._lock:
                            self._failed[signal] += items
            finally:
                with self._lock:
                    self._pending -= items
                    self._processed[signal] += items
                    self._busy = False
                    if not self._queue:
                        self._idle.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything accepted so far is processed."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Refuse new offers, process what was accepted, stop the worker."""
        with self._lock:
            self._stopping = True
            self._ready.notify_all()
        if self._thread is None:
            return not self._queue
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def counters(self) -> PipelineCounters:
        with self._lock:
            return PipelineCounters(
                accepted=dict(self._accepted),
                refused=dict(self._refused),
                processed=dict(self._processed),
                failed=dict(self._failed),
                pending_items=self._pending,
                max_pending_items=self.max_pending_items,
            )


def _as_list(value: list[Callable[[Any], Any]] | Callable[[Any], Any] | None) -> list[Callable[[Any], Any]]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
