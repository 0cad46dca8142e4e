"""The span processor: a bounded hand-off from the application's threads.

    >>> processor = LatencySpanProcessor(buffer_size=20_000)
    >>> tracer_provider.add_span_processor(processor)                  # doctest: +SKIP

``on_end`` runs on the thread that ended the span, inside the request being
served, so it does the least possible: one length check and one append.
Everything else (validation, series lookup, histogram updates) happens in
bulk when the metric reader drains the buffer. When the buffer is full the
span is dropped and counted; the application is never blocked or raised at.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from trm_otel.processors.stats import PipelineStats

__all__ = ["LatencySpanProcessor"]


class LatencySpanProcessor(SpanProcessor):
    """Buffers ended spans for :class:`PercentileMetricReader` to aggregate.

    When the buffer reaches a quarter of its size ``on_high_water`` is
    called once (the reader uses it to drain early), so the buffer only
    fills, and drops, when aggregation cannot keep up at all.
    """

    def __init__(self, buffer_size: int = 20_000, *, stats: PipelineStats | None = None) -> None:
        if buffer_size < 16:
            raise ValueError(f"buffer_size must be >= 16, got {buffer_size}")
        self.buffer_size = buffer_size
        self.stats = stats if stats is not None else PipelineStats()
        self.on_high_water: Callable[[], None] | None = None
        self._high_water = max(1, buffer_size // 4)
        self._buffer: collections.deque[ReadableSpan] = collections.deque()
        self._shutdown = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts; latency is known only at its end."""

    def on_end(self, span: ReadableSpan) -> None:
        try:
            buffer = self._buffer
            size = len(buffer)
            if size >= self.buffer_size or self._shutdown:
                self.stats.drop()
                return
            buffer.append(span)
            if size == self._high_water and self.on_high_water is not None:
                self.on_high_water()
        except Exception:  # noqa: BLE001 - must never raise into the application
            self.stats.drop()

    def drain(self) -> list[ReadableSpan]:
        """Take every buffered span (safe against concurrent ``on_end``)."""
        buffer = self._buffer
        popleft = buffer.popleft
        return [popleft() for _ in range(len(buffer))]

    def pending(self) -> int:
        return len(self._buffer)

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Spans are flushed by the reader's collection; nothing is held elsewhere."""
        return True

    def __repr__(self) -> str:
        return f"LatencySpanProcessor(buffer_size={self.buffer_size}, pending={self.pending()})"

