"""Series identity, keyed like the Collector's spanmetrics connector.

    >>> registry = SeriesRegistry(cardinality_limit=2)
    >>> registry.series_id(("checkout", "GET /cart", 2, 0))
    0

A series is ``(service.name, span.name, span.kind, status.code)`` with kind
and status as OTLP enum numbers. Each service may create at most
``cardinality_limit`` series; further keys of that service fold into one
overflow series per service that carries ``otel.metric.overflow=true``
(the Collector's overflow series has only that attribute; ours keeps
``service.name`` because the limit, and every view, is per service, and
``status.code`` so error counts stay exact).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OVERFLOW_ATTRIBUTE",
    "OVERFLOW_ENDPOINT",
    "SPAN_KIND_NAMES",
    "STATUS_CODE_ERROR",
    "STATUS_CODE_NAMES",
    "Series",
    "SeriesKey",
    "SeriesRegistry",
]

SeriesKey = tuple[str, str, int, int]

OVERFLOW_ATTRIBUTE = "otel.metric.overflow"
OVERFLOW_ENDPOINT = "(overflow)"
_REMEMBERED_OVERFLOW_KEYS = 10_000
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
class Series:
    """What a series id stands for.

    Overflow series have the endpoint ``(overflow)`` and keep only the
    service and whether the folded spans were errors.
    """

    id: int
    service: str
    name: str
    kind: int
    status: int
    overflow: bool = False

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
        return {
            "service.name": self.service,
            "span.name": self.name,
            "span.kind": _name(SPAN_KIND_NAMES, self.kind),
            "status.code": _name(STATUS_CODE_NAMES, self.status),
        }


def _name(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else str(value)


class SeriesRegistry:
    """Assigns dense integer ids to series keys, enforcing the per-service limit.

    Ids are dense so aggregation can group spans with numpy on integer
    arrays; lookups of known keys take no lock.
    """

    def __init__(self, cardinality_limit: int = 2000) -> None:
        if cardinality_limit < 1:
            raise ValueError(f"cardinality_limit must be >= 1, got {cardinality_limit}")
        self.cardinality_limit = cardinality_limit
        self._ids: dict[SeriesKey, int] = {}
        self._series: list[Series] = []
        self._per_service: dict[str, int] = {}
        self._overflow: dict[tuple[str, int], int] = {}
        self._overflowed: dict[str, int] = {}
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
            if self._per_service.get(service, 0) >= self.cardinality_limit:
                series_id = self._overflow_id(service, key[3])
                folded = self._overflowed.get(service, 0)
                if folded >= max(self.cardinality_limit, _REMEMBERED_OVERFLOW_KEYS):
                    # Do not remember unbounded junk keys (ids in span names):
                    # they keep folding, at the cost of a locked lookup.
                    return series_id
                self._overflowed[service] = folded + 1
            else:
                self._per_service[service] = self._per_service.get(service, 0) + 1
                series_id = self._append(Series(len(self._series), *key))
            self._ids[key] = series_id
            return series_id

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
