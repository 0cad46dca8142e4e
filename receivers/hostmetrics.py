"""The ``hostmetrics`` receiver: this host's metrics, into the same pipeline as OTLP.

    receivers:
      hostmetrics: {collection_interval: 30s, scrapers: {cpu: {}, memory: {}}}

The readings come from the system monitor's observable instruments (one
psutil read per collection) and are encoded with the OTel SDK's own OTLP
encoder, so they enter the pipeline as an ``ExportMetricsServiceRequest``,
exactly like metrics another service sends: stored as series, queryable
(``last(system.memory.utilization{system.memory.state="used"}[1m])``),
forwarded by exporters. Scrapers select metrics by name, as the
Collector's do.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from trm_otel.pipeline import Consumer
from trm_otel.system import (
    CachedReader,
    HealthMonitor,
    HostReader,
    register_health_instruments,
    register_system_instruments,
)

__all__ = ["SCRAPER_METRICS", "HostMetricsReceiver"]

_logger = logging.getLogger(__name__)

#: scraper -> metric name prefixes it produces
SCRAPER_METRICS: dict[str, tuple[str, ...]] = {
    "cpu": ("system.cpu.utilization", "system.cpu.time"),
    "load": ("system.cpu.load_average",),
    "memory": ("system.memory.",),
    "paging": ("system.swap.", "system.paging."),
    "disk": ("system.disk.",),
    "filesystem": ("system.filesystem.",),
    "network": ("system.network.",),
    "processes": ("system.process.count",),
    "process": ("process.",),
}


class HostMetricsReceiver:
    """Collects host metrics every ``interval_s`` and offers them to the pipeline."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        interval_s: float = 30.0,
        scrapers: Iterable[str] = tuple(SCRAPER_METRICS),
        reader: HostReader | None = None,
        service_name: str = "trm-otel",
    ) -> None:
        self.consumer = consumer
        self.interval_s = interval_s
        self.prefixes = tuple(p for name in scrapers for p in SCRAPER_METRICS[name])
        self._memory = InMemoryMetricReader()
        resource = Resource.create({"service.name": service_name, "host.name": socket.gethostname()})
        self._provider = MeterProvider(metric_readers=[self._memory], resource=resource)
        self.reader: CachedReader = register_system_instruments(self._provider, reader, interval_s=interval_s)
        self.scrapes = 0
        self.refused = 0

    def record_health(self, monitor: HealthMonitor) -> None:
        """Also record ``trm_otel.health.status`` per check, so health changes become series."""
        register_health_instruments(self._provider, monitor)
        self.prefixes = (*self.prefixes, "trm_otel.health.")

    def scrape(self) -> int:
        """One collection offered to the pipeline; returns the points offered (0 if refused)."""
        request = encode_metrics(self._memory.get_metrics_data())
        points = 0
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                kept = [m for m in scope_metrics.metrics if m.name.startswith(self.prefixes)]
                del scope_metrics.metrics[:]
                scope_metrics.metrics.extend(kept)
                for metric in kept:
                    points += len(getattr(metric, metric.WhichOneof("data")).data_points)
        self.scrapes += 1
        if points and not self.consumer.offer_metrics(request, points):
            self.refused += 1
            return 0
        return points

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape now and every interval until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.scrape)
            except Exception:  # noqa: BLE001 - one failed scrape must not end the receiver
                _logger.exception("hostmetrics scrape failed")
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except asyncio.TimeoutError:
                pass

    def shutdown(self) -> None:
        self._provider.shutdown()
