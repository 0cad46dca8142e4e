"""OTLP/JSON bodies -> the protobuf request, so one decoder serves both encodings.

    >>> from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    >>> body = b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5B8EFFF798038103D269B633813FC60C"}]}]}]}'
    >>> parse_json(body, ExportTraceServiceRequest).resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    '5b8efff798038103d269b633813fc60c'

OTLP/JSON is the proto3 JSON mapping with deviations (OTLP specification,
"JSON Protobuf Encoding"): trace and span ids are *hex* strings
(case-insensitive), not base64; enums are integers; int64 values may be
strings or numbers; unknown fields must be ignored. So the body is parsed
with orjson, the id fields (spans, links, log records, exemplars) are
rewritten from hex to the base64 that ``json_format.ParseDict`` expects,
and ``ParseDict`` builds the message with ``ignore_unknown_fields``.

Hex is validated strictly here because ``ParseDict``'s base64 decoding
silently skips characters it does not know. Every error is an
:class:`InvalidData` naming the JSON field path
(``resourceSpans[0].scopeSpans[0].spans[3].traceId``), found by re-parsing
piece by piece only after a failure, so the happy path pays nothing for it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from functools import cache
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from trm_otel.receivers.otlp_errors import InvalidData

__all__ = ["parse_json"]

M = TypeVar("M", bound=Message)

_IDS = ("traceId", "spanId")
_METRIC_DATA = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")
# Request type -> (steps from the top to objects holding hex ids, the id keys there).
# A step lists the keys to descend through (several for the metric data oneof).
_ID_LOCATIONS: dict[str, tuple[tuple[tuple[tuple[str, ...], ...], tuple[str, ...]], ...]] = {
    "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest": (
        ((("resourceSpans",), ("scopeSpans",), ("spans",)), (*_IDS, "parentSpanId")),
        ((("resourceSpans",), ("scopeSpans",), ("spans",), ("links",)), _IDS),
    ),
    "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest": (
        ((("resourceLogs",), ("scopeLogs",), ("logRecords",)), _IDS),
    ),
    "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest": (
        ((("resourceMetrics",), ("scopeMetrics",), ("metrics",), _METRIC_DATA, ("dataPoints",), ("exemplars",)), _IDS),
    ),
}
_PREFIX = re.compile(r"^(Failed to parse \w+ field: )+")


@cache
def _snake(name: str) -> str:
    """``traceId`` -> ``trace_id``: ParseDict also accepts proto field names, so ids are looked up under both."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def parse_json(body: bytes | str, message_class: type[M]) -> M:
    """An OTLP/JSON request body as the protobuf ``message_class`` (an ``Export*ServiceRequest``).

    Raises :class:`InvalidData` for invalid JSON, bad hex ids, and values of
    the wrong type, naming the field path.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidData(f"request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidData(f"request body must be a JSON object, got {_json_type(document)}")
    descriptor = message_class.DESCRIPTOR
    for steps, keys in _ID_LOCATIONS.get(descriptor.full_name, ()):
        for holder, path in _holders(document, steps, ""):
            _hex_to_base64(holder, keys, path)
    message = message_class()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        field, problem = _locate(document, descriptor, "")
        raise InvalidData(problem or _clean(exc), field=field or None) from None
    return message


def _holders(
    node: dict[str, Any], steps: tuple[tuple[str, ...], ...], path: str
) -> Iterator[tuple[dict[str, Any], str]]:
    """Every object reached by ``steps`` (through arrays and single objects), with its JSON path."""
    if not steps:
        yield node, path
        return
    for camel in steps[0]:
        key = camel if camel in node else _snake(camel)
        child = node.get(key)
        where = f"{path}.{key}" if path else key
        if isinstance(child, list):
            for i, item in enumerate(child):
                if isinstance(item, dict):
                    yield from _holders(item, steps[1:], f"{where}[{i}]")
        elif isinstance(child, dict):
            yield from _holders(child, steps[1:], where)


def _hex_to_base64(holder: dict[str, Any], keys: tuple[str, ...], path: str) -> None:
    for camel in keys:
        for key in (camel, _snake(camel)):
            value = holder.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise InvalidData(f"must be a hex string, got {_json_type(value)}", field=f"{path}.{key}")
            try:
                raw = binascii.unhexlify(value)
            except (binascii.Error, ValueError):
                raise InvalidData(
                    f"must be a hex string (an even number of 0-9, a-f), got {value[:40]!r}", field=f"{path}.{key}"
                ) from None
            holder[key] = base64.b64encode(raw).decode("ascii")


def _locate(value: Any, descriptor: Descriptor, path: str) -> tuple[str, str]:
    """The innermost ``(field path, problem)`` that makes ``value`` unparsable as ``descriptor``.

    Only runs after ``ParseDict`` failed: it re-parses each field on its
    own and descends into the first one that fails.
    """
    if not isinstance(value, dict):
        return path, f"must be a JSON object, got {_json_type(value)}"
    fields = {f.json_name: f for f in descriptor.fields} | {f.name: f for f in descriptor.fields}
    cls = message_factory.GetMessageClass(descriptor)
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            continue
        where = f"{path}.{key}" if path else key
        problem = _parse_error({key: item}, cls)
        if problem is None:
            continue
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            return where, problem
        if not field.is_repeated:
            return _locate(item, field.message_type, where)
        if not isinstance(item, list):
            return where, f"must be a JSON array, got {_json_type(item)}"
        item_cls = message_factory.GetMessageClass(field.message_type)
        for i, element in enumerate(item):
            if _parse_error(element, item_cls) is not None:
                return _locate(element, field.message_type, f"{where}[{i}]")
        return where, problem
    return path, ""


def _parse_error(value: Any, cls: type[Message]) -> str | None:
    try:
        json_format.ParseDict(value, cls(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        return _clean(exc)
    return None


def _clean(exc: Exception) -> str:
    """json_format's message without its chain of "Failed to parse X field:" prefixes."""
    text = _PREFIX.sub("", str(exc)).rstrip(".")
    return re.sub(r" at [\w.]+$", "", text) or type(exc).__name__


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
