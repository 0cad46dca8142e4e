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

That search is bounded, because a client chooses its cost: it follows the
field names in ``ParseDict``'s own message instead of re-parsing each
field, finds the bad element of a long array by bisection (a few parses of
halves, not one per element), and stops at a deadline of about two parses
of the whole request, naming the deepest path found by then. Without these
a 3 MB body with one bad value at the end of an array held the event loop
for 10 s, and ten levels of nesting around it for 30 s.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
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
_FIELD_NAME = re.compile(r"Failed to parse (\w+) field: ")
#: The least time the search for a failing field may take; otherwise it is
#: allowed twice the time the failed parse took.
_MIN_LOCATE_S = 0.05


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
    started = time.monotonic()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        budget = max(_MIN_LOCATE_S, 2 * (time.monotonic() - started))
        field, problem = _Locator(exc, time.monotonic() + budget).locate(document, descriptor, "")
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


class _Locator:
    """The innermost ``(field path, problem)`` that made ``ParseDict`` fail, found within a deadline.

    Only runs after a failure. ``ParseDict`` names each field it failed in
    (``Failed to parse resourceSpans field: Failed to parse scopeSpans
    field: ...``) except the members of a oneof that fail with a
    ``ParseError`` (``arrayValue``, ``gauge``, ...), and never an array
    index. So at each object the named field is taken without re-parsing;
    the unnamed oneof members that come before it are tried on their own
    (usually there is one, taken as is); in an array the first bad element
    is found by parsing halves. Past the deadline the deepest path reached
    is the answer, with the parser's own message.
    """

    def __init__(self, error: BaseException, deadline: float) -> None:
        chain = _PREFIX.match(str(error))
        self.names: list[str] = _FIELD_NAME.findall(chain.group(0)) if chain else []
        self.deadline = deadline

    def late(self) -> bool:
        return time.monotonic() > self.deadline

    def locate(self, value: Any, descriptor: Descriptor, path: str) -> tuple[str, str]:
        if not isinstance(value, dict):
            return path, f"must be a JSON object, got {_json_type(value)}"
        if self.late():
            return path, ""
        fields = {f.json_name: f for f in descriptor.fields} | {f.name: f for f in descriptor.fields}
        cls = message_factory.GetMessageClass(descriptor)
        named = self.names[0] if self.names and self.names[0] in value and self.names[0] in fields else None
        unnamed: list[str] = []  # oneof members before the named field: ParseDict leaves them out of its message
        for key in value:
            if key == named:
                break
            if key in fields and fields[key].containing_oneof is not None:
                unnamed.append(key)
        key, problem = None, ""
        if named is None and len(unnamed) == 1:
            key = unnamed[0]  # the only field the failure can be in
        else:
            for candidate in unnamed:
                if self.late():
                    return path, ""
                problem = _parse_error({candidate: value[candidate]}, cls) or ""
                if problem:
                    key = candidate
                    break
            else:
                if named is None:
                    return path, ""
                key = named
                self.names = self.names[1:]
        field = fields[key]
        item = value[key]
        where = f"{path}.{key}" if path else key
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            return where, problem
        if not field.is_repeated:
            return self.locate(item, field.message_type, where)
        if not isinstance(item, list):
            return where, f"must be a JSON array, got {_json_type(item)}"
        index = self.first_bad(item, key, cls)
        if index is None:
            return where, problem
        return self.locate(item[index], field.message_type, f"{where}[{index}]")

    def first_bad(self, items: list[Any], key: str, cls: type[Message]) -> int | None:
        """Index of the first element of the failing array ``key`` that fails, by bisection; None if late."""
        lo, hi = 0, len(items)
        while hi - lo > 1:
            if self.late():
                return None
            mid = (lo + hi) // 2
            if _parse_error({key: items[lo:mid]}, cls) is None:
                lo = mid
            else:
                hi = mid
        return lo if lo < len(items) else None


def _parse_error(value: Any, cls: type[Message]) -> str | None:
    try:
        json_format.ParseDict(value, cls(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
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
