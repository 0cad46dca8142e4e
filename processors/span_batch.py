"""Spans as columns: the one shape aggregation reads, whatever the source.

    >>> rows, resources = processor.drain()                            # doctest: +SKIP
    >>> batch, rejected, repaired = batch_from_rows(rows, resources)   # doctest: +SKIP
    >>> batch.duration_ms[:3]                                          # doctest: +SKIP

The span processor buffers one :data:`SpanRow` tuple per span, and the OTLP
receiver decodes requests into the same :class:`SpanBatch` columns, so
everything downstream (grouping, histograms, parent/child time) is numpy
over arrays. Validation runs on whole columns; only a batch that contains a
bad timestamp takes the per-row path to find which rows to drop.

What aggregation reads only for a few spans (trace ids and attributes of
exemplar candidates) or only when dimensions are configured (attribute
values) stays where it came from: a batch carries its source's
:class:`SpanDetails` and, per row, the row in it (``detail_row``), and asks
through :meth:`SpanBatch.capture` and :meth:`SpanBatch.attribute_columns`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

__all__ = [
    "SdkSpanDetails",
    "SpanBatch",
    "SpanDetails",
    "SpanRow",
    "UNKNOWN_SERVICE",
    "batch_from_rows",
    "row_from_public_api",
]

UNKNOWN_SERVICE = "unknown_service"

#: (start ns, end ns, name, SDK kind value, status code value, span id, parent span id or 0, resource id)
SpanRow = tuple[Any, ...]


class SpanDetails(Protocol):
    """Where a batch's spans came from, for what is read of a few of them only."""

    def capture(self, rows: list[int]) -> list[Any]:
        """A handle per row for :func:`trm_otel.processors.exemplars.resolve` (trace id, attributes)."""
        ...

    def attribute_values(self, rows: np.ndarray, keys: Sequence[str]) -> list[list[str | None]]:
        """Per key, each row's span attribute as text, else its resource's, else ``None``."""
        ...

_MAX_NS = 2**63


@dataclass(frozen=True, slots=True)
class SpanBatch:
    """Valid spans, one row each.

    ``kind`` and ``status`` use OTLP enum numbers (SPAN_KIND_SERVER = 2,
    STATUS_CODE_ERROR = 2); ``span_id`` and ``parent_span_id`` are the 64-bit
    ids as unsigned integers, 0 meaning "no parent". ``details`` (optional)
    answers for the spans' trace ids and attributes, ``detail_row`` giving
    each row's index there (-1: none).
    """

    service: list[str]
    name: list[str]
    kind: np.ndarray
    status: np.ndarray
    end_ns: np.ndarray
    duration_ms: np.ndarray
    span_id: np.ndarray
    parent_span_id: np.ndarray
    details: SpanDetails | None = None
    detail_row: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.service)

    def _detail_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        if self.detail_row is None:
            return rows
        return self.detail_row[rows]

    def capture(self, rows: list[int]) -> list[Any]:
        """Exemplar handles of ``rows`` (``None`` for rows without details)."""
        if self.details is None:
            return [None] * len(rows)
        at = self._detail_rows(rows)
        if (at >= 0).all():
            return self.details.capture(at.tolist())
        handles: list[Any] = [None] * len(rows)
        known = np.flatnonzero(at >= 0)
        for i, handle in zip(known.tolist(), self.details.capture(at[known].tolist())):
            handles[i] = handle
        return handles

    def attribute_columns(self, keys: Sequence[str]) -> list[list[str | None]]:
        """Per key, every row's value (span attribute, else resource attribute, else ``None``)."""
        n = len(self)
        if self.details is None or not keys:
            return [[None] * n for _ in keys]
        at = self._detail_rows(np.arange(n))
        if (at >= 0).all():
            return self.details.attribute_values(at, keys)
        columns: list[list[str | None]] = [[None] * n for _ in keys]
        known = np.flatnonzero(at >= 0)
        for column, values in zip(columns, self.details.attribute_values(at[known], keys)):
            for i, value in zip(known.tolist(), values):
                column[i] = value
        return columns

    @classmethod
    def concat(cls, batches: list[SpanBatch]) -> SpanBatch:
        """One batch from several: aggregation's fixed cost per call is paid once."""
        if len(batches) == 1:
            return batches[0]
        details: SpanDetails | None = None
        detail_row = None
        if any(b.details is not None for b in batches):
            details, detail_row = _JoinedDetails.of(batches)
        return cls(
            service=[s for b in batches for s in b.service],
            name=[n for b in batches for n in b.name],
            **{
                column: np.concatenate([getattr(b, column) for b in batches])
                for column in ("kind", "status", "end_ns", "duration_ms", "span_id", "parent_span_id")
            },
            details=details,
            detail_row=detail_row,
        )


