"""Valid OTLP requests and structured ways to break them, for the fuzz tests and the daemon test.

    >>> chooser = RandomChooser(random.Random(7))
    >>> body = mutate_bytes(trace_request(time.time_ns()).SerializeToString(), chooser)
    >>> document = mutate_json(otlp_json(trace_request(time.time_ns())), chooser)   # bytes, maybe not JSON

Random bytes almost never get past a protobuf or JSON parser, so each
mutation starts from a *valid* request (every field a receiver reads, plus
attributes, events, links, exemplars) and breaks it the ways clients and
networks do: bit flips, truncation, wire-type swaps, overlong varints
(bytes); out-of-range numbers, wrong-length ids, odd strings, duplicated
elements, deeply nested values (fields of the message); type swaps, bad
hex ids, huge and negative numbers, numbers as strings, deep nesting,
unpaired surrogates, invalid UTF-8 (JSON).

Every mutation draws its decisions from a :class:`Chooser`: in hypothesis
tests a :class:`DataChooser` (so failures shrink to the few decisions that
matter), in the daemon test and benchmarks a seeded :class:`RandomChooser`
(fast, reproducible from the seed).
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

__all__ = [
    "REQUEST_CLASSES",
    "Chooser",
    "DataChooser",
    "RandomChooser",
    "logs_request",
    "metrics_request",
    "mutate_bytes",
    "mutate_json",
    "mutate_message",
    "otlp_json",
    "trace_request",
    "valid_request",
]

T = TypeVar("T")

#: The three signals and the request each one's endpoint parses.
REQUEST_CLASSES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


class Chooser(Protocol):
    """Where a mutation's decisions come from."""

    def integer(self, low: int, high: int) -> int:
        """An integer in ``[low, high]``."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options``."""
        ...


class RandomChooser:
    """Decisions from a seeded ``random.Random``: fast, for thousands of requests."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]


class DataChooser:
    """Decisions drawn from hypothesis' ``st.data()``, so a failing example shrinks."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data = data
        self.st = st

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(self.st.integers(low, high))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.data.draw(self.st.integers(0, len(options) - 1))]


# ------------------------------------------------------------------ valid requests


def _attributes(target: Any, seed: int) -> None:
    """One attribute of every AnyValue kind, so mutations find each of them."""
    values = [
        AnyValue(string_value=f"value-{seed}"),
        AnyValue(int_value=seed),
        AnyValue(double_value=seed / 7),
        AnyValue(bool_value=bool(seed % 2)),
        AnyValue(bytes_value=bytes([seed % 256]) * 3),
    ]
    array = AnyValue()
    array.array_value.values.extend([AnyValue(int_value=1), AnyValue(string_value="two")])
    kvlist = AnyValue()
    kvlist.kvlist_value.values.add(key="inner", value=AnyValue(double_value=0.5))
    for name, value in zip(("s", "i", "d", "b", "y", "a", "k"), [*values, array, kvlist]):
        target.add(key=f"attr.{name}", value=value)


def trace_request(now_ns: int, spans: int = 4, service: str = "fuzz", seed: int = 1) -> ExportTraceServiceRequest:
    """Valid spans of one service, ending at ``now_ns``, with every kind of field set."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    _attributes(resource_spans.resource.attributes, seed)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = "fuzz", "1.0"
    for i in range(spans):
        span = scope_spans.spans.add()
        span.trace_id = (seed * 1_000_003 + i + 1).to_bytes(16, "big")
        span.span_id = (seed * 1_000_003 + i + 1).to_bytes(8, "big")
        if i:
            span.parent_span_id = (seed * 1_000_003 + 1).to_bytes(8, "big")
        span.name = f"GET /fuzz/{i}"
        span.kind = 1 + i % 5
        span.start_time_unix_nano = now_ns - (i + 1) * 3_000_000
        span.end_time_unix_nano = now_ns
        span.status.code = i % 3
        _attributes(span.attributes, seed + i)
        event = span.events.add(name="event", time_unix_nano=now_ns - 1_000_000)
        event.attributes.add(key="e", value=AnyValue(int_value=i))
        span.links.add(trace_id=span.trace_id, span_id=(seed + 99).to_bytes(8, "big"))
    return request


def metrics_request(now_ns: int, service: str = "fuzz") -> ExportMetricsServiceRequest:
    """One point of each kind the daemon handles: HTTP latency (both encodings), sum, gauge, summary."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    metrics = resource_metrics.scope_metrics.add().metrics
    start = now_ns - 10_000_000_000
    route = KeyValue(key="http.route", value=AnyValue(string_value="/fuzz"))

    exponential = metrics.add(name="http.server.request.duration", unit="s")
    exponential.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    point = exponential.exponential_histogram.data_points.add(
        start_time_unix_nano=start, time_unix_nano=now_ns, count=6, sum=0.3, scale=3, zero_count=0, min=0.01, max=0.1
    )
    point.positive.offset = -50
    point.positive.bucket_counts.extend([1, 2, 0, 3])
    point.attributes.append(route)
    point.exemplars.add(time_unix_nano=now_ns, as_double=0.05, trace_id=b"\x01" * 16, span_id=b"\x02" * 8)

    explicit = metrics.add(name="http.server.duration", unit="ms")
    explicit.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    point = explicit.histogram.data_points.add(
        start_time_unix_nano=start, time_unix_nano=now_ns, count=3, sum=150.0,
        explicit_bounds=[10.0, 100.0], bucket_counts=[1, 1, 1],
    )
    point.attributes.append(route)

    total = metrics.add(name="fuzz.requests", unit="{request}")
    total.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    total.sum.is_monotonic = True
    total.sum.data_points.add(start_time_unix_nano=start, time_unix_nano=now_ns, as_int=42)
    gauge = metrics.add(name="fuzz.queue", unit="1")
    gauge.gauge.data_points.add(time_unix_nano=now_ns, as_double=0.5)
    summary = metrics.add(name="fuzz.summary", unit="ms")
    point = summary.summary.data_points.add(start_time_unix_nano=start, time_unix_nano=now_ns, count=2, sum=3.0)
    point.quantile_values.add(quantile=0.5, value=1.0)
    return request


