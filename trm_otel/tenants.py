"""Per-tenant data: every tenant's telemetry is aggregated, stored and queried apart.

    >>> tenants = Tenants(factory)                       # doctest: +SKIP
    >>> tenants.get("shop").aggregator.add_spans(batch)  # created on first data   # doctest: +SKIP
    >>> tenants.source.select(metric, matchers, "shop")  # queries stay in their tenant  # doctest: +SKIP

A sender's token decides its tenant (:mod:`trm_otel.api.auth`); the
pipeline hands each batch to that tenant's :class:`TenantData`, which
holds its own aggregator, scalar series, log counts and flusher, so no
query, view, alert or dashboard of one tenant can see another's series.
Without auth everything is tenant ``default``. The number of tenants is
bounded (``max_tenants``); data of a tenant beyond it is refused at the
pipeline with a logged error rather than growing memory without end (a
token names its tenant, so only configured tenants can appear).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.log_counts import LogCounts
from trm_otel.processors.otlp_metrics import OtlpMetricsIngest
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.series_source import Matcher, SeriesRef, SeriesSource

__all__ = ["DEFAULT_TENANT", "TenantData", "Tenants", "TenantsSource"]

_logger = logging.getLogger("trm_otel.tenants")

DEFAULT_TENANT = "default"


@dataclass
class TenantData:
    """One tenant's in-memory state; ``source`` is what its queries read (memory, or memory + storage)."""

    name: str
    aggregator: LatencyAggregator
    series: ScalarSeriesStore
    log_counts: LogCounts
    metrics_ingest: OtlpMetricsIngest
    source: SeriesSource
    flusher: Any = None


class Tenants:
    """The tenants seen so far; ``factory(name)`` builds a new one's state."""

    def __init__(self, factory: Callable[[str], TenantData], *, max_tenants: int = 100) -> None:
        self.factory = factory
        self.max_tenants = max_tenants
        self._data: dict[str, TenantData] = {}
        self._lock = threading.Lock()
        self._empty: dict[str, TenantData] = {}
        self.source = TenantsSource(self)

    def get(self, name: str) -> TenantData:
        """The tenant's state, created on first use; ``OverflowError`` past ``max_tenants``."""
        found = self._data.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._data.get(name)
            if found is None:
                if len(self._data) >= self.max_tenants:
                    raise OverflowError(f"more than {self.max_tenants} tenants: data of tenant {name!r} refused")
                found = self._data[name] = self.factory(name)
                _logger.info("tenant %r: first data", name)
        return found

    def view(self, name: str) -> TenantData:
        """For readers: the tenant's state, or an empty one (not registered) if it has sent nothing."""
        found = self._data.get(name)
        if found is not None:
            return found
        with self._lock:
            empty = self._empty.get(name)
            if empty is None:
                empty = self._empty[name] = self.factory(name)
            return empty

    def __iter__(self) -> Iterator[TenantData]:
        with self._lock:
            return iter(list(self._data.values()))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._data)


class TenantsSource:
    """A :class:`SeriesSource` that answers each tenant from that tenant's own source."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants

    @property
    def window_s(self) -> float:
        return float(self.tenants.view(DEFAULT_TENANT).source.window_s)

    def _source(self, tenant: str) -> SeriesSource:
        return self.tenants.view(tenant).source

    def select(self, metric: str, matchers: Sequence[Matcher], tenant: str = DEFAULT_TENANT) -> list[SeriesRef]:
        return [
            SeriesRef((tenant, ref.key), ref.metric, ref.labels, ref.kind)
            for ref in self._source(tenant).select(metric, matchers, tenant)
        ]

    def metric_names(self, tenant: str = DEFAULT_TENANT) -> set[str]:
        """The metrics the tenant's own source can list (none if it cannot)."""
        method = getattr(self._source(tenant), "metric_names", None)
        return set(method(tenant)) if method is not None else set()

    def latency_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float, *, step_s: float | None = None
    ) -> dict[Hashable, Any]:
        return self._per_tenant(refs, lambda source, own: source.latency_windows(own, start_s, end_s, step_s=step_s))

    def scalar_windows(self, refs: Sequence[SeriesRef], start_s: float, end_s: float) -> dict[Hashable, Any]:
        return self._per_tenant(refs, lambda source, own: source.scalar_windows(own, start_s, end_s))

    def histogram_sum_windows(self, refs: Sequence[SeriesRef], start_s: float, end_s: float) -> dict[Hashable, Any]:
        def sums(source: Any, own: list[SeriesRef]) -> dict[Hashable, Any]:
            method = getattr(source, "histogram_sum_windows", None)
            return method(own, start_s, end_s) if method is not None else {}

        return self._per_tenant(refs, sums)

    def _per_tenant(self, refs: Sequence[SeriesRef], read: Callable[[Any, list[SeriesRef]], dict[Hashable, Any]]
                    ) -> dict[Hashable, Any]:
        by_tenant: dict[str, list[SeriesRef]] = {}
        for ref in refs:
            tenant, key = ref.key
            by_tenant.setdefault(tenant, []).append(SeriesRef(key, ref.metric, ref.labels, ref.kind))
        out: dict[Hashable, Any] = {}
        for tenant, own in by_tenant.items():
            for key, value in read(self._source(tenant), own).items():
                out[(tenant, key)] = value
        return out
