"""``configure()``: one call from a bare application to percentiles and OTLP export.

    >>> import trm_otel
    >>> telemetry = trm_otel.configure(service_name="checkout", set_global=False)
    >>> with telemetry.tracer_provider.get_tracer("demo").start_as_current_span("GET /cart"):
    ...     pass
    >>> [v.endpoint for v in telemetry.latency()]
    ['GET /cart']
    >>> telemetry.shutdown()

The handle owns an SDK ``TracerProvider`` with the latency span processor
and an SDK ``MeterProvider`` with the percentile reader, so everything the
application records through OpenTelemetry (spans, ASGI duration histograms)
feeds the same per-window histograms. With ``otlp_endpoint`` the standard
OTLP exporters send traces, the application's metrics and the span-derived
spanmetrics to any OTLP backend. With ``system_metrics`` (the default) the
same meter provider carries the host and process instruments
(``system.cpu.utilization``, ``process.memory.usage``, ...), and
``health()`` sums host thresholds and registered checks up as healthy,
degraded or unhealthy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from trm_otel.config import LatencyProcessorConfig, latency_processor_config, parse_duration
from trm_otel.errors import ConfigError
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.latency_report import bottleneck_report, latency_views, trend_report
from trm_otel.processors.metric_reader import PercentileMetricReader
from trm_otel.processors.span_processor import LatencySpanProcessor
from trm_otel.processors.stats import StatsSnapshot
from trm_otel.slo import SloPolicy, SloTarget
from trm_otel.system.health import CheckFn, HealthMonitor, HealthReport, register_health_instruments
from trm_otel.system.instruments import register_system_instruments
from trm_otel.system.readings import PsutilReader
from trm_otel.views import Bottleneck, LatencyView, Trend

__all__ = ["Telemetry", "configure"]

_logger = logging.getLogger(__name__)

OtlpProtocol = Literal["grpc", "http/protobuf"]


class Telemetry:
    """What ``configure()`` returns: the providers and the latency answers.

    Every read (``latency``, ``bottlenecks``, ``trends``) collects first,
    so a span that has just ended is included.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        reader: PercentileMetricReader,
        config: LatencyProcessorConfig,
        health_monitor: HealthMonitor | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.config = config
        self.health_monitor = health_monitor if health_monitor is not None else HealthMonitor()
        self._reader = reader
        self._shutdown_lock = threading.Lock()
        self._is_shutdown = False

    @property
    def aggregator(self) -> LatencyAggregator:
        return self._reader.aggregator

    @property
    def slo(self) -> SloPolicy:
        return self.config.slo

    def _range(self, value: str | float, name: str = "range") -> float:
        try:
            return parse_duration(value)
        except ValueError as err:
            raise ConfigError([(name, str(err))]) from None

    def _collect(self) -> None:
        if not self._is_shutdown:
            self._reader.collect()
        self._reader.drain()

    def latency(
        self, service: str | None = None, endpoint: str | None = None, range: str | float = "5m"
    ) -> list[LatencyView]:
        """P50/P95/P99, throughput, errors, Apdex and level per endpoint over ``range``."""
        range_s = self._range(range)
        self._collect()
        return latency_views(self.aggregator, self.slo, range_s, service, endpoint)

    def bottlenecks(self, service: str | None = None, range: str | float = "15m", limit: int = 10) -> list[Bottleneck]:
        """The endpoints and child operations that most deserve attention, worst first."""
        range_s = self._range(range)
        self._collect()
        return bottleneck_report(self.aggregator, self.slo, range_s, service, limit)

    def trends(self, service: str | None = None, endpoint: str | None = None, range: str | float = "15m") -> list[Trend]:
        """Where each endpoint's P95 and throughput are heading, degrading first."""
        range_s = self._range(range)
        self._collect()
        return trend_report(self.aggregator, self.slo, range_s, service, endpoint)

    def health(self) -> HealthReport:
        """Host thresholds and every registered check, run now; returns within the largest check time-out.

        ``health().to_dict()`` is the JSON the daemon serves at ``/api/v1/health``.
        """
        return self.health_monitor.report()

    def register_health_check(
        self, name: str, fn: CheckFn, timeout_s: float | str = 5.0, critical: bool = True
    ) -> None:
        """Add a check to ``health()``: ``fn`` is sync or async and returns a bool or ``(bool, detail)``.

        An exception, any other return value or running past ``timeout_s``
        fails it with the reason; a failing critical check makes the report
        unhealthy, a non-critical one degraded.
        """
        self.health_monitor.register_health_check(name, fn, timeout_s, critical)

    def stats(self) -> StatsSnapshot:
        """Spans accepted, dropped (buffer full), rejected and repaired, by reason."""
        return self.aggregator.stats.snapshot()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush span export, aggregate everything buffered, export metrics."""
        ok = self.tracer_provider.force_flush(timeout_millis)
        return self.meter_provider.force_flush(timeout_millis) and ok

    def shutdown(self) -> None:
        """Flush and stop; safe to call twice. Spans end before metrics flush."""
        with self._shutdown_lock:
            if self._is_shutdown:
                return
            self._is_shutdown = True
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _otlp_exporters(endpoint: str, protocol: OtlpProtocol) -> tuple[SpanExporter, MetricExporter, MetricExporter]:
    """Span exporter, app-metrics exporter and spanmetrics exporter for one endpoint.

    A bare ``host:port`` or an ``http://`` URL is plaintext, ``https://`` is TLS.
    """
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = not endpoint.startswith("https://")
        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=insecure),
            OTLPMetricExporter(endpoint=endpoint, insecure=insecure),
            OTLPMetricExporter(endpoint=endpoint, insecure=insecure),
        )
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        base = endpoint if "://" in endpoint else f"http://{endpoint}"
        base = base.rstrip("/")
        return (
            HttpSpanExporter(endpoint=f"{base}/v1/traces"),
            HttpMetricExporter(endpoint=f"{base}/v1/metrics"),
            HttpMetricExporter(endpoint=f"{base}/v1/metrics"),
        )
    raise ConfigError([("otlp_protocol", f"must be 'grpc' or 'http/protobuf', got {protocol!r}")])


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError([("otlp_endpoint", f"not host:port or a URL with a port: {endpoint!r}")])


def configure(
    service_name: str = "unknown_service",
    otlp_endpoint: str | None = None,
    system_metrics: bool = True,
    window: str | float = "10s",
    slo: SloPolicy | SloTarget | Mapping[str, Any] | float | None = None,
    set_global: bool = True,
    *,
    otlp_protocol: OtlpProtocol = "grpc",
    history: str | float = "1h",
    cardinality_limit: int = 2000,
    buffer_size: int = 20_000,
    resource_attributes: Mapping[str, Any] | None = None,
    metric_export_interval: str | float = "60s",
    metric_readers: list[MetricReader] | None = None,
    system_interval: str | float = "30s",
) -> Telemetry:
    """Set up tracing, metrics and latency processing for this process.

    ``slo`` is a P95 target in ms, an :class:`~trm_otel.slo.SloTarget`, or the
    YAML shape ``{"default": {...}, "services": {name: {..., "endpoints":
    {...}}}}``. ``set_global`` installs the providers as the OpenTelemetry
    globals, which is what instrumentation libraries use. Bad arguments raise
    :class:`~trm_otel.errors.ConfigError` naming each one. ``system_metrics``
    registers the host and process instruments (semantic-convention names)
    on the meter provider, read with psutil at most every ``system_interval``
    (however often readers collect) and shared with the health monitor's
    host thresholds; without it ``health()`` has only the registered checks.
    """
    config = latency_processor_config(
        "",
        window=window,
        history=history,
        cardinality_limit=cardinality_limit,
        buffer_size=buffer_size,
        slo=slo,
    )
    if otlp_endpoint is not None:
        _check_endpoint(otlp_endpoint)
    try:
        export_interval_s = parse_duration(metric_export_interval)
    except ValueError as err:
        raise ConfigError([("metric_export_interval", str(err))]) from None
    try:
        system_interval_s = parse_duration(system_interval)
    except ValueError as err:
        raise ConfigError([("system_interval", str(err))]) from None

    resource = Resource.create({**(resource_attributes or {}), "service.name": service_name})
    exporters = _otlp_exporters(otlp_endpoint, otlp_protocol) if otlp_endpoint is not None else None

    aggregator = LatencyAggregator(
        window_s=config.window,
        history_s=config.history,
        cardinality_limit=config.cardinality_limit,
        track_cumulative=exporters is not None,
    )
    processor = LatencySpanProcessor(config.buffer_size)
    reader = PercentileMetricReader(
        aggregator,
        span_processors=[processor],
        exporter=exporters[2] if exporters else None,
        resource_attributes={k: str(v) for k, v in resource.attributes.items() if k != "service.name"},
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(processor)
    readers: list[MetricReader] = [reader, *(metric_readers or [])]
    if exporters is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(exporters[0]))
        readers.append(PeriodicExportingMetricReader(exporters[1], export_interval_millis=export_interval_s * 1000))
    meter_provider = MeterProvider(metric_readers=readers, resource=resource)
    _register_stats_instruments(meter_provider, aggregator)
    host = register_system_instruments(meter_provider, PsutilReader(), system_interval_s) if system_metrics else None
    health_monitor = HealthMonitor(host, check_interval_s=system_interval_s)
    register_health_instruments(meter_provider, health_monitor)

    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    _logger.info(
        "trm-otel configured for %s: window %ss, otlp %s",
        service_name,
        config.window,
        f"{otlp_protocol} {otlp_endpoint}" if otlp_endpoint else "off",
    )
    return Telemetry(tracer_provider, meter_provider, reader, config, health_monitor)


def _register_stats_instruments(meter_provider: MeterProvider, aggregator: LatencyAggregator) -> None:
    """Expose the pipeline counters as OTel metrics, so drops show up in any backend."""
    from opentelemetry.metrics import CallbackOptions, Observation

    meter = meter_provider.get_meter("trm_otel")

    def accepted(_: CallbackOptions) -> list[Observation]:
        return [Observation(aggregator.stats.snapshot().accepted)]

    def dropped(_: CallbackOptions) -> list[Observation]:
        return [Observation(aggregator.stats.snapshot().dropped)]

    def rejected(_: CallbackOptions) -> list[Observation]:
        snapshot = aggregator.stats.snapshot()
        return [Observation(n, {"reason": reason}) for reason, n in snapshot.rejected.items()]

    def repaired(_: CallbackOptions) -> list[Observation]:
        snapshot = aggregator.stats.snapshot()
        return [Observation(n, {"reason": reason}) for reason, n in snapshot.repaired.items()]

    meter.create_observable_counter("trm_otel.spans.accepted", [accepted], unit="{span}",
                                    description="Spans aggregated into latency histograms.")
    meter.create_observable_counter("trm_otel.spans.dropped", [dropped], unit="{span}",
                                    description="Spans dropped because the span buffer was full.")
    meter.create_observable_counter("trm_otel.spans.rejected", [rejected], unit="{span}",
                                    description="Spans that could not be used, by reason.")
    meter.create_observable_counter("trm_otel.spans.repaired", [repaired], unit="{span}",
                                    description="Spans aggregated after a repair, by reason.")