class _JoinedDetails:
    """The details of concatenated batches: rows numbered through, each part's own range."""

    def __init__(self, parts: list[SpanDetails], starts: np.ndarray) -> None:
        self.parts = parts
        self.starts = starts  # first joined row of each part, then the total

    @classmethod
    def of(cls, batches: list[SpanBatch]) -> tuple[_JoinedDetails, np.ndarray]:
        parts: list[SpanDetails] = []
        starts = [0]
        rows = []
        for batch in batches:
            n = len(batch)
            if batch.details is None:
                rows.append(np.full(n, -1, np.int64))
                continue
            own = batch.detail_row if batch.detail_row is not None else np.arange(n)
            size = int(own.max()) + 1 if own.size else 0
            rows.append(np.where(own >= 0, own + starts[-1], -1))
            parts.append(batch.details)
            starts.append(starts[-1] + size)
        return cls(parts, np.asarray(starts, np.int64)), np.concatenate(rows)

    def _split(self, rows: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        part = np.searchsorted(self.starts, rows, side="right") - 1
        out = []
        for p in np.unique(part).tolist():
            where = np.flatnonzero(part == p)
            out.append((p, where, rows[where] - self.starts[p]))
        return out

    def capture(self, rows: list[int]) -> list[Any]:
        handles: list[Any] = [None] * len(rows)
        for p, where, local in self._split(np.asarray(rows, np.int64)):
            for i, handle in zip(where.tolist(), self.parts[p].capture(local.tolist())):
                handles[i] = handle
        return handles

    def attribute_values(self, rows: np.ndarray, keys: Sequence[str]) -> list[list[str | None]]:
        columns: list[list[str | None]] = [[None] * len(rows) for _ in keys]
        for p, where, local in self._split(np.asarray(rows, np.int64)):
            for column, values in zip(columns, self.parts[p].attribute_values(local, keys)):
                for i, value in zip(where.tolist(), values):
                    column[i] = value
        return columns


class SdkSpanDetails:
    """Details of buffered SDK rows: trace ids and attributes of the spans the processor kept them for.

    The span processor keeps ``(trace id, attribute mapping)`` only for
    spans that may become exemplars (or for all, when dimensions need
    them), keyed by span id; a row without them reads as having none.
    """

    def __init__(self, rows: list[SpanRow], captured: Mapping[int, Any], resources: Mapping[int, Any]) -> None:
        self.rows = rows
        self.captured = captured
        self.resources = resources

    def capture(self, rows: list[int]) -> list[Any]:
        missing = (0, None)
        captured = self.captured
        return [captured.get(self.rows[i][5], missing) for i in rows]

    def attribute_values(self, rows: np.ndarray, keys: Sequence[str]) -> list[list[str | None]]:
        columns: list[list[str | None]] = [[] for _ in keys]
        resource_values: dict[int, list[Any]] = {}
        for i in np.asarray(rows).tolist():
            row = self.rows[i]
            attributes = self.captured.get(row[5], (0, None))[1]
            resource = resource_values.get(row[7])
            if resource is None:
                found = getattr(self.resources.get(row[7]), "attributes", None) or {}
                resource = resource_values[row[7]] = [found.get(key) for key in keys]
            for column, key, fallback in zip(columns, keys, resource):
                value = attributes.get(key) if attributes is not None else None
                value = fallback if value is None else value
                column.append(None if value is None else _text(value))
        return columns


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(map(_text, value)) + "]"
    return value if isinstance(value, str) else str(value)


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
        span.context.trace_id,  # for the processor's exemplar details; columns stop at the resource id
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
    rows: list[SpanRow], resources: Mapping[int, Any], captured: Mapping[int, Any] | None = None
) -> tuple[SpanBatch, Counter[str], Counter[str]]:
    """Columns from buffered rows, with what was rejected or repaired, by reason.

    ``captured`` maps span ids to the ``(trace id, attribute mapping)`` the
    span processor kept for exemplar candidates; the batch's
    :class:`SdkSpanDetails` read them from there.

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
        details=SdkSpanDetails(rows, captured if captured is not None else {}, resources),
        detail_row=np.arange(n)[rows_kept],
    )
    return batch, rejected, repaired


def _empty() -> SpanBatch:
    return SpanBatch([], [], *(np.zeros(0, dtype=t) for t in (np.int8, np.int8, np.int64, np.float64, np.uint64, np.uint64)))