def logs_request(now_ns: int, service: str = "fuzz") -> ExportLogsServiceRequest:
    """Two log records with bodies, severities and ids."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    records = resource_logs.scope_logs.add().log_records
    for i, severity in enumerate((9, 17)):
        record = records.add(time_unix_nano=now_ns, observed_time_unix_nano=now_ns, severity_number=severity)
        record.severity_text = "INFO" if severity == 9 else "ERROR"
        record.body.string_value = f"line {i}"
        record.trace_id, record.span_id = b"\x03" * 16, b"\x04" * 8
        _attributes(record.attributes, i)
    return request


def valid_request(signal: str, now_ns: int | None = None) -> Message:
    """A valid request of ``signal`` (``traces``, ``metrics`` or ``logs``)."""
    now = time.time_ns() if now_ns is None else now_ns
    return {"traces": trace_request, "metrics": metrics_request, "logs": logs_request}[signal](now)


_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def otlp_json(message: Message) -> dict[str, Any]:
    """``message`` in OTLP/JSON: lowerCamelCase keys, integer enums, ids as hex (not base64)."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(document)
    return document


# ------------------------------------------------------------------ bytes


def mutate_bytes(data: bytes, ch: Chooser, rounds: int | None = None) -> bytes:
    """``data`` after 1-6 byte-level edits of the kinds a broken client or network makes."""
    out = bytearray(data)
    for _ in range(ch.integer(1, 6) if rounds is None else rounds):
        size = len(out)
        op = ch.choice(("flip", "set", "truncate", "insert", "delete", "duplicate", "wire_type", "varint", "length"))
        at = ch.integer(0, max(size - 1, 0))
        if op == "flip" and size:
            out[at] ^= 1 << ch.integer(0, 7)
        elif op == "set" and size:
            out[at] = ch.choice((0x00, 0xFF, 0x80, 0x7F, ch.integer(0, 255)))
        elif op == "truncate":
            del out[ch.integer(0, size) :]
        elif op == "insert":
            out[at:at] = bytes(ch.integer(0, 255) for _ in range(ch.integer(1, 8)))
        elif op == "delete" and size:
            del out[at : at + ch.integer(1, 16)]
        elif op == "duplicate" and size:
            piece = out[at : at + ch.integer(1, 64)]
            where = ch.integer(0, size)
            out[where:where] = piece * ch.integer(1, 4)
        elif op == "wire_type" and size:
            out[at] = (out[at] & ~0x07) | ch.integer(0, 7)  # a tag byte becomes another (or an invalid) wire type
        elif op == "varint":
            out[at:at] = b"\xff" * ch.integer(9, 11) + b"\x01"  # overlong / overflowing varint
        elif op == "length" and size:
            out[at] = ch.choice((0x7F, 0xFF, 0x00))  # a length prefix pointing past the end, or to nothing
    return bytes(out)


# ------------------------------------------------------------------ protobuf fields

