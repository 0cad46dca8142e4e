"""Spans as columns: the one shape aggregation reads, whatever the source.

    >>> batch, rejected, repaired = batch_from_readable_spans(spans)  # doctest: +SKIP
    >>> batch.duration_ms[:3]                                          # doctest: +SKIP

The in-process span processor turns SDK ``ReadableSpan`` objects into a
:class:`SpanBatch` here, and the OTLP receiver decodes requests into the same
columns, so everything downstream (grouping, histograms, parent/child time)
is numpy over arrays. Per-span Python work is limited to pulling five fields
and validating them, and it runs off the application's thread.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SpanBatch", "UNKNOWN_SERVICE", "batch_from_readable_spans"]

UNKNOWN_SERVICE = "unknown_service"


@dataclass(frozen=True, slots=True)
class SpanBatch:
    """Valid spans, one row each.

    ``kind`` and ``status`` use OTLP enum numbers (SPAN_KIND_SERVER = 2,
    STATUS_CODE_ERROR = 2); ``span_id`` and ``parent_span_id`` are the 64-bit
    ids as unsigned integers, 0 meaning "no parent".
    """

    service: list[str]
    name: list[str]
    kind: np.ndarray
    status: np.ndarray
    end_ns: np.ndarray
    duration_ms: np.ndarray
    span_id: np.ndarray
    parent_span_id: np.ndarray

    def __len__(self) -> int:
        return len(self.service)

    @classmethod
    def empty(cls) -> SpanBatch:
        return cls([], [], *(np.zeros(0, dtype=t) for t in _COLUMN_DTYPES))


_COLUMN_DTYPES = (np.int8, np.int8, np.int64, np.float64, np.uint64, np.uint64)


_MAX_NS = 2**63


def _service_name(resource: Any) -> tuple[str, str | None]:
    """The resource's ``service.name`` and the repair it needed, if any."""
    value = resource.attributes.get("service.name") if resource is not None else None
    if value is None or value == "":
        return UNKNOWN_SERVICE, "missing_service_name"
    if not isinstance(value, str):
        return str(value), "non_string_attribute"
    return value, None


def _as_str(value: Any, repaired: Counter[str]) -> str:
    if isinstance(value, str):
        return value
    repaired["non_string_attribute"] += 1
    return str(value)


def batch_from_readable_spans(spans: Iterable[Any]) -> tuple[SpanBatch, Counter[str], Counter[str]]:
    """Columns from SDK ``ReadableSpan`` objects, with what was rejected or repaired.

    Never raises for a bad span: it is counted under a reason and skipped
    (or repaired and kept), because one broken span must not cost the batch.
    """
    rejected: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    services: list[str] = []
    names: list[str] = []
    kinds: list[int] = []
    statuses: list[int] = []
    starts: list[Any] = []
    ends: list[Any] = []
    span_ids: list[int] = []
    parent_ids: list[int] = []
    service_of_resource: dict[int, tuple[Any, str, str | None]] = {}

    for span in spans:
        try:
            start, end = span.start_time, span.end_time
            if start is None or end is None:
                rejected["missing_timestamps"] += 1
                continue
            if not (math.isfinite(start) and math.isfinite(end)):
                rejected["invalid_duration"] += 1
                continue
            if not (0 <= start < _MAX_NS and 0 <= end < _MAX_NS):
                rejected["invalid_timestamp"] += 1
                continue
            if end < start:
                rejected["end_before_start"] += 1
                continue
            resource = span.resource
            cached = service_of_resource.get(id(resource))
            if cached is None or cached[0] is not resource:
                cached = (resource, *_service_name(resource))
                service_of_resource[id(resource)] = cached
            service, repair = cached[1], cached[2]
            if repair:
                repaired[repair] += 1
            name = span.name
            context = span.context
            parent = span.parent
            services.append(service)
            names.append(name if isinstance(name, str) else _as_str(name, repaired))
            kinds.append(span.kind.value + 1)  # SDK INTERNAL=0 .. OTLP INTERNAL=1
            statuses.append(span.status.status_code.value)
            starts.append(int(start))
            ends.append(int(end))
            span_ids.append(context.span_id if context is not None else 0)
            parent_ids.append(parent.span_id if parent is not None else 0)
        except Exception:  # noqa: BLE001 - a malformed span object must not cost the batch
            rejected["malformed_span"] += 1

    end_arr = np.asarray(ends, dtype=np.int64)
    duration_ms = (end_arr - np.asarray(starts, dtype=np.int64)) / 1e6
    zero = int(np.count_nonzero(duration_ms == 0))
    if zero:
        repaired["zero_duration"] += zero
    batch = SpanBatch(
        service=services,
        name=names,
        kind=np.asarray(kinds, dtype=np.int8),
        status=np.asarray(statuses, dtype=np.int8),
        end_ns=end_arr,
        duration_ms=np.asarray(duration_ms, dtype=np.float64),
        span_id=np.asarray(span_ids, dtype=np.uint64),
        parent_span_id=np.asarray(parent_ids, dtype=np.uint64),
    )
    return batch, rejected, repaired
