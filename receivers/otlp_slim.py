"""A slim schema for trace requests: parse only what processing reads.

    >>> request = SlimTraceRequest.FromString(body)                   # doctest: +SKIP
    >>> status_codes([span.status for span in spans])                 # doctest: +SKIP

The receiver needs eight fields of each span; the full OTLP schema makes
upb build attributes, events and links too, and reading ``status.code``
creates a wrapper object per span (the single costliest field in
profiles). This schema declares the same field numbers with ``status`` and
``resource`` as raw bytes and everything else unknown, which protobuf keeps
byte for byte: re-serializing a slim request yields what was received, so
forwarding and the debug exporter lose nothing. Decoding gets about 25%
faster end to end.

The same property serves what is read of a few spans only:
:class:`SlimSpanDetails` re-serializes just the spans that became exemplar
candidates (the full span, attributes included, for
:func:`trm_otel.processors.exemplars.resolve` to parse when read), and
:func:`attribute_values` finds configured dimension attributes in the
serialized spans with one regular-expression pass, instead of building an
attribute object per span.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from operator import methodcaller
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "SlimSpanDetails",
    "SlimTraceRequest",
    "attribute_values",
    "full_trace_request",
    "resource_of",
    "slim_trace_request",
    "status_codes",
]

_F = descriptor_pb2.FieldDescriptorProto


def _build() -> type:
    file = descriptor_pb2.FileDescriptorProto(name="trm_otel/slim_trace.proto", package="trm_otel.slim", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str | None]) -> None:
        body = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = body.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name

    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    # Field numbers are OTLP's (opentelemetry/proto/trace/v1/trace.proto).
    message(
        "Span",
        ("trace_id", 1, _F.TYPE_BYTES, one, None),
        ("span_id", 2, _F.TYPE_BYTES, one, None),
        ("parent_span_id", 4, _F.TYPE_BYTES, one, None),
        ("name", 5, _F.TYPE_STRING, one, None),
        ("kind", 6, _F.TYPE_INT32, one, None),
        ("start_time_unix_nano", 7, _F.TYPE_FIXED64, one, None),
        ("end_time_unix_nano", 8, _F.TYPE_FIXED64, one, None),
        ("status", 15, _F.TYPE_BYTES, one, None),
    )
    message("ScopeSpans", ("spans", 2, _F.TYPE_MESSAGE, many, ".trm_otel.slim.Span"))
    message(
        "ResourceSpans",
        ("resource", 1, _F.TYPE_BYTES, one, None),
        ("scope_spans", 2, _F.TYPE_MESSAGE, many, ".trm_otel.slim.ScopeSpans"),
    )
    message("ExportTraceServiceRequest", ("resource_spans", 1, _F.TYPE_MESSAGE, many, ".trm_otel.slim.ResourceSpans"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("trm_otel.slim.ExportTraceServiceRequest"))


SlimTraceRequest: Any = _build()

# Serialized Status messages as senders write them: unset, OK, ERROR (no message).
_KNOWN_STATUS = {b"": 0, b"\x18\x00": 0, b"\x18\x01": 1, b"\x18\x02": 2}


def status_codes(raw: Sequence[bytes]) -> np.ndarray:
    """``status.code`` of each span from its serialized Status (int64, any value kept).

    Raises ``DecodeError`` naming the span index for a Status that does not parse.
    """
    known = _KNOWN_STATUS.get
    codes = list(map(known, raw))
    if None in codes:
        for i, code in enumerate(codes):
            if code is None:
                try:
                    codes[i] = trace_pb2.Status.FromString(raw[i]).code
                except DecodeError:
                    raise DecodeError(f"span {i}: status is not a valid Status message") from None
    return np.asarray(codes, dtype=np.int64)


def resource_of(raw: bytes) -> resource_pb2.Resource:
    """The resource of a slim ``ResourceSpans`` (kept as bytes until needed)."""
    return resource_pb2.Resource.FromString(raw)


def slim_trace_request(request: Any) -> Any:
    """The slim form of a full request (JSON bodies are parsed into the full schema first)."""
    if isinstance(request, SlimTraceRequest):
        return request
    return SlimTraceRequest.FromString(request.SerializeToString())


def full_trace_request(request: Any) -> trace_service_pb2.ExportTraceServiceRequest:
    """The full OTLP message again (for readers that want attributes, like the debug exporter)."""
    if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
        return request
    return trace_service_pb2.ExportTraceServiceRequest.FromString(request.SerializeToString())


# ------------------------------------------------------------ span details

_SERIALIZE = methodcaller("SerializeToString")
#: A captured span larger than this is parsed at once rather than kept as bytes until read.
MAX_CAPTURED_BYTES = 8192
_MAX_DIMENSION_LENGTH = 256


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return value, pos


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key_pattern(keys: Sequence[str]) -> re.Pattern[bytes]:
    """A top-level span attribute (field 9, tag 0x4A) whose key is one of ``keys``, up to its value's length."""
    alternatives = b"|".join(
        re.escape(_encode_varint(len(k.encode())) + k.encode()) for k in sorted(keys, key=len, reverse=True)
    )
    return re.compile(rb"\x4a[\x80-\xff]{0,4}[\x00-\x7f]\x0a(" + alternatives + rb")\x12", re.DOTALL)


