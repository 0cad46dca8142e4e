"""The span processor: a bounded hand-off from the application's threads.

    >>> processor = LatencySpanProcessor(buffer_size=20_000)
    >>> tracer_provider.add_span_processor(processor)                  # doctest: +SKIP

``on_end`` runs on the thread that ended the span, inside the request being
served, so it does the least possible: it copies eight plain values out of
the span into a tuple and appends it. Holding the tuple rather than the span
matters: a buffered SDK span keeps a dozen garbage-collected objects alive,
and measured here that tripled the cost of every span through GC pressure,
while a tuple of ints and strings is untracked by the collector. Validation,
series lookup and histogram updates happen in bulk when the metric reader
drains the buffer: every few thousand spans, the span that reaches the high
water pays for draining them (about 1.3 ms per 5,000 spans; see
``PercentileMetricReader._drain_unless_draining`` for why not on another
thread). A full buffer drops and counts; the application is never blocked
or raised at.

Exemplars need a span's attributes, but keeping every span's attribute
mapping alive until the drain costs as much as the rest of ``on_end``
(GC pressure again). So the reader tells the processor, after each drain,
the *floors* of the current window per (status, span name): the duration a
span must exceed to be among the slowest kept so far, and the span id it
must be below to enter the sample. Only spans that may still become
exemplars keep their trace id and attribute mapping (a dict lookup and two
comparisons); a name without floors (new, or not yet full) keeps all. When
a window ends the reader's thread drops the floors (a new window's sets are
empty), and the next drain sets the new window's.
"""

from __future__ import annotations

import collections
import inspect
import itertools
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from trm_otel.processors.span_batch import SpanRow, row_from_public_api
from trm_otel.processors.stats import PipelineStats

__all__ = ["LatencySpanProcessor"]


def _sdk_default_status() -> Any:
    """The one ``Status`` object every SDK span starts with (and keeps unless its status is set)."""
    try:
        return inspect.signature(ReadableSpan.__init__).parameters["status"].default
    except (KeyError, TypeError, ValueError):  # another SDK layout: no shortcut
        return object()


_UNSET_STATUS = _sdk_default_status()


class LatencySpanProcessor(SpanProcessor):
    """Buffers ended spans for :class:`PercentileMetricReader` to aggregate.

    When the buffer reaches a quarter of its size ``on_high_water`` is
    called (the reader drains then, on the calling thread), and once more at
    three quarters if it is still not drained (a drain was under way
    elsewhere), so the buffer only fills, and drops, when aggregation
    cannot keep up at all.
    """

    def __init__(self, buffer_size: int = 20_000, *, stats: PipelineStats | None = None) -> None:
        if buffer_size < 16:
            raise ValueError(f"buffer_size must be >= 16, got {buffer_size}")
        self.buffer_size = buffer_size
        self.stats = stats if stats is not None else PipelineStats()
        self.on_high_water: Callable[[], None] | None = None
        self._high_water = max(1, buffer_size // 4)
        self._critical = max(self._high_water + 1, buffer_size * 3 // 4)
        self._signal_at = self._high_water  # the next buffer size that calls _signal
        self._buffer: collections.deque[SpanRow] = collections.deque()
        self._resources: dict[int, Any] = {}
        self._last_resource: Any = None
        self._shutdown = False
        # Per status code: span name -> (slowest floor ns, sample ceiling span id); see the module doc.
        self.floors: tuple[dict[Any, tuple[int, int]], ...] = ({}, {}, {})
        self._limit = buffer_size
        self._captured: dict[int, Any] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts; latency is known only at its end."""

    def on_end(self, span: ReadableSpan) -> None:
        buffer = self._buffer
        size = len(buffer)
        if size >= self._limit:  # the buffer size; 0 once shut down
            self.stats.drop()
            return
        try:
            # The SDK's own fields, read directly: properties cost ~40% more here.
            # SpanContext is a tuple (trace_id, span_id, ...): index 1 is the span id.
            parent = span._parent
            resource = span._resource
            if resource is not self._last_resource:
                self._remember(resource)
            context = span._context
            start = span._start_time
            end = span._end_time
            name = span._name
            status = span._status
            # Most spans never set a status and share the SDK's default object: 0 without reading it.
            status = 0 if status is _UNSET_STATUS else status._status_code._value_
            row: SpanRow = (
                start,
                end,
                name,
                span._kind._value_,
                status,
                context[1],
                0 if parent is None else parent[1],
                id(resource),
            )
            try:
                floor = self.floors[status].get(name)
                if floor is None or end - start > floor[0] or context[1] < floor[1]:
                    self._captured[context[1]] = (context[0], span._attributes)
            except Exception:  # noqa: BLE001 - an odd name or status only loses the exemplar details
                pass
        except AttributeError:
            row = self._public_row(span)
            if row is None:
                return
        except Exception:  # noqa: BLE001 - must never raise into the application
            self.stats.reject("malformed_span")
            return
        buffer.append(row)
        if size == self._signal_at:
            self._signal(size)

    def _signal(self, size: int) -> None:
        """Calls ``on_high_water`` at high water, and at three quarters if no drain came in between."""
        self._signal_at = self._critical if size == self._high_water else self._high_water
        if self.on_high_water is not None:
            self.on_high_water()

    def _remember(self, resource: Any) -> None:
        """Keep each resource alive while its id is in the buffer (ids are not reused then)."""
        self._resources.setdefault(id(resource), resource)
        self._last_resource = resource

    def _public_row(self, span: Any) -> SpanRow | None:
        """The slow path, for span objects that are not the SDK's own class."""
        try:
            row, resource = row_from_public_api(span)
        except Exception:  # noqa: BLE001 - must never raise into the application
            self.stats.reject("malformed_span")
            return None
        self._resources.setdefault(row[7], resource)
        self._captured[row[5]] = (row[8] if len(row) > 8 else 0, getattr(span, "attributes", None))
        return row

    def drain(self) -> tuple[list[SpanRow], dict[int, Any]]:
        """Take every buffered row (safe against concurrent ``on_end``), with the resources they name."""
        rows, resources, _ = self.drain_details()
        return rows, resources

    def drain_details(self) -> tuple[list[SpanRow], dict[int, Any], dict[int, Any]]:
        """Rows, resources, and ``(trace id, attribute mapping)`` of exemplar candidates by span id.

        A span ending during the drain may have its row taken now and its
        details kept for the next drain: it then becomes an exemplar
        without trace id and attributes, never a wrong one.
        """
        captured, self._captured = self._captured, {}
        self._signal_at = self._high_water
        buffer = self._buffer
        # popleft is atomic; mapping it in C avoids a Python loop per row.
        rows = list(map(collections.deque.popleft, itertools.repeat(buffer, len(buffer))))
        return rows, self._resources, captured

    def pending(self) -> int:
        return len(self._buffer)

    def shutdown(self) -> None:
        self._shutdown = True
        self._limit = 0

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Spans are flushed by the reader's collection; nothing is held elsewhere."""
        return True

    def __repr__(self) -> str:
        return f"LatencySpanProcessor(buffer_size={self.buffer_size}, pending={self.pending()})"

