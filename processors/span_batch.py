"""Spans as columns: the one shape aggregation reads, whatever the source.

    >>> rows, resources = processor.drain()                            # doctest: +SKIP
    >>> batch, rejected, repaired = batch_from_rows(rows, resources)   # doctest: +SKIP
    >>> batch.duration_ms[:3]                                          # doctest: +SKIP

The span processor buffers one :data:`SpanRow` tuple per span, and the OTLP
receiver decodes requests into the same :class:`SpanBatch` columns, so
everything downstream (grouping, histograms, parent/child time) is numpy
over arrays. Validation runs on whole columns; only a batch that contains a
bad timestamp takes the per-row path to find which rows to drop.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

__all__ = ["SpanBatch", "SpanRow", "UNKNOWN_SERVICE", "batch_from_rows", "row_from_public_api"]

UNKNOWN_SERVICE = "unknown_service"

#: (start ns, end ns, name, SDK kind value, status code value, span id, parent span id or 0, resource id)
SpanRow = tuple[Any, Any, Any, int, int, int, int, int]

_MAX_NS = 2**63


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
    def concat(cls, batches: list[SpanBatch]) -> SpanBatch:
        """One batch from several: aggregation's fixed cost per call is paid once."""
        if len(batches) == 1:
            return batches[0]
        return cls(
            service=[s for b in batches for s in b.service],
            name=[n for b in batches for n in b.name],
            **{
                column: np.concatenate([getattr(b, column) for b in batches])
                for column in ("kind", "status", "end_ns", "duration_ms", "span_id", "parent_span_id")
            },
        )


def row_from_public_api(span: Any) -> tuple[SpanRow, Any]:
    """A row read through ReadableSpan's public properties, and the span's resource."""
    parent = span.parent
    resource = span.resource
    row = (
        span.start_time,
        span.end_time,
        span.name,
        span.kind.value,
        span.status.status_code.value,
        span.context.span_id,
        0 if parent is None else parent.span_id,
        id(resource),
    )
    return row, resource


def _service_name(resource: Any) -> tuple[str, str | None]:
    """The resource's ``service.name`` and the repair it needed, if any."""
    attributes = getattr(resource, "attributes", None) or {}
    value = attributes.get("service.name")
    if value is None or value == "":
        return UNKNOWN_SERVICE, "missing_service_name"
    if not isinstance(value, str):
        return str(value), "non_string_attribute"
    return value, None


def _valid_timestamps(starts: list[Any], ends: list[Any], rejected: Counter[str]) -> np.ndarray:
    """Row mask of usable timestamps, counting each bad row once by its reason."""
    keep = np.ones(len(starts), dtype=bool)
    for i, (start, end) in enumerate(zip(starts, ends)):
        if start is None or end is None:
            reason = "missing_timestamps"
        elif not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
            reason = "missing_timestamps"
        elif not (math.isfinite(start) and math.isfinite(end)):
            reason = "invalid_duration"
        elif not (0 <= start < _MAX_NS and 0 <= end < _MAX_NS):
            reason = "invalid_timestamp"
        else:
            continue
        keep[i] = False
        rejected[reason] += 1
    return keep


def batch_from_rows(
    rows: list[SpanRow], resources: Mapping[int, Any]
) -> tuple[SpanBatch, Counter[str], Counter[str]]:
    """Columns from buffered rows, with what was rejected or repaired, by reason.

    Never raises for bad span data: a row is counted under a reason and
    dropped (``end_before_start``, ``missing_timestamps``,
    ``invalid_duration``, ``invalid_timestamp``) or repaired and kept
    (``missing_service_name``, ``non_string_attribute``, ``zero_duration``).
    """
    rejected: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    if not rows:
        return _empty(), rejected, repaired
    n = len(rows)
    # One C-level pass per column; zip(*rows) costs three times as much.
    def column(index: int, dtype: type) -> np.ndarray:
        return np.fromiter(map(itemgetter(index), rows), dtype, n)

    names = list(map(itemgetter(2), rows))
    # One tracer provider means one resource: then no per-row resource work.
    single_resource = next(iter(resources)) if len(resources) == 1 else None
    resource_ids = [single_resource] * n if single_resource is not None else list(map(itemgetter(7), rows))
    try:
        start_ns = column(0, np.int64)
        end_ns = column(1, np.int64)
        keep = (start_ns >= 0) & (end_ns >= 0)
        if not keep.all():
            rejected["invalid_timestamp"] += int(np.count_nonzero(~keep))
    except (TypeError, ValueError, OverflowError):
        starts, ends = list(map(itemgetter(0), rows)), list(map(itemgetter(1), rows))
        keep = _valid_timestamps(starts, ends, rejected)
        start_ns = np.array([int(s) if k else 0 for s, k in zip(starts, keep)], dtype=np.int64)
        end_ns = np.array([int(e) if k else 0 for e, k in zip(ends, keep)], dtype=np.int64)
    backwards = keep & (end_ns < start_ns)
    if backwards.any():
        rejected["end_before_start"] += int(np.count_nonzero(backwards))
        keep &= ~backwards

    if keep.all():
        rows_kept: slice | np.ndarray = slice(None)
        name = names
    else:
        rows_kept = np.flatnonzero(keep)
        picked = rows_kept.tolist()
        name = [names[i] for i in picked]
        resource_ids = [resource_ids[i] for i in picked]

    distinct = {single_resource} if single_resource is not None else set(resource_ids)
    services_by_resource = {r: _service_name(resources.get(r)) for r in distinct}
    if len(services_by_resource) == 1:
        service = [next(iter(services_by_resource.values()))[0]] * len(resource_ids)
    else:
        service = [services_by_resource[r][0] for r in resource_ids]
    for resource_id, (_, repair) in services_by_resource.items():
        if repair:
            repaired[repair] += resource_ids.count(resource_id)
    if set(map(type, name)) != {str}:
        bad = [i for i, n in enumerate(name) if not isinstance(n, str)]
        repaired["non_string_attribute"] += len(bad)
        for i in bad:
            name[i] = str(name[i])

    duration_ms = ((end_ns - start_ns) / 1e6)[rows_kept]
    zero = int(np.count_nonzero(duration_ms == 0))
    if zero:
        repaired["zero_duration"] += zero
    batch = SpanBatch(
        service=service,
        name=name,
        kind=(column(3, np.int8) + 1)[rows_kept],  # SDK INTERNAL=0 -> OTLP INTERNAL=1
        status=column(4, np.int8)[rows_kept],
        end_ns=end_ns[rows_kept],
        duration_ms=duration_ms,
        span_id=column(5, np.uint64)[rows_kept],
        parent_span_id=column(6, np.uint64)[rows_kept],
    )
    return batch, rejected, repaired


def _empty() -> SpanBatch:
    return SpanBatch([], [], *(np.zeros(0, dtype=t) for t in (np.int8, np.int8, np.int64, np.float64, np.uint64, np.uint64)))
