"""Series identity, keyed like the Collector's spanmetrics connector.

    >>> registry = SeriesRegistry(cardinality_limit=2)
    >>> registry.series_id(("checkout", "GET /cart", 2, 0))
    0
    >>> routed = SeriesRegistry(dimensions=(Dimension("http.route"), Dimension("enduser.id", "anonymous")))
    >>> routed[routed.series_id(("checkout", "GET", 2, 0, "/cart", None))].attributes()["enduser.id"]
    'anonymous'

A series is ``(service.name, span.name, span.kind, status.code)`` with kind
and status as OTLP enum numbers, followed by the value of each configured
:class:`Dimension` (``None`` where the span has none: the dimension's
``default`` is used, and without a default the label is left out, as the
Collector does). Each service may create at most ``cardinality_limit``
series; further keys of that service fold into one overflow series per
service that carries ``otel.metric.overflow=true`` (the Collector's overflow
series has only that attribute; ours keeps ``service.name`` because the
limit, and every view, is per service, and ``status.code`` so error counts
stay exact).

When keys start folding, the registry says why: it counts the distinct
values of ``span.name`` and of each dimension per service, charges every
folded key to the one with the most, and logs a warning naming it (once
per service and dimension). :meth:`SeriesRegistry.overflow_by_dimension`
is what ``trm_otel_series_overflow_total{service, dimension}`` and the
daemon's ``series_overflow`` health check read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUILTIN_LABELS",
    "Dimension",
    "OVERFLOW_ATTRIBUTE",
    "OVERFLOW_ENDPOINT",
    "SPAN_KIND_NAMES",
    "STATUS_CODE_ERROR",
    "STATUS_CODE_NAMES",
    "Series",
    "SeriesKey",
    "SeriesRegistry",
]

_logger = logging.getLogger("trm_otel.series")

#: ``(service, span name, kind, status, *dimension values)``; meter-recorded latency uses the first four.
SeriesKey = tuple[Any, ...]

OVERFLOW_ATTRIBUTE = "otel.metric.overflow"
OVERFLOW_ENDPOINT = "(overflow)"
#: The labels every span series has; a dimension may not reuse one.
BUILTIN_LABELS = ("service.name", "span.name", "span.kind", "status.code", OVERFLOW_ATTRIBUTE)
_REMEMBERED_OVERFLOW_KEYS = 10_000
_DISTINCT_TRACKED = 100_000  # distinct values counted per service and dimension, at most
STATUS_CODE_ERROR = 2
SPAN_KIND_NAMES = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
)
STATUS_CODE_NAMES = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")


@dataclass(frozen=True, slots=True)
class Dimension:
    """An extra series label: the span attribute ``name`` (else the resource's), else ``default``."""

    name: str
    default: str | None = None


@dataclass(frozen=True, slots=True)
class Series:
    """What a series id stands for.

    Overflow series have the endpoint ``(overflow)`` and keep only the
    service and whether the folded spans were errors. ``dimensions`` are
    ``(name, value)`` pairs of the configured dimensions that have a value.
    """

    id: int
    service: str
    name: str
    kind: int
    status: int
    overflow: bool = False
    dimensions: tuple[tuple[str, str], ...] = ()

    @property
    def is_error(self) -> bool:
        return self.status == STATUS_CODE_ERROR

    def attributes(self) -> dict[str, Any]:
        """The spanmetrics data point attributes of this series."""
        if self.overflow:
            return {
                "service.name": self.service,
                "status.code": _name(STATUS_CODE_NAMES, self.status),
                OVERFLOW_ATTRIBUTE: True,
            }
        attributes: dict[str, Any] = {
            "service.name": self.service,
            "span.name": self.name,
            "span.kind": _name(SPAN_KIND_NAMES, self.kind),
            "status.code": _name(STATUS_CODE_NAMES, self.status),
        }
        attributes.update(self.dimensions)
        return attributes


def _name(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else str(value)


class SeriesRegistry:
    """Assigns dense integer ids to series keys, enforcing the per-service limit.

    Ids are dense so aggregation can group spans with numpy on integer
    arrays; lookups of known keys take no lock.
    """

    def __init__(self, cardinality_limit: int = 2000, dimensions: Sequence[Dimension] = ()) -> None:
        if cardinality_limit < 1:
            raise ValueError(f"cardinality_limit must be >= 1, got {cardinality_limit}")
        names = [d.name for d in dimensions]
        clash = sorted(set(names) & set(BUILTIN_LABELS))
        if clash or len(set(names)) != len(names):
            raise ValueError(f"dimension names must be unique and not one of {BUILTIN_LABELS}, got {names}")
        self.cardinality_limit = cardinality_limit
        self.dimensions: tuple[Dimension, ...] = tuple(dimensions)
        self._defaults = tuple(d.default for d in self.dimensions)
        self._ids: dict[SeriesKey, int] = {}
        self._series: list[Series] = []
        self._per_service: dict[str, int] = {}
        self._overflow: dict[tuple[str, int], int] = {}
        self._overflowed: dict[str, int] = {}
        self._distinct: dict[str, list[set[Any]]] = {}  # per service: span.name, then each dimension
        self._blamed: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def series_id(self, key: SeriesKey) -> int:
        found = self._ids.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(key)
            if found is not None:
                return found
            service = key[0]
            values = self._dimension_values(key)
            self._count_distinct(service, key[1], values)
            if self._per_service.get(service, 0) >= self.cardinality_limit:
                series_id = self._overflow_id(service, key[3])
                self._blame(service)
                folded = self._overflowed.get(service, 0)
                if folded >= max(self.cardinality_limit, _REMEMBERED_OVERFLOW_KEYS):
                    # Do not remember unbounded junk keys (ids in span names):
                    # they keep folding, at the cost of a locked lookup.
                    return series_id
                self._overflowed[service] = folded + 1
            else:
                self._per_service[service] = self._per_service.get(service, 0) + 1
                dimensions = tuple((d.name, v) for d, v in zip(self.dimensions, values) if v is not None)
                series = Series(len(self._series), service, key[1], key[2], key[3], dimensions=dimensions)
                series_id = self._append(series)
            self._ids[key] = series_id
            return series_id

    def _dimension_values(self, key: SeriesKey) -> tuple[Any, ...]:
        """The key's dimension values, defaults filled in (a 4-field key has none of its own)."""
        given = key[4:]
        if len(given) < len(self._defaults):
            given = given + (None,) * (len(self._defaults) - len(given))
        return tuple(default if value is None else value for value, default in zip(given, self._defaults))

    def _count_distinct(self, service: str, name: str, values: tuple[Any, ...]) -> None:
        sets = self._distinct.get(service)
        if sets is None:
            sets = self._distinct[service] = [set() for _ in range(1 + len(values))]
        for seen, value in zip(sets, (name, *values)):
            if len(seen) < _DISTINCT_TRACKED:
                seen.add(value)

    def _blame(self, service: str) -> None:
        """Charge one folded key to the label with the most distinct values; warn the first time."""
        counts = [len(s) for s in self._distinct[service]]
        labels = ("span.name", *(d.name for d in self.dimensions))
        worst = max(range(len(counts)), key=counts.__getitem__)
        key = (service, labels[worst])
        if key not in self._blamed:
            others = ", ".join(f"{label} {count}" for label, count in zip(labels, counts) if label != labels[worst])
            _logger.warning(
                "service %r reached cardinality_limit %d: new series fold into the overflow series "
                "(otel.metric.overflow=true); %s has the most distinct values (%d%s)%s",
                service, self.cardinality_limit, labels[worst], counts[worst],
                "+" if counts[worst] >= _DISTINCT_TRACKED else "", f"; others: {others}" if others else "",
            )
        self._blamed[key] = self._blamed.get(key, 0) + 1

    def _overflow_id(self, service: str, status: int) -> int:
        # Errors keep their own overflow series so error counts stay exact.
        status = STATUS_CODE_ERROR if status == STATUS_CODE_ERROR else 0
        found = self._overflow.get((service, status))
        if found is None:
            series = Series(len(self._series), service, OVERFLOW_ENDPOINT, 0, status, overflow=True)
            found = self._append(series)
            self._overflow[(service, status)] = found
        return found

    def _append(self, series: Series) -> int:
        self._series.append(series)
        return series.id

    def __getitem__(self, series_id: int) -> Series:
        return self._series[series_id]

    def __len__(self) -> int:
        return len(self._series)

    def overflowed_keys(self) -> dict[str, int]:
        """Per service, how many distinct keys were folded into the overflow series.

        Counting stops at 10,000 keys per service (the registry stops
        remembering folded keys there), so read it as "at least".
        """
        with self._lock:
            return dict(self._overflowed)

    def overflow_by_dimension(self) -> dict[tuple[str, str], int]:
        """``(service, label) -> folded keys`` charged to the label with the most distinct values.

        The label is ``span.name`` or a configured dimension; every lookup
        of a key that folds counts (a key folded again after the registry
        stopped remembering folded keys counts again).
        """
        with self._lock:
            return dict(self._blamed)

    def overflow_summary(self) -> str:
        """One line per overflowing service naming the label to blame ("" when none overflows)."""
        with self._lock:
            blamed = dict(self._blamed)
            distinct = {service: [len(s) for s in sets] for service, sets in self._distinct.items()}
        labels = ("span.name", *(d.name for d in self.dimensions))
        per_service: dict[str, int] = {}
        for (service, _), count in blamed.items():
            per_service[service] = per_service.get(service, 0) + count
        lines = []
        for service, folded in sorted(per_service.items()):
            counts = distinct.get(service, [])
            worst = max(range(len(counts)), key=counts.__getitem__) if counts else 0
            lines.append(
                f"service {service!r}: {folded} series keys folded into the overflow series "
                f"(cardinality_limit {self.cardinality_limit}); most distinct values: "
                f"{labels[worst]} ({counts[worst] if counts else 0})"
            )
        return "; ".join(lines)

    def distinct_values(self, service: str) -> dict[str, int]:
        """Distinct values seen per label of a service's keys (``span.name`` and each dimension)."""
        labels = ("span.name", *(d.name for d in self.dimensions))
        with self._lock:
            sets = self._distinct.get(service)
            return {label: len(s) for label, s in zip(labels, sets)} if sets else {}
