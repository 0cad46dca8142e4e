"""Exemplars: the few spans behind each series' window, chosen in bulk.

    >>> table = ExemplarTable(slowest=3, sampled=3)
    >>> table.add(series, duration_ms, end_ns, span_id, rows, capture)   # doctest: +SKIP
    >>> entries = table.entries()      # columns; entries.handles resolve to trace id + attributes  # doctest: +SKIP

For every series and window two bounded sets are kept:

* the ``slowest`` spans (top-k by duration), what a P99 alert leads to;
* a uniform ``sampled`` set: the k spans with the smallest *priority*, where
  a span's priority is its 64-bit span id. Span ids are random (W3C Trace
  Context; every OTel SDK draws them at random), so the bottom-k by span id
  is a uniform sample without replacement, and it is *mergeable*: the
  sample of a union is the bottom-k of the samples, whatever the order the
  spans came in, across batches, late data, storage merges.

A span delivered twice (an exporter's retry) may hold two places of a set
until a slower or lower-priority span displaces it; whoever reads a set
(:func:`pick`, :func:`merge_records`) counts each span once. Checking for
copies on every batch would cost the hot path more than the rare copy costs
the sample.

Both sets are exact over everything a window received. Selection is numpy
per batch: one comparison against each series' current floor (k-th slowest
duration, k-th smallest priority) leaves only candidates, usually very few
once a window has seen some traffic; candidates and the affected series'
current entries are ordered with one ``lexsort`` (a window's first batch,
where most spans are candidates, first keeps each series' best k with
``argpartition``) and the first k of each series kept. Nothing is done per
span in Python.

Details are captured only for survivors: the table calls ``capture(rows)``
with the batch rows that entered a set, and keeps the opaque *handles* it
returns (the serialized span for OTLP, the trace id and attribute mapping
for in-process spans). A handle is turned into a trace id and a bounded
attribute dict (:func:`resolve`) only when someone reads it: a flush, an API
call, an export.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SAMPLED",
    "DEFAULT_SLOWEST",
    "MAX_ATTRIBUTES",
    "MAX_VALUE_LENGTH",
    "PREFERRED_ATTRIBUTES",
    "Entries",
    "ExemplarTable",
    "Resolved",
    "any_value_text",
    "bounded_attributes",
    "entries_as_dicts",
    "exemplar_record",
    "merge_records",
    "pick",
    "resolve",
]

DEFAULT_SLOWEST = 3
DEFAULT_SAMPLED = 3
#: Attributes kept per exemplar, and characters per key and value.
MAX_ATTRIBUTES = 16
MAX_VALUE_LENGTH = 256
MAX_KEY_LENGTH = 128
#: Kept first when a span has more than :data:`MAX_ATTRIBUTES` attributes: who, and which route.
PREFERRED_ATTRIBUTES = (
    "enduser.id",
    "enduser.role",
    "enduser.scope",
    "user.id",
    "session.id",
    "http.route",
    "http.request.method",
    "http.response.status_code",
    "url.path",
    "error.type",
    "exception.type",
    "rpc.method",
    "db.system",
    "messaging.system",
    "peer.service",
    "server.address",
)

_U64_MAX = np.uint64(2**64 - 1)
_PARTITION_SLOTS = 256  # merge pre-selects with argpartition when this few series have many candidates

Capture = Callable[[list[int]], Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Resolved:
    """An exemplar's details: the 16-byte trace id (empty if unknown) and bounded attributes."""

    trace_id: bytes
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class Entries:
    """Every kept exemplar of a table as columns (``sampled`` tells which set each came from)."""

    series: np.ndarray
    duration_ms: np.ndarray
    end_ns: np.ndarray
    span_id: np.ndarray
    handles: np.ndarray  # object
    sampled: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.series.size)

    def take(self, index: np.ndarray) -> Entries:
        return Entries(
            self.series[index], self.duration_ms[index], self.end_ns[index], self.span_id[index],
            self.handles[index], self.sampled[index],
        )

    @classmethod
    def concat(cls, parts: Sequence[Entries]) -> Entries:
        if not parts:
            return _EMPTY
        if len(parts) == 1:
            return parts[0]
        columns = cls.__slots__  # type: ignore[attr-defined]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in columns))


_EMPTY = Entries(
    np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.uint64),
    np.zeros(0, object), np.zeros(0, bool),
)