_I32 = (0, 1, -1, 2**31 - 1, -(2**31))
_I64 = (*_I32, 2**63 - 1, -(2**63))
_U32 = (0, 1, 2**32 - 1, 2**31)
_U64 = (0, 1, 2**64 - 1, 2**63, 10**19)
_FLOATS = (0.0, -0.0, -1.0, 5e-324, 1e308, -1e308, float("inf"), float("-inf"), float("nan"))
_STRINGS = ("", "é", "\x00", "x" * 5000, "\U0001f600" * 50, "\u202egnp.", "a\u0301" * 100, "GET /" + "/" * 300)
_ID_LENGTHS = (0, 1, 7, 8, 9, 15, 16, 17, 32, 255, 256)
_INT_VALUES: dict[int, tuple[int, ...]] = {
    FieldDescriptor.TYPE_INT32: _I32,
    FieldDescriptor.TYPE_SINT32: _I32,
    FieldDescriptor.TYPE_SFIXED32: _I32,
    FieldDescriptor.TYPE_ENUM: (*_I32, 6, 255, 256),
    FieldDescriptor.TYPE_INT64: _I64,
    FieldDescriptor.TYPE_SINT64: _I64,
    FieldDescriptor.TYPE_SFIXED64: _I64,
    FieldDescriptor.TYPE_UINT32: _U32,
    FieldDescriptor.TYPE_FIXED32: _U32,
    FieldDescriptor.TYPE_UINT64: _U64,
    FieldDescriptor.TYPE_FIXED64: _U64,
}


def _slots(message: Message, depth: int = 0) -> list[tuple[Message, FieldDescriptor]]:
    """Every (message, field) a mutation may touch: all fields of every message present, up to a depth."""
    found = [(message, field) for field in message.DESCRIPTOR.fields]
    if depth >= 12:
        return found
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        for child in (value if field.is_repeated else [value]):
            found.extend(_slots(child, depth + 1))
    return found


def _scalar(field: FieldDescriptor, ch: Chooser, now_ns: int) -> Any:
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = ch.choice(_FLOATS)
        return max(min(value, 3.4e38), -3.4e38) if field.type == FieldDescriptor.TYPE_FLOAT and value == value else value
    if field.type == FieldDescriptor.TYPE_BOOL:
        return ch.choice((True, False))
    if field.type == FieldDescriptor.TYPE_STRING:
        return ch.choice(_STRINGS)
    if field.type == FieldDescriptor.TYPE_BYTES:
        length = ch.choice(_ID_LENGTHS)
        return ch.choice((b"\x00", b"\xff", b"\x01")) * length
    options = _INT_VALUES[field.type]
    if field.type in (FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_UINT64):
        # Timestamps: also just outside the accepted window, and in the far past or future.
        options = (*options, now_ns + 400 * 10**9, now_ns - 90_000 * 10**9, now_ns + 1, now_ns - 10**18)
    return ch.choice(options)


def _nest(value: AnyValue, depth: int, kind: str) -> None:
    """Make ``value`` an array or kvlist ``depth`` levels deep, built in place.

    Built from the top down because copying a nested message into another
    goes through upb's parser, which refuses more than 100 levels, and the
    point is to send the receiver more than that.
    """
    value.Clear()
    for _ in range(depth):
        value = value.array_value.values.add() if kind == "array" else value.kvlist_value.values.add(key="k").value
    value.string_value = "bottom"


def mutate_message(message: Message, ch: Chooser, now_ns: int, rounds: int | None = None) -> Message:
    """A copy of ``message`` with 1-4 fields set to values that break assumptions.

    Scalars get type extremes (timestamps also just outside the accepted
    range), ids wrong lengths, strings odd text; repeated fields lose or
    multiply elements; an ``AnyValue`` may become nested 1-200 deep.
    """
    out = type(message)()
    out.CopyFrom(message)
    for _ in range(ch.integer(1, 4) if rounds is None else rounds):
        parent, field = ch.choice(_slots(out))
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            action = ch.choice(("clear", "multiply", "nest") if field.is_repeated else ("clear", "nest"))
            if action == "clear":
                parent.ClearField(field.name)
            elif action == "multiply" and len(getattr(parent, field.name)):
                items = getattr(parent, field.name)
                copies = ch.choice((2, 10, 300))
                first = type(items[0])()
                first.CopyFrom(items[0])
                for _ in range(copies):
                    items.add().CopyFrom(first)
            elif action == "nest" and field.message_type.full_name == AnyValue.DESCRIPTOR.full_name:
                target = getattr(parent, field.name).add() if field.is_repeated else getattr(parent, field.name)
                _nest(target, ch.choice((1, 10, 50, 99, 101, 200)), ch.choice(("array", "kvlist")))
            continue
        value = _scalar(field, ch, now_ns)
        try:
            if field.is_repeated:
                items = getattr(parent, field.name)
                items.extend([value] * ch.choice((1, 3, 1000)))
            else:
                setattr(parent, field.name, value)
        except (ValueError, TypeError):
            continue  # a value this field's type cannot hold (a float out of float32's range)
    return out


# ------------------------------------------------------------------ JSON

