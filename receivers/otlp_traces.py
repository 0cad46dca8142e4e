"""OTLP traces -> :class:`SpanBatch`: one pass over a parsed request, validated in bulk.

    >>> from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    >>> decoded = decode_traces(ExportTraceServiceRequest(), max_age_s=86400)
    >>> len(decoded.batch), decoded.rejected, decoded.error_message
    (0, 0, '')

The receiver's hot path. A request holds a few resources and scopes and
hundreds to thousands of spans, so all Python work is per *column*, not per
span: each field is read with one ``map(attrgetter(...))`` over the flat span
list (C-level iteration), ids are joined into one buffer and read as
big-endian uint64 by numpy, and every check is an array comparison. Only a
request that actually contains bad spans pays for finding out which ones and
for naming them in the partial-success message.

A bad span is dropped and counted, never the whole request: OTLP asks for
``partial_success`` rather than an error when only some items are invalid.

protobuf must run on its ``upb`` backend: the pure-Python one parses about
300x slower, which would make the receiver the bottleneck of the daemon;
:func:`require_upb` turns that into a start-up failure instead of a mystery.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from trm_otel.processors.span_batch import UNKNOWN_SERVICE, SpanBatch
from trm_otel.receivers.otlp_errors import InvalidData
from trm_otel.receivers.otlp_slim import SlimSpanDetails, resource_of, slim_trace_request, status_codes

__all__ = ["DecodedTraces", "decode_traces", "require_upb"]

_NAME = attrgetter("name")
_KIND = attrgetter("kind")
_START = attrgetter("start_time_unix_nano")
_END = attrgetter("end_time_unix_nano")
_STATUS = attrgetter("status")  # serialized Status bytes in the slim schema
_TRACE_ID = attrgetter("trace_id")
_SPAN_ID = attrgetter("span_id")
_PARENT_ID = attrgetter("parent_span_id")
_U64_MAX = 2**64 - 1
_MAX_KIND = 5  # SPAN_KIND_CONSUMER
_MAX_STATUS = 2  # STATUS_CODE_ERROR

# Reason key -> how the partial-success message describes the spans it drops.
# Order matters: a span with several problems is counted once, under the first.
_REASONS: dict[str, str] = {
    "bad_trace_id": "with a trace_id that is not 16 bytes",
    "zero_trace_id": "with an all-zero trace_id",
    "bad_span_id": "with a span_id that is not 8 bytes",
    "zero_span_id": "with an all-zero span_id",
    "bad_parent_span_id": "with a parent_span_id that is neither empty nor 8 bytes",
    "bad_kind": "with an unknown kind",
    "bad_status": "with an unknown status.code",
    "missing_start": "without a start time",
    "end_before_start": "ending before they start",
    "too_old": "ending before the accepted range",
    "too_new": "ending after the accepted range",
}


@dataclass(frozen=True, slots=True)
class DecodedTraces:
    """The valid spans of one request, and what was dropped.

    ``error_message`` is empty when nothing was rejected; otherwise it is the
    English summary for ``ExportTracePartialSuccess.error_message``.
    ``reasons`` counts rejected spans by reason key (``end_before_start``,
    ``too_old``, ...), for the daemon's own health counters.
    """

    batch: SpanBatch
    rejected: int = 0
    error_message: str = ""
    reasons: Mapping[str, int] = field(default_factory=dict)


def require_upb() -> None:
    """Fail loudly unless protobuf parses with its fast ``upb`` backend.

    Called at receiver start-up: a daemon on the pure-Python backend would
    accept ~300x less traffic and nobody would know why.
    """
    from google.protobuf.internal import api_implementation

    found = api_implementation.Type()
    if found == "upb":
        return
    env = os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION")
    cause = (
        f"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION={env!r} is set; unset it"
        if env
        else "install the binary protobuf wheel for this platform "
        "(pip install --force-reinstall --only-binary=:all: protobuf)"
    )
    raise RuntimeError(
        f"protobuf is using its {found!r} backend, not 'upb': OTLP decoding would be about "
        f"300x slower. To fix: {cause}, then restart."
    )


def _service_name(resource: Any) -> str:
    """The resource's ``service.name`` (its text form if not a string), else ``unknown_service``."""
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            value = attribute.value
            kind = value.WhichOneof("value")
            if kind is None:
                return UNKNOWN_SERVICE
            text = value.string_value if kind == "string_value" else str(getattr(value, kind)).strip()
            return text or UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