class _Set:
    """k entries per slot, ordered best first; padding entries have an infinite key."""

    __slots__ = ("k", "descending", "key", "duration", "end", "span_id", "handle")

    def __init__(self, k: int, descending: bool) -> None:
        self.k = k
        self.descending = descending  # slowest: by duration, descending; sampled: by span id, ascending
        self.duration = np.zeros((0, k))
        self.end = np.zeros((0, k), np.int64)
        self.span_id = np.zeros((0, k), np.uint64)
        self.handle = np.empty((0, k), object)
        self.key = self.duration if descending else self.span_id

    def grow(self, rows: int) -> None:
        old = self.duration.shape[0]
        if rows <= old:
            return
        rows = max(rows, 2 * old, 16)
        extra = rows - old
        pad_duration = np.full((extra, self.k), -math.inf if self.descending else 0.0)
        self.duration = np.concatenate((self.duration, pad_duration))
        self.end = np.concatenate((self.end, np.zeros((extra, self.k), np.int64)))
        pad_id = np.zeros((extra, self.k), np.uint64) if self.descending else np.full((extra, self.k), _U64_MAX)
        self.span_id = np.concatenate((self.span_id, pad_id))
        self.handle = np.concatenate((self.handle, np.empty((extra, self.k), object)))
        self.key = self.duration if self.descending else self.span_id

    def floor(self, slots: np.ndarray) -> np.ndarray:
        """The k-th entry's key of each slot: a span must beat it to enter."""
        return self.key[slots, self.k - 1]

    def candidates(self, slots: np.ndarray, duration: np.ndarray, span_id: np.ndarray) -> np.ndarray:
        """Spans that beat their slot's floor (strictly: a span sent again does not beat its own copy)."""
        if self.descending:
            return np.flatnonzero(duration > self.duration[slots, self.k - 1])
        return np.flatnonzero(span_id < self.span_id[slots, self.k - 1])

    def merge(
        self, slots: np.ndarray, duration: np.ndarray, end: np.ndarray, span_id: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Merge candidates into their slots; returns (slot, position, candidate index) of those kept."""
        touched, inverse = _unique_small(slots, self.duration.shape[0])
        k = self.k
        index = None
        if slots.size > 8 * k * touched.size and touched.size <= _PARTITION_SLOTS:
            # Few series with many candidates each (a window's first batch): keep each one's best k
            # with argpartition before the sort.
            index = self._best_per_slot(inverse.ravel(), touched.size, duration, span_id)
            slots, duration, end, span_id = slots[index], duration[index], end[index], span_id[index]
        old_slots = np.repeat(touched, k)
        all_slots = np.concatenate((old_slots, slots))
        all_duration = np.concatenate((self.duration[touched].ravel(), duration))
        all_end = np.concatenate((self.end[touched].ravel(), end))
        all_id = np.concatenate((self.span_id[touched].ravel(), span_id))
        old_handles = self.handle[touched].ravel()
        source = np.concatenate((np.arange(-old_slots.size, 0), np.arange(slots.size)))  # < 0: an old entry
        order = _order(all_slots, all_duration if self.descending else all_id, self.descending, all_id)
        sorted_slots = all_slots[order]
        first = np.flatnonzero(np.r_[True, sorted_slots[1:] != sorted_slots[:-1]])
        rank = np.arange(order.size) - np.repeat(first, np.diff(np.r_[first, order.size]))
        keep = order[rank < k]
        position = rank[rank < k]
        slot = all_slots[keep]
        self.duration[slot, position] = all_duration[keep]
        self.end[slot, position] = all_end[keep]
        self.span_id[slot, position] = all_id[keep]
        origin = source[keep]
        old = origin < 0
        self.handle[slot[old], position[old]] = old_handles[origin[old] + old_slots.size]
        fresh = ~old
        self.handle[slot[fresh], position[fresh]] = None
        chosen = origin[fresh] if index is None else index[origin[fresh]]
        return slot[fresh], position[fresh], chosen

    def _best_per_slot(
        self, group: np.ndarray, groups: int, duration: np.ndarray, span_id: np.ndarray
    ) -> np.ndarray:
        """Indexes of each group's best ``k`` candidates (one counting sort, one argpartition per group)."""
        order = np.argsort(group.astype(np.int16), kind="stable")  # radix sort: groups < 2**15
        bounds = np.concatenate(([0], np.cumsum(np.bincount(group, minlength=groups))))
        values = -duration[order] if self.descending else span_id[order]
        keep = []
        for g in range(groups):
            a, b = int(bounds[g]), int(bounds[g + 1])
            if b - a <= self.k:
                keep.append(order[a:b])
            else:
                keep.append(order[a:b][np.argpartition(values[a:b], self.k - 1)[: self.k]])
        return np.concatenate(keep)

    def entries(self, series_of_slot: np.ndarray, used: int, sampled: bool) -> Entries:
        present = self.key[:used] != (-math.inf if self.descending else _U64_MAX)
        slot, position = np.nonzero(present)
        return Entries(
            series_of_slot[slot], self.duration[slot, position], self.end[slot, position],
            self.span_id[slot, position], self.handle[slot, position], np.full(slot.size, sampled),
        )

    def copy(self) -> _Set:
        other = _Set(self.k, self.descending)
        other.duration, other.end = self.duration.copy(), self.end.copy()
        other.span_id, other.handle = self.span_id.copy(), self.handle.copy()
        other.key = other.duration if other.descending else other.span_id
        return other


def _unique_small(values: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for ints in ``[0, bound)``, by counting when that is cheaper."""
    if bound > 4 * values.size + 4096:
        unique, inverse = np.unique(values, return_inverse=True)
        return unique, inverse.ravel()
    present = np.bincount(values, minlength=bound) > 0
    unique = np.flatnonzero(present)
    rank = np.cumsum(present) - 1
    return unique, rank[values]


def _order(slots: np.ndarray, values: np.ndarray, descending: bool, span_id: np.ndarray) -> np.ndarray:
    """Indexes sorting by slot, then value (descending durations or ascending span ids), then span id.

    Exact (span ids are compared as the full 64 bits), so copies of one
    span end up next to each other, where readers drop the repeats
    (:func:`_first_of_each_span`).
    """
    return np.lexsort((span_id, -values if descending else values, slots))


def _first_of_each_span(slots: np.ndarray, ids: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Mask of sorted entries that do not repeat the previous entry's span (same slot, id and duration)."""
    return np.r_[
        True, (slots[1:] != slots[:-1]) | (ids[1:] != ids[:-1]) | (durations[1:] != durations[:-1])
    ]


class ExemplarTable:
    """One window's exemplars of every series (``slowest`` and ``sampled`` per series, 0 turns a set off)."""

    __slots__ = ("_sets", "_slot_of_series", "_series_of_slot", "_used", "slowest", "sampled", "version")

    def __init__(self, slowest: int = DEFAULT_SLOWEST, sampled: int = DEFAULT_SAMPLED) -> None:
        if slowest < 0 or sampled < 0:
            raise ValueError(f"slowest and sampled must be >= 0, got {slowest} and {sampled}")
        self.slowest = slowest
        self.sampled = sampled
        self._sets = [s for s in (_Set(slowest, True) if slowest else None, _Set(sampled, False) if sampled else None)]
        self._slot_of_series = np.full(0, -1, np.int64)
        self._series_of_slot = np.zeros(0, np.int64)
        self._used = 0
        self.version = 0  # changes whenever an entry does

    def __len__(self) -> int:
        """Series with exemplars in this window."""
        return self._used

    def _slots(self, series: np.ndarray) -> np.ndarray:
        """Each span's slot, giving series seen for the first time the next free ones."""
        top = int(series.max()) + 1
        if self._slot_of_series.size < top:
            grown = np.full(max(top, 2 * self._slot_of_series.size, 64), -1, np.int64)
            grown[: self._slot_of_series.size] = self._slot_of_series
            self._slot_of_series = grown
        slots = self._slot_of_series[series]
        if (slots < 0).any():
            new = _unique_small(series[slots < 0], top)[0]
            assigned = np.arange(self._used, self._used + new.size)
            self._slot_of_series[new] = assigned
            self._used += new.size
            if self._series_of_slot.size < self._used:
                grown = np.zeros(max(self._used, 2 * self._series_of_slot.size, 16), np.int64)
                grown[: self._series_of_slot.size] = self._series_of_slot
                self._series_of_slot = grown
            self._series_of_slot[assigned] = new
            for kept in self._sets:
                if kept is not None:
                    kept.grow(self._used)
            slots = self._slot_of_series[series]
        return slots

    def add(
        self,
        series: np.ndarray,
        duration_ms: np.ndarray,
        end_ns: np.ndarray,
        span_id: np.ndarray,
        rows: np.ndarray,
        capture: Capture | None,
    ) -> None:
        """Offer spans (``rows`` are their batch rows, passed to ``capture`` for those that enter)."""
        if series.size == 0 or not (self.slowest or self.sampled):
            return
        slots = self._slots(series)
        span_id = span_id.astype(np.uint64, copy=False)
        placed: list[tuple[_Set, np.ndarray, np.ndarray, np.ndarray]] = []
        for kept in self._sets:
            if kept is None:
                continue
            chosen = kept.candidates(slots, duration_ms, span_id)
            if chosen.size == 0:
                continue
            slot, position, index = kept.merge(slots[chosen], duration_ms[chosen], end_ns[chosen], span_id[chosen])
            if index.size:
                self.version += 1
                placed.append((kept, slot, position, rows[chosen[index]]))
        if capture is None or not placed:
            return
        wanted = np.unique(np.concatenate([p[3] for p in placed]))
        if wanted.size == 0:
            return
        handles = capture(wanted.tolist())
        for kept, slot, position, row in placed:
            at = np.searchsorted(wanted, row)
            for s, p, a, r in zip(slot.tolist(), position.tolist(), at.tolist(), row.tolist()):
                if r >= 0:
                    kept.handle[s, p] = handles[a]

    def add_entries(self, entries: Entries) -> None:
        """Merge entries (with their handles) from another table: late data, flush snapshots."""
        if len(entries) == 0:
            return
        slots = self._slots(entries.series)
        for kept in self._sets:
            if kept is None:
                continue
            chosen = kept.candidates(slots, entries.duration_ms, entries.span_id)
            if chosen.size == 0:
                continue
            slot, position, index = kept.merge(
                slots[chosen], entries.duration_ms[chosen], entries.end_ns[chosen], entries.span_id[chosen]
            )
            self.version += 1
            handles = entries.handles[chosen[index]]
            for s, p, h in zip(slot.tolist(), position.tolist(), handles.tolist()):
                kept.handle[s, p] = h

    def merge(self, other: ExemplarTable) -> None:
        self.add_entries(other.entries())

    def entries(self) -> Entries:
        """Every kept entry, slowest sets first; a span in both sets appears twice."""
        parts = []
        for kept, sampled in zip(self._sets, (False, True)):
            if kept is not None:
                parts.append(kept.entries(self._series_of_slot, self._used, sampled))
        return Entries.concat(parts)

    def floors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(series, k-th slowest ms or -inf, k-th smallest span id or 2**64-1)`` of every series here."""
        series = self._series_of_slot[: self._used]
        slots = np.arange(self._used)
        slow = self._sets[0].floor(slots) if self._sets[0] is not None else np.full(self._used, math.inf)
        sample = self._sets[1].floor(slots) if self._sets[1] is not None else np.zeros(self._used, np.uint64)
        return series, slow, sample

    def copy(self) -> ExemplarTable:
        other = ExemplarTable(self.slowest, self.sampled)
        other._sets = [s.copy() if s is not None else None for s in self._sets]
        other._slot_of_series = self._slot_of_series.copy()
        other._series_of_slot = self._series_of_slot.copy()
        other._used = self._used
        other.version = self.version
        return other

    @property
    def nbytes(self) -> int:
        arrays = sum(
            a.nbytes for s in self._sets if s is not None for a in (s.duration, s.end, s.span_id, s.handle)
        )
        return arrays + self._slot_of_series.nbytes + self._series_of_slot.nbytes


def pick(entries: Entries, group: np.ndarray, slowest: int, sampled: int) -> np.ndarray:
    """Indexes of each group's ``slowest`` longest and ``sampled`` smallest-priority entries.

    ``group`` is each entry's group (-1 leaves it out). Entries of one span
    (same span id) count once per set. The result lists, per group, the
    slowest first (longest first), then the sampled ones.
    """
    chosen = []
    for k, sampled_set in ((slowest, False), (sampled, True)):
        if k <= 0:
            continue
        inside = np.flatnonzero((group >= 0) & (entries.sampled == sampled_set))
        if inside.size == 0:
            continue
        values = entries.duration_ms[inside] if not sampled_set else entries.span_id[inside]
        order = inside[_order(group[inside], values, not sampled_set, entries.span_id[inside])]
        order = order[_first_of_each_span(group[order], entries.span_id[order], entries.duration_ms[order])]
        g = group[order]
        first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        rank = np.arange(order.size) - np.repeat(first, np.diff(np.r_[first, order.size]))
        chosen.append(order[rank < k])
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)


# ------------------------------------------------------------------ details


def resolve(handle: Any, preferred: Sequence[str] = ()) -> Resolved:
    """A captured handle as trace id and bounded attributes (``preferred`` keys are kept first).

    Handles: the serialized OTLP ``Span`` (bytes), a ``(trace id int,
    attributes mapping or None)`` pair from the span processor, or ``None``
    (nothing captured: empty details).
    """
    if handle is None:
        return Resolved(b"", {})
    if isinstance(handle, Resolved):
        return handle
    if isinstance(handle, (bytes, bytearray, memoryview)):
        parse, errors = _span_parser()
        try:
            span = parse(bytes(handle))
        except errors:
            return Resolved(b"", {})
        pairs = ((kv.key, any_value_text(kv.value)) for kv in span.attributes)
        return Resolved(bytes(span.trace_id), bounded_attributes(pairs, preferred))
    trace_id, attributes = handle
    trace = int(trace_id).to_bytes(16, "big") if trace_id else b""
    items = attributes.items() if attributes is not None else ()
    return Resolved(trace, bounded_attributes(((k, _sdk_value_text(v)) for k, v in items), preferred))


@functools.lru_cache(maxsize=1)
def _span_parser() -> tuple[Callable[[bytes], Any], type[Exception]]:
    """``Span.FromString`` and its error, imported on first use (in-process apps never need protobuf here)."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.trace.v1 import trace_pb2

    return trace_pb2.Span.FromString, DecodeError


def bounded_attributes(pairs: Iterable[tuple[str, str | None]], preferred: Sequence[str] = ()) -> dict[str, str]:
    """At most :data:`MAX_ATTRIBUTES` string attributes, values cut at :data:`MAX_VALUE_LENGTH`.

    ``preferred`` then :data:`PREFERRED_ATTRIBUTES` (user context, route)
    are kept first; the rest in the span's order until the bound.
    """
    found: dict[str, str] = {}
    for key, value in pairs:
        if value is not None and key not in found:
            found[key if len(key) <= MAX_KEY_LENGTH else key[:MAX_KEY_LENGTH]] = (
                value if len(value) <= MAX_VALUE_LENGTH else value[:MAX_VALUE_LENGTH]
            )
    if len(found) <= MAX_ATTRIBUTES:
        return found
    first = [k for k in (*preferred, *PREFERRED_ATTRIBUTES) if k in found]
    ordered = list(dict.fromkeys((*first, *found)))[:MAX_ATTRIBUTES]
    return {k: found[k] for k in ordered}


def any_value_text(value: Any) -> str | None:
    """An OTLP ``AnyValue`` as text (``None`` when empty); arrays and maps in a compact bracket form."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind in ("int_value", "double_value"):
        return str(getattr(value, kind))
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "array_value":
        return "[" + ",".join(t for t in map(any_value_text, value.array_value.values) if t is not None) + "]"
    return "{" + ",".join(f"{kv.key}:{any_value_text(kv.value)}" for kv in value.kvlist_value.values) + "}"


def _sdk_value_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(t for t in map(_sdk_value_text, value) if t is not None) + "]"
    return str(value)


def entries_as_dicts(
    entries: Entries, order: Iterable[int], preferred: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Chosen entries resolved to the stored form (see :func:`exemplar_record`).

    A span in both sets shares one handle object: it is resolved once.
    """
    out = []
    resolved: dict[int, Resolved] = {}
    handles = entries.handles
    for i in order:
        handle = handles[i]
        details = resolved.get(id(handle))
        if details is None:
            details = resolved[id(handle)] = resolve(handle, preferred)
        out.append(
            exemplar_record(details, float(entries.duration_ms[i]), int(entries.end_ns[i]), int(entries.span_id[i]))
        )
    return out


def exemplar_record(details: Resolved, duration_ms: float, end_ns: int, span_id: int) -> dict[str, Any]:
    """The form storage keeps and every reader understands (ids in hex, as OTLP/JSON writes them)."""
    return {
        "trace_id": details.trace_id.hex(),
        "span_id": f"{span_id:016x}",
        "duration_ms": duration_ms,
        "time_unix_nano": end_ns,
        "attributes": details.attributes,
    }


def merge_records(
    slowest: Iterable[Mapping[str, Any]], sampled: Iterable[Mapping[str, Any]], k_slowest: int, k_sampled: int
) -> dict[str, list[Mapping[str, Any]]]:
    """The union of stored exemplar sets, bounded again: mergeable because priority is the span id."""
    slow = _unique(slowest)
    slow.sort(key=lambda r: (-float(r["duration_ms"]), r["span_id"]))
    sample = _unique(sampled)
    sample.sort(key=lambda r: int(r["span_id"], 16))
    return {"slowest": slow[:k_slowest], "sampled": sample[:k_sampled]}


def _unique(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        seen.setdefault((record["trace_id"], record["span_id"]), record)
    return list(seen.values())