_JSON_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, -0.0, 2**53 + 1, 2**63, 2**64, 2**64 + 1, -(2**63) - 1, 10**30, 1e308, -1e308,
    "", "-5", "1e400", "0x10", "NaN", "Infinity", " 5", "5 ", "1.5", "١٢٣", "é\u0000", "\U0001f600",
    [], {}, [[[]]], {"a": {}}, [None], [1, "x", None],
)
_BAD_IDS = ("", "z" * 32, "5b8e", "5B8EFFF798038103D269B633813FC60", "00" * 16, "ab" * 32, "0x" + "ab" * 15,
            "5b8efff798038103d269b633813fc60c ", "٥b8efff798038103d269b633813fc60c", "ab" * 1000)
_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "name", "kind", "value", "values", "scale",
         "offset", "bucketCounts", "explicitBounds", "count", "sum", "startTimeUnixNano", "endTimeUnixNano",
         "timeUnixNano", "code", "status", "attributes", "arrayValue", "kvlistValue", "stringValue", "intValue",
         "asDouble", "asInt", "unknownField", "@type", "")


def _paths(node: Any, path: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[Any, ...]]:
    found = [path]
    if depth > 14:
        return found
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*path, key), depth + 1))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*path, index), depth + 1))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _deep(depth: int, kind: str, inner: Any) -> Any:
    value = inner
    for _ in range(depth):
        if kind == "array":
            value = {"arrayValue": {"values": [value]}}
        elif kind == "kvlist":
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        else:
            value = [value]
    return value


def mutate_json(document: dict[str, Any], ch: Chooser, rounds: int | None = None) -> bytes:
    """An OTLP/JSON body made from ``document`` with 1-4 edits, sometimes also broken as text.

    Values become other JSON types, extreme or textual numbers, bad hex
    ids, nested structures (up to 400 deep), or are dropped; objects get
    extra and snake_case keys; arrays multiply. Then the text may be
    truncated, get garbage, a BOM, a duplicate key, an unpaired surrogate
    escape or invalid UTF-8.
    """
    doc: Any = json.loads(json.dumps(document))
    nests: list[tuple[tuple[Any, ...], int, str]] = []
    for _ in range(ch.integer(1, 4) if rounds is None else rounds):
        path = ch.choice(_paths(doc))
        action = ch.choice(("type", "type", "id", "nest", "key", "drop", "multiply"))
        if not path:
            if action == "type":
                doc = json.loads(json.dumps(ch.choice(_JSON_VALUES)))
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        if action == "type":
            parent[key] = json.loads(json.dumps(ch.choice(_JSON_VALUES)))
        elif action == "id":
            parent[key] = ch.choice(_BAD_IDS)
        elif action == "nest":  # done last: copying a 400-deep value would overflow json's recursion
            nests.append((path, ch.choice((2, 30, 99, 101, 150, 400)), ch.choice(("array", "kvlist", "list"))))
        elif action == "key" and isinstance(parent[key], dict):
            parent[key][ch.choice(_KEYS)] = json.loads(json.dumps(ch.choice((*_JSON_VALUES, *_BAD_IDS))))
        elif action == "drop" and isinstance(parent, dict):
            del parent[key]
        elif action == "multiply" and isinstance(parent[key], list) and parent[key]:
            parent[key].extend(json.loads(json.dumps(parent[key][0])) for _ in range(ch.choice((1, 50, 2000))))
    for path, depth, kind in nests:
        try:
            parent = _at(doc, path[:-1])
            parent[path[-1]] = _deep(depth, kind, parent[path[-1]])
        except (KeyError, IndexError, TypeError):
            continue  # a later edit removed or retyped what it was to wrap
    try:
        text = json.dumps(doc, ensure_ascii=ch.choice((True, False)))
    except RecursionError:  # deeper than the json module writes: send it as a list of lists by hand
        text = "[" * 5000 + "]" * 5000
    return _break_text(text, ch)


def _break_text(text: str, ch: Chooser) -> bytes:
    edit: Callable[[str], bytes] = ch.choice((
        lambda t: t.encode(),
        lambda t: t.encode(),
        lambda t: t.encode(),
        lambda t: t.encode()[: ch.integer(0, len(t))],
        lambda t: (t + ch.choice((" ", "x", "}", ",", "\x00"))).encode(),
        lambda t: "\ufeff".encode() + t.encode(),
        lambda t: t.replace('"', '"\\ud800', 1).encode(),
        lambda t: t.encode().replace(b"a", b"\xff\xfe", 1),
        lambda t: t.replace("{", '{"resourceSpans": 1, ', 1).encode(),  # duplicate or unknown key
        lambda t: t.replace(":", ": 1e999999, \"x\":", 1).encode(),
    ))
    return edit(text)