def _any_value_text(data: bytes, pos: int, limit: int) -> str | None:
    """The serialized ``AnyValue`` at ``pos`` (its length varint first) as text; ``None`` if empty or nested."""
    length, pos = _varint(data, pos)
    end = min(pos + length, limit)
    if length == 0 or pos >= end:
        return None
    tag = data[pos]
    if tag == 0x0A:  # string_value
        size, start = _varint(data, pos + 1)
        return data[start : min(start + size, end)].decode("utf-8", "replace")[:_MAX_DIMENSION_LENGTH]
    if tag == 0x10:  # bool_value
        return "true" if _varint(data, pos + 1)[0] else "false"
    if tag == 0x18:  # int_value (two's complement)
        value = _varint(data, pos + 1)[0]
        return str(value - (1 << 64) if value >= 1 << 63 else value)
    if tag == 0x21 and pos + 9 <= end:  # double_value
        return repr(struct.unpack_from("<d", data, pos + 1)[0])
    return None


def attribute_values(raw_spans: Sequence[bytes], keys: Sequence[str]) -> list[list[str | None]]:
    """Per key, each serialized span's attribute value as text (``None`` where absent).

    One regular-expression pass over the joined spans finds only the
    attributes asked for; Python runs per match, not per span or attribute.
    Span attributes are field 9 of ``Span`` (tag ``0x4A``), which no nested
    message of a span uses at its top level, so event and link attributes
    are not mistaken for them. Strings, booleans, integers and doubles are
    read (strings cut at 256 characters); arrays, maps and bytes read as
    absent. The first attribute of a key wins. A byte sequence inside a
    value that mimics an attribute can only label the span it is in.
    """
    columns: list[list[str | None]] = [[None] * len(raw_spans) for _ in keys]
    if not keys or not raw_spans:
        return columns
    joined = b"".join(raw_spans)
    ends = np.cumsum(np.fromiter(map(len, raw_spans), np.int64, len(raw_spans)))
    column_of = {_encode_varint(len(k.encode())) + k.encode(): i for i, k in enumerate(keys)}
    for match in _key_pattern(keys).finditer(joined):
        span = int(np.searchsorted(ends, match.start(), side="right"))
        column = columns[column_of[match.group(1)]]
        if column[span] is None:
            column[span] = _any_value_text(joined, match.end(), int(ends[span]))
    return columns


class SlimSpanDetails:
    """Trace ids and attributes of a decoded request's spans, read only for the rows asked for.

    Holds the (slim) request and its ``blocks``, the ``(first flat row,
    resource index, scope index)`` runs the decoder built, and finds a
    span by its path when asked: no per-span object is kept while the batch
    waits in the pipeline.
    """

    def __init__(self, request: Any, blocks: Sequence[tuple[int, int, int]], n: int) -> None:
        self.request = request
        self.blocks = blocks
        self.n = n
        self._starts = np.asarray([b[0] for b in blocks], np.int64)
        self._resources: dict[int, dict[str, str]] = {}

    def _spans(self, rows: Sequence[int]) -> list[Any]:
        block_of = np.searchsorted(self._starts, np.asarray(rows, np.int64), side="right") - 1
        resource_spans = self.request.resource_spans
        out = []
        for row, b in zip(rows, block_of.tolist()):
            first, ri, si = self.blocks[b]
            out.append(resource_spans[ri].scope_spans[si].spans[row - first])
        return out

    @property
    def resource_of_row(self) -> np.ndarray:
        sizes = np.diff(np.append(self._starts, self.n))
        return np.repeat(np.asarray([b[1] for b in self.blocks], np.int64), sizes)

    def capture(self, rows: list[int]) -> list[Any]:
        from trm_otel.processors.exemplars import resolve

        raw = [span.SerializeToString() for span in self._spans(rows)]
        return [resolve(r) if len(r) > MAX_CAPTURED_BYTES else r for r in raw]

    def attribute_values(self, rows: np.ndarray, keys: Sequence[str]) -> list[list[str | None]]:
        raw: list[bytes] = []
        resource_spans = self.request.resource_spans
        for _, ri, si in self.blocks:
            raw.extend(map(_SERIALIZE, resource_spans[ri].scope_spans[si].spans))
        rows = np.asarray(rows, np.int64)
        everything = rows.size == len(raw) and bool((rows == np.arange(rows.size)).all())
        picked = raw if everything else [raw[i] for i in rows.tolist()]
        columns = attribute_values(picked, keys)
        resources = self.resource_of_row[rows]
        for ri in np.unique(resources).tolist():
            found = self._resource_attributes(ri)
            fallback = [found.get(k) for k in keys]
            if not any(v is not None for v in fallback):
                continue
            for row in np.flatnonzero(resources == ri).tolist():
                for column, value in zip(columns, fallback):
                    if column[row] is None:
                        column[row] = value
        return columns

    def _resource_attributes(self, index: int) -> dict[str, str]:
        found = self._resources.get(index)
        if found is None:
            from trm_otel.processors.exemplars import any_value_text as text

            try:
                resource = resource_of(self.request.resource_spans[index].resource)
                found = {kv.key: v for kv in resource.attributes if (v := text(kv.value)) is not None}
            except DecodeError:
                found = {}
            self._resources[index] = found
        return found
