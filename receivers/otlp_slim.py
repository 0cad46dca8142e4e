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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = ["SlimTraceRequest", "full_trace_request", "resource_of", "slim_trace_request", "status_codes"]

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