def _id_column(raw: list[bytes], width: int, n: int, *, optional: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Ids as big-endian uint64 (0 where missing or bad) and the bad-row mask, if any row is bad.

    ``width`` is 8 (span ids) or 16 (trace ids, folded to one nonzero-iff-
    nonzero word). The common case, every id well-formed, is one pass for
    the lengths, one ``join`` and one ``frombuffer``; only a column with
    missing or bad ids pays for finding which rows they are.
    """
    try:
        lengths = bytes(map(len, raw))
    except ValueError:  # an id of 256 bytes or more
        sizes = np.fromiter(map(len, raw), np.int64, n)
    else:
        if lengths == bytes((width,)) * n:
            return _as_u64(b"".join(raw), width), None
        sizes = np.frombuffer(lengths, np.uint8)
    present = sizes == width
    bad = ~present & (sizes != 0) if optional else ~present
    ids = np.zeros(n, np.uint64)
    if bad.any():
        ids[present] = _as_u64(b"".join(compress(raw, present.tolist())), width)
        return ids, bad
    ids[present] = _as_u64(b"".join(raw), width)  # empty ids add nothing to the join
    return ids, None


def _as_u64(buffer: bytes, width: int) -> np.ndarray:
    """One uint64 per id; a 16-byte trace id becomes 0 only if both halves are 0 (all we need)."""
    if width == 8:
        return np.frombuffer(buffer, ">u8").astype(np.uint64)
    halves = np.frombuffer(buffer, np.uint64).reshape(-1, 2)
    return halves[:, 0] | halves[:, 1]


def decode_traces(
    request: Any,
    *,
    max_age_s: float,
    max_future_s: float = 300.0,
    now_ns: int | None = None,
) -> DecodedTraces:
    """Decode an ``ExportTraceServiceRequest`` into columns, dropping invalid spans.

    A span is rejected when its ids have the wrong length (or are all zero),
    its kind or status code is not a known enum value, its start time is
    missing, it ends before it starts, or its end time is outside
    ``[now - max_age_s, now + max_future_s]`` (data the windows could not
    hold, or clocks far off).
    """
    request = slim_trace_request(request)
    spans: list[Any] = []
    services: list[str] = []
    blocks: list[tuple[int, int, int]] = []  # (first flat row, resource index, scope index)
    for ri, resource_spans in enumerate(request.resource_spans):
        service: str | None = None
        for si, scope_spans in enumerate(resource_spans.scope_spans):
            block = scope_spans.spans
            if not block:
                continue
            if service is None:
                try:
                    service = _service_name(resource_of(resource_spans.resource))
                except DecodeError:
                    raise InvalidData(f"resource_spans[{ri}].resource: not a valid Resource message") from None
            blocks.append((len(spans), ri, si))
            spans.extend(block)
            services += [service] * len(block)
    n = len(spans)
    if n == 0:
        return DecodedTraces(_empty_batch())

    names = list(map(_NAME, spans))
    kind = _small_enum(spans, _KIND, n)
    try:
        status_code = status_codes(list(map(_STATUS, spans)))
    except DecodeError as error:
        raise InvalidData(f"a span's status is not a valid Status message ({error})") from None
    status = np.where((status_code < 0) | (status_code > 255), 255, status_code).astype(np.uint8)
    start = np.fromiter(map(_START, spans), np.uint64, n)
    end = np.fromiter(map(_END, spans), np.uint64, n)
    trace_raw = list(map(_TRACE_ID, spans))
    span_raw = list(map(_SPAN_ID, spans))
    parent_raw = list(map(_PARENT_ID, spans))

    checks: dict[str, np.ndarray] = {}
    trace_key, bad = _id_column(trace_raw, 16, n)
    if bad is not None:
        checks["bad_trace_id"] = bad
    if not trace_key.all():
        checks["zero_trace_id"] = trace_key == 0
    span_id, bad = _id_column(span_raw, 8, n)
    if bad is not None:
        checks["bad_span_id"] = bad
    if not span_id.all():
        checks["zero_span_id"] = span_id == 0
    parent_id, bad = _id_column(parent_raw, 8, n, optional=True)
    if bad is not None:
        checks["bad_parent_span_id"] = bad
    if kind.max() > _MAX_KIND:
        checks["bad_kind"] = kind > _MAX_KIND
    if status.max() > _MAX_STATUS:
        checks["bad_status"] = status > _MAX_STATUS
    missing = start == 0
    if missing.any():
        checks["missing_start"] = missing
    backwards = end < start
    if backwards.any():
        checks["end_before_start"] = backwards
    now = time.time_ns() if now_ns is None else now_ns
    oldest, newest = _offset(now, -max_age_s), _offset(now, max_future_s)
    old = end < np.uint64(oldest)
    if old.any():
        checks["too_old"] = old
    new = end > np.uint64(newest)
    if new.any():
        checks["too_new"] = new

    if not checks:
        kept: slice | np.ndarray = slice(None)
        rejected, message, reasons = 0, "", {}
    else:
        keep, reasons, examples = _triage(checks, n)
        kept = np.flatnonzero(keep)
        picked = kept.tolist()
        names = [names[i] for i in picked]
        services = [services[i] for i in picked]
        rejected = n - len(picked)
        context = _Context(
            blocks, spans, trace_raw, span_raw, parent_raw, start, end, now, max_age_s, max_future_s, status_code
        )
        message = _message(rejected, n, reasons, examples, context)

    end_kept = end[kept].astype(np.int64)
    batch = SpanBatch(
        service=services,
        name=names,
        kind=kind[kept].astype(np.int8),
        status=status[kept].astype(np.int8),
        end_ns=end_kept,
        duration_ms=(end_kept - start[kept].astype(np.int64)) / 1e6,
        span_id=span_id[kept],
        parent_span_id=parent_id[kept],
        # Trace ids and attributes are read from the request for the few spans that need them.
        details=SlimSpanDetails(request, blocks, n),
        detail_row=np.arange(n)[kept],
    )
    return DecodedTraces(batch, rejected, message, reasons)


def _small_enum(spans: list[Any], getter: Any, n: int) -> np.ndarray:
    """An enum column as uint8; values outside 0..255 (negative included) read as 255.

    Valid kinds and status codes fit a byte, so ``bytes(map(...))`` reads
    them in one C-level pass; only a request with an out-of-range value
    takes the slower general path.
    """
    try:
        return np.frombuffer(bytes(map(getter, spans)), np.uint8)
    except ValueError:
        values = np.fromiter(map(getter, spans), np.int64, n)
        return np.where((values < 0) | (values > 255), 255, values).astype(np.uint8)


def _offset(now_ns: int, seconds: float) -> int:
    """``now + seconds`` in ns, clamped to the uint64 timestamps OTLP can carry (inf allowed)."""
    if math.isinf(seconds):
        return 0 if seconds < 0 else _U64_MAX
    return min(max(now_ns + int(seconds * 1e9), 0), _U64_MAX)


def _triage(checks: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """Rows to keep, rejected count by reason (first reason wins), first row of each reason."""
    keep = np.ones(n, dtype=bool)
    reasons: dict[str, int] = {}
    examples: dict[str, int] = {}
    for reason in _REASONS:
        mask = checks.get(reason)
        if mask is None:
            continue
        mine = mask & keep
        count = int(np.count_nonzero(mine))
        if count:
            reasons[reason] = count
            examples[reason] = int(np.argmax(mine))
            keep &= ~mine
    return keep, reasons, examples


@dataclass(frozen=True, slots=True)
class _Context:
    """What the message needs to describe one example span (only built when something is rejected)."""

    blocks: list[tuple[int, int, int]]
    spans: list[Any]
    trace_raw: list[bytes]
    span_raw: list[bytes]
    parent_raw: list[bytes]
    start: np.ndarray
    end: np.ndarray
    now_ns: int
    max_age_s: float
    max_future_s: float
    status_code: np.ndarray

    def path(self, row: int) -> str:
        starts = [b[0] for b in self.blocks]
        i = int(np.searchsorted(starts, row, side="right")) - 1
        first, ri, si = self.blocks[i]
        return f"resource_spans[{ri}].scope_spans[{si}].spans[{row - first}]"

    def detail(self, reason: str, row: int) -> str:
        path = self.path(row)
        start, end = int(self.start[row]), int(self.end[row])
        if reason == "bad_trace_id":
            return f"{path}.trace_id: must be 16 bytes, got {len(self.trace_raw[row])}"
        if reason == "zero_trace_id":
            return f"{path}.trace_id: must not be all zeros"
        if reason == "bad_span_id":
            return f"{path}.span_id: must be 8 bytes, got {len(self.span_raw[row])}"
        if reason == "zero_span_id":
            return f"{path}.span_id: must not be all zeros"
        if reason == "bad_parent_span_id":
            return f"{path}.parent_span_id: must be empty or 8 bytes, got {len(self.parent_raw[row])}"
        if reason == "bad_kind":
            return f"{path}.kind: {self.spans[row].kind} is not a SpanKind value (0-{_MAX_KIND})"
        if reason == "bad_status":
            return f"{path}.status.code: {int(self.status_code[row])} is not a StatusCode value (0-{_MAX_STATUS})"
        if reason == "missing_start":
            return f"{path}.start_time_unix_nano: must be set"
        if reason == "end_before_start":
            return f"{path}.end_time_unix_nano: {end} is before start_time_unix_nano {start}"
        offset_s = (end - self.now_ns) / 1e9
        if reason == "too_old":
            return (
                f"{path}.end_time_unix_nano: {end} is {-offset_s:.0f} s in the past, "
                f"more than the accepted {self.max_age_s:g} s"
            )
        return (
            f"{path}.end_time_unix_nano: {end} is {offset_s:.0f} s in the future, "
            f"more than the accepted {self.max_future_s:g} s (check the sender's clock)"
        )


def _message(
    rejected: int, total: int, reasons: dict[str, int], examples: dict[str, int], context: _Context
) -> str:
    parts = [
        f"{count} {_REASONS[reason]} (first: {context.detail(reason, examples[reason])})"
        for reason, count in reasons.items()
    ]
    return f"rejected {rejected} of {total} spans: " + "; ".join(parts)


def _empty_batch() -> SpanBatch:
    return SpanBatch(
        [],
        [],
        np.zeros(0, np.int8),
        np.zeros(0, np.int8),
        np.zeros(0, np.int64),
        np.zeros(0, np.float64),
        np.zeros(0, np.uint64),
        np.zeros(0, np.uint64),
    )
