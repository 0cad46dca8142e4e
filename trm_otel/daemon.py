"""``trm-otel serve``: receivers -> pipeline -> aggregation, exporters and the API.

    >>> daemon = Daemon(load_config("trm-otel.yaml"))                  # doctest: +SKIP
    >>> asyncio.run(daemon.run())      # until SIGTERM / SIGINT        # doctest: +SKIP

The graph is built here and only here: receivers know only the pipeline
(their consumer), the pipeline knows only its handlers, and consumers (the
API, exporters) read the aggregator, never receiver internals. Start-up
is fast and logs every bound address; shutdown stops the receivers first,
then drains the pipeline, then flushes exporters, so everything that got a
success answer is processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from trm_otel._version import __version__
from trm_otel.alerting.service import AlertingTenants
from trm_otel.api import ApiContext, Sample, build_api_app
from trm_otel.api.audit import AuditMiddleware
from trm_otel.api.auth import Authenticator, AuthMiddleware
from trm_otel.api.hardening import HardeningMiddleware
from trm_otel.audit import AuditEntry, AuditLog
from trm_otel.asgi_instrument import span_details
from trm_otel.asgi_server import EmbeddedServer
from trm_otel.config import DaemonConfig
from trm_otel.errors import ConfigError
from trm_otel.dashboards.service import DashboardService, known_tenants
from trm_otel.dashboards.store import DATABASE_NAME as DASHBOARDS_DATABASE, DashboardStore
from trm_otel.exporters import DebugExporter, OtlpForwarder, RetryPolicy
from trm_otel.pipeline import Pipeline
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.log_counts import LogCounts
from trm_otel.processors.metric_reader import PercentileMetricReader
from trm_otel.processors.otlp_metrics import OtlpMetricsIngest
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.processors.series import Dimension
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.processors.span_processor import LatencySpanProcessor
from trm_otel.processors.spanmetrics import spanmetrics_data
from trm_otel.persistence import Flusher
from trm_otel.query import CombinedSource, MemorySource
from trm_otel.receivers import build_grpc_server, build_http_app, require_upb
from trm_otel.receivers.hostmetrics import HostMetricsReceiver
from trm_otel.series_source import SeriesSource
from trm_otel.tenants import DEFAULT_TENANT, TenantData, Tenants
from trm_otel.tls import ServerTls, TlsSettings
from trm_otel.ui import StreamHub
from trm_otel.storage import DATABASE_NAME, StorageSource, Store, retention_from_config
from trm_otel.system import CachedReader, HealthMonitor, PsutilReader

__all__ = ["SELF_SERVICE", "Daemon"]

_logger = logging.getLogger("trm_otel.daemon")

SELF_SERVICE = "trm-otel"
_MAX_FUTURE_S = 300.0
AUDIT_DATABASE = "audit.db"


@dataclass
class _Exporter:
    id: str
    signals: frozenset[str]
    forwarder: OtlpForwarder | None = None
    debug: DebugExporter | None = None


def _tls_options(settings: TlsSettings | None) -> dict[str, Any]:
    return ServerTls(settings).uvicorn_options() if settings is not None else {}


class Daemon:
    """One daemon process: build with a validated config, then ``await start()`` / ``stop()``."""

    def __init__(self, config: DaemonConfig, *, demo: bool = False, demo_rps: float = 25.0) -> None:
        self.config = config
        self.demo = demo
        self.demo_rps = demo_rps
        latency = config.latency()
        self.latency_config = latency
        self.authenticator = Authenticator(config.auth.all_tokens())
        self.store: Store | None = None  # opened at start, in the data directory
        self._boundary_window = 0
        configured_tenants = {t.tenant for t in config.auth.all_tokens()} | {DEFAULT_TENANT}
        self.tenants = Tenants(self._new_tenant, max_tenants=max(100, len(configured_tenants)))
        self.pipeline = Pipeline(
            max_pending_items=config.service.queue.max_pending_items,
            coalesce={"traces": SpanBatch.concat},
        )
        self.pipeline.add_handler("traces", lambda t, batch: self.tenants.get(t).aggregator.add_spans(batch),
                                  tenant_aware=True)
        self.pipeline.add_handler("metrics", lambda t, request: self.tenants.get(t).metrics_ingest.consume(request),
                                  tenant_aware=True)
        self.pipeline.add_handler("logs", lambda t, request: self.tenants.get(t).log_counts.consume(request),
                                  tenant_aware=True)
        self.default = self.tenants.get(DEFAULT_TENANT)
        self.aggregator = self.default.aggregator
        self.series = self.default.series
        self.query_source: SeriesSource = self.tenants.source
        self.exporters = self._build_exporters()
        self.data_dir = Path(config.storage.path)
        self.alerting: AlertingTenants | None = None
        self.audit: AuditLog | None = None
        self.dashboards: DashboardService | None = None
        self.stream = StreamHub()  # live updates for the web UI
        hostmetrics = config.hostmetrics()
        self.hostmetrics = (
            HostMetricsReceiver(
                self.pipeline, interval_s=hostmetrics.collection_interval, scrapers=hostmetrics.enabled_scrapers()
            )
            if hostmetrics is not None
            else None
        )
        host = self.hostmetrics.reader if self.hostmetrics is not None else CachedReader(PsutilReader(), max_age_s=5.0)
        self.health_monitor = HealthMonitor(host)
        self._register_checks()
        if self.hostmetrics is not None:
            self.hostmetrics.record_health(self.health_monitor)
        self.endpoints: dict[str, str] = {}
        self._grpc: Any = None
        self._servers: list[EmbeddedServer] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self._started = False
        self._stopped = False
        self._started_at = time.time()
        self._self_tracer: TracerProvider | None = None
        self._self_meter: MeterProvider | None = None

    # ------------------------------------------------------------ building

    def _build_exporters(self) -> list[_Exporter]:
        """Exporters named by a pipeline, with the signals each one receives."""
        signals_of: dict[str, set[str]] = {}
        for pipeline_id, pipeline in self.config.pipelines().items():
            signal_name = pipeline_id.split("/", 1)[0]
            for exporter_id in pipeline.exporters:
                signals_of.setdefault(exporter_id, set()).add(signal_name)
        built = []
        for exporter_id, signals in sorted(signals_of.items()):
            settings = self.config.exporters[exporter_id]
            kind = exporter_id.split("/", 1)[0]
            if kind == "otlp":
                wanted = set(settings.signals)
                chosen = (signals & wanted) | ({"spanmetrics"} & wanted)
                forwarder = OtlpForwarder(
                    settings.endpoint,
                    protocol=settings.protocol,
                    headers=settings.headers,
                    insecure=settings.insecure,
                    timeout_s=settings.timeout,
                    compression=settings.compression,
                    queue_size=settings.sending_queue.queue_size,
                    retry=RetryPolicy(
                        enabled=settings.retry_on_failure.enabled,
                        initial_interval_s=settings.retry_on_failure.initial_interval,
                        max_interval_s=settings.retry_on_failure.max_interval,
                        max_elapsed_s=settings.retry_on_failure.max_elapsed_time,
                    ),
                    name=exporter_id,
                )
                built.append(_Exporter(exporter_id, frozenset(chosen), forwarder=forwarder))
            elif kind == "debug":
                built.append(_Exporter(exporter_id, frozenset(signals), debug=DebugExporter(settings.verbosity, name=exporter_id)))
        for exporter in built:
            for signal_name in ("traces", "metrics", "logs"):
                if signal_name not in exporter.signals:
                    continue
                if exporter.forwarder is not None:
                    forward = exporter.forwarder.send
                    self.pipeline.add_handler(signal_name, lambda r, s=signal_name, f=forward: f(s, r), raw=True)
                elif exporter.debug is not None:
                    show = exporter.debug.export
                    self.pipeline.add_handler(signal_name, lambda r, s=signal_name, d=show: d(s, r), raw=True)
        return built

    def _self_instrumentation(self) -> tuple[TracerProvider, MeterProvider]:
        """The daemon traces its own API into its own aggregator, as service ``trm-otel``."""
        resource = Resource.create({"service.name": SELF_SERVICE, "service.version": __version__})
        processor = LatencySpanProcessor()
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(processor)
        reader = PercentileMetricReader(self.aggregator, span_processors=[processor])
        return tracer_provider, MeterProvider(metric_readers=[reader], resource=resource)

    # --------------------------------------------------------------- start

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        probe = self.data_dir / ".write-probe"
        probe.write_text(str(os.getpid()))
        probe.unlink()

    def _new_tenant(self, name: str) -> TenantData:
        """A tenant's aggregation state, stitched to its stored history when storage is open."""
        latency = self.latency_config
        aggregator = LatencyAggregator(
            window_s=latency.window,
            history_s=latency.history,
            cardinality_limit=latency.cardinality_limit,
            track_cumulative=True,
            dimensions=[Dimension(d.name, d.default) for d in latency.dimensions],
            exemplars_slowest=latency.exemplars.slowest,
            exemplars_sampled=latency.exemplars.sampled,
        )
        series = ScalarSeriesStore(window_s=latency.window, history_s=latency.history)
        data = TenantData(
            name,
            aggregator,
            series,
            LogCounts(window_s=latency.window, history_s=latency.history),
            OtlpMetricsIngest(aggregator, series),
            MemorySource(aggregator, series, tenant=name),
        )
        if self.store is not None:
            self._attach_storage(data)
        return data

    def _attach_storage(self, data: TenantData) -> None:
        assert self.store is not None
        storage = self.config.storage
        data.flusher = Flusher(
            data.aggregator, data.series, self.store, flush_interval_s=storage.flush_interval, tenant=data.name
        )
        stored = StorageSource(self.store, tenant=data.name)
        data.aggregator.use_history(
            stored,
            self.history_boundary_s,
            store_age_s=storage.retention.raw,
            reach_s=max(storage.retention.raw, storage.retention.one_minute, storage.retention.one_hour),
        )
        data.source = CombinedSource(data.source, stored, self.history_boundary_s)

    def _open_storage(self) -> None:
        """Open the store and stitch it under memory: windows before the boundary come from disk."""
        storage = self.config.storage
        self.store = Store(
            self.data_dir / DATABASE_NAME,
            retention_s=retention_from_config(storage.retention, self.aggregator.window_s),
            window_s=self.aggregator.window_s,
        )
        # Memory holds everything received since start-up, so from the start-up
        # window on it answers; before it, storage does. (Spans a previous run
        # wrote for this same window are read from storage once it leaves memory.)
        self._boundary_window = self.aggregator.grid.index(time.time_ns())
        for data in self.tenants:
            self._attach_storage(data)

    def history_boundary_s(self) -> float:
        """Where storage hands over to memory: the later of start-up and the oldest window memory keeps."""
        grid = self.aggregator.grid
        oldest_in_memory = grid.oldest(time.time()) + 1
        return grid.start_s(max(self._boundary_window, oldest_in_memory))

    async def start(self) -> None:
        """Listen on every configured endpoint and start processing; raises if one cannot bind."""
        require_upb()
        self._prepare_data_dir()
        self._open_storage()
        self.pipeline.start()
        for exporter in self.exporters:
            if exporter.forwarder is not None:
                exporter.forwarder.start()
        max_age_s = max(self.latency_config.history, self.config.storage.retention.raw)
        grpc_settings = self.config.grpc_settings()
        if grpc_settings is not None:
            self._grpc, port = build_grpc_server(
                self.pipeline,
                endpoint=grpc_settings.endpoint,
                max_recv_msg_size_mib=grpc_settings.max_recv_msg_size_mib,
                max_age_s=max_age_s,
                max_future_s=_MAX_FUTURE_S,
                authenticator=self.authenticator,
                tls=ServerTls(grpc_settings.tls) if grpc_settings.tls else None,
            )
            await self._grpc.start()
            self.endpoints["otlp_grpc"] = self._announce("OTLP/gRPC receiver", grpc_settings.endpoint, port)
        http_settings = self.config.http_settings()
        if http_settings is not None:
            app = build_http_app(
                self.pipeline,
                max_request_body_size=int(http_settings.max_request_body_size_mib * 1024 * 1024),
                max_age_s=max_age_s,
                max_future_s=_MAX_FUTURE_S,
                authenticator=self.authenticator,
            )
            server = EmbeddedServer(app, http_settings.endpoint, name="otlp-http", **_tls_options(http_settings.tls))
            port = await server.start()
            self._servers.append(server)
            http_scheme = "https://" if http_settings.tls else "http://"
            self.endpoints["otlp_http"] = self._announce(
                "OTLP/HTTP receiver", http_settings.endpoint, port, scheme=http_scheme
            )
        self._self_tracer, self._self_meter = self._self_instrumentation()
        self.audit = AuditLog(self.data_dir / AUDIT_DATABASE, retention_s=self.config.audit.retention)
        self.alerting = AlertingTenants(
            self.config.alerting,
            data_dir=self.data_dir,
            source=self.query_source,
            scalars_of=lambda tenant: self.tenants.get(tenant).series,
            slo=self.latency_config.slo,
            tenants=tuple(sorted({t.tenant for t in self.config.auth.all_tokens()})),
            on_change=self.stream.publish_alerts,  # a tenant's alert summary, to its open dashboards only
        )
        self.dashboards = DashboardService(
            DashboardStore(self.data_dir / DASHBOARDS_DATABASE), self.query_source, slo=self.latency_config.slo,
            exemplars=lambda tenant, matchers, start, end, limit: self.tenants.view(tenant).aggregator.exemplars(
                matchers, start, end, limit=limit
            ),
        )
        configured = [t.tenant for t in self.config.auth.all_tokens()]
        for tenant in known_tenants(self.dashboards.store, configured):
            await asyncio.to_thread(self.dashboards.ensure_defaults, tenant)
        await asyncio.to_thread(self.dashboards.provision, self.config.dashboards.provision)
        api = build_api_app(
            ApiContext(
                aggregator=self.aggregator,
                slo=self.latency_config.slo,
                ready=self.ready,
                health=self.health,
                self_metrics=self.self_metrics,
                version=__version__,
                query_source=self.query_source,
                alerting=self.alerting,
                tenant_aggregator=lambda tenant: self.tenants.view(tenant).aggregator,
                audit=self.audit,
                dashboards=self.dashboards,
                stream=self.stream,
            )
        )
        hardened = HardeningMiddleware(
            api,
            max_body_bytes=int(self.config.api.max_request_body_size_mib * 1024 * 1024),
            rate_limit=self.config.api.rate_limit,
        )
        audited = AuditMiddleware(AuthMiddleware(hardened, self.authenticator), self.audit, lambda: api)
        # Outermost, so answers of the auth, hardening and audit layers (401, 413, 429) are traced too:
        # instrument_asgi(api) would sit inside them. Spans are named as instrument_asgi names them.
        traced_api = OpenTelemetryMiddleware(
            audited,
            tracer_provider=self._self_tracer,
            meter_provider=self._self_meter,
            default_span_details=span_details(api),
            exclude_spans=["receive", "send"],
        )
        api_server = EmbeddedServer(traced_api, self.config.api.endpoint, name="api", **_tls_options(self.config.api.tls))
        port = await api_server.start()
        self._servers.append(api_server)
        api_scheme = "https://" if self.config.api.tls else "http://"
        self.endpoints["api"] = self._announce("API and UI", self.config.api.endpoint, port, scheme=api_scheme)
        self.alerting.default_external_url(f"{api_scheme}{self.endpoints['api']}")
        await self.alerting.start()
        self._tasks.append(asyncio.create_task(
            self.stream.publish_views_forever(self.latency_config.window, self._stopping), name="ui-views"))
        self._tasks.append(asyncio.create_task(self._export_spanmetrics_forever(), name="spanmetrics"))
        self._tasks.append(asyncio.create_task(self._flush_forever(), name="flush"))
        if self.hostmetrics is not None:
            self._tasks.append(asyncio.create_task(self.hostmetrics.run(self._stopping), name="hostmetrics"))
            _logger.info("hostmetrics receiver scraping every %ss", self.hostmetrics.interval_s)
        if self.demo:
            from trm_otel.demo import serve_shop

            target = f"127.0.0.1:{self.endpoints['otlp_grpc'].rsplit(':', 1)[1]}" if "otlp_grpc" in self.endpoints else None
            if target is None:
                raise RuntimeError("--demo needs the OTLP/gRPC receiver enabled")
            self._tasks.append(asyncio.create_task(serve_shop(target, self._stopping, port=0, rps=self.demo_rps)))
        self._started = True
        _logger.info("trm-otel %s ready; data in %s", __version__, self.data_dir.resolve())

    def _announce(self, what: str, endpoint: str, port: int, scheme: str = "") -> str:
        host = endpoint.rpartition(":")[0]
        address = f"{host}:{port}"
        _logger.info("%s listening on %s%s", what, scheme, address)
        if host.strip("[]") in ("127.0.0.1", "localhost", "::1"):
            _logger.info("(%s is loopback only: other hosts and containers cannot reach it)", address)
        return address

    # ---------------------------------------------------------- consumers

    def ready(self) -> bool:
        if not self._started or self._stopped:
            return False
        if any(not server.listening for server in self._servers):
            return False
        return self.data_dir.is_dir() and os.access(self.data_dir, os.W_OK)

    def _register_checks(self) -> None:
        """The daemon's own checks, beside the host thresholds, in one health report."""
        monitor = self.health_monitor

        def receivers() -> tuple[bool, str]:
            listening = ", ".join(f"{k} {v}" for k, v in self.endpoints.items())
            return self.ready(), listening or "not started"

        def pipeline_queue() -> tuple[bool, str]:
            counters = self.pipeline.counters()
            detail = f"{counters.pending_items} of {counters.max_pending_items} items pending"
            return counters.pending_items < 0.8 * counters.max_pending_items, detail

        def data_dir() -> tuple[bool, str]:
            usable = self.data_dir.is_dir() and os.access(self.data_dir, os.W_OK)
            return usable, str(self.data_dir.resolve())

        monitor.register_health_check("receivers", receivers, timeout_s=1.0)
        monitor.register_health_check("pipeline_queue", pipeline_queue, timeout_s=1.0, critical=False)
        monitor.register_health_check("data_dir", data_dir, timeout_s=1.0)

        def series_overflow() -> tuple[bool, str]:
            found = [f"tenant {t.name!r}: {d}" for t in self.tenants if (d := t.aggregator.registry.overflow_summary())]
            return not found, "; ".join(found) or "no service over its cardinality_limit"

        monitor.register_health_check("series_overflow", series_overflow, timeout_s=1.0, critical=False)
        for exporter in self.exporters:
            if exporter.forwarder is None:
                continue

            def exported(forwarder: OtlpForwarder = exporter.forwarder) -> tuple[bool, str]:
                stats = forwarder.stats()
                dropped = sum(stats.dropped.values())
                return dropped == 0, f"sent {sum(stats.sent.values())}, dropped {dropped}, queued {stats.queued}"

            monitor.register_health_check(f"exporter {exporter.id}", exported, timeout_s=1.0, critical=False)

    def health(self) -> dict[str, Any]:
        return self.health_monitor.report().to_dict()

    def self_metrics(self) -> Iterable[Sample]:
        counters = self.pipeline.counters()
        for fate, values in (
            ("accepted", counters.accepted),
            ("refused", counters.refused),
            ("processed", counters.processed),
            ("failed", counters.failed),
        ):
            for signal_name, value in values.items():
                yield Sample(
                    f"trm_otel_pipeline_{fate}_items_total",
                    "counter",
                    f"Items (spans, points, log records) {fate} by the pipeline.",
                    {"signal": signal_name},
                    value,
                )
        yield Sample("trm_otel_pipeline_pending_items", "gauge", "Items waiting for processing.", {},
                     counters.pending_items)
        for tenant in self.tenants:
            stats = tenant.aggregator.stats.snapshot()
            labels = {"tenant": tenant.name}
            yield Sample("trm_otel_spans_accepted_total", "counter", "Spans aggregated.", labels, stats.accepted)
            for reason, value in stats.rejected.items():
                yield Sample("trm_otel_spans_rejected_total", "counter", "Spans not aggregated, by reason.",
                             {**labels, "reason": reason}, value)
            yield Sample("trm_otel_series", "gauge", "Span latency series.", labels, len(tenant.aggregator.registry))
        for exporter in self.exporters:
            if exporter.forwarder is None:
                continue
            exported = exporter.forwarder.stats()
            for signal_name, value in exported.sent.items():
                yield Sample("trm_otel_exporter_sent_requests_total", "counter", "Requests sent upstream.",
                             {"exporter": exporter.id, "signal": signal_name}, value)
            for key, value in exported.dropped.items():
                signal_name, reason = key.split(":", 1)
                yield Sample("trm_otel_exporter_dropped_requests_total", "counter", "Requests dropped by exporters.",
                             {"exporter": exporter.id, "signal": signal_name, "reason": reason}, value)
        yield Sample("trm_otel_uptime_seconds", "gauge", "Seconds since the daemon started.", {},
                     time.time() - self._started_at)

    def _flush_all(self, final: bool = False) -> int:
        """Write every tenant's closed windows (all of them when ``final``); the rows written."""
        return sum(data.flusher.flush(final) for data in self.tenants if data.flusher is not None)

    async def _flush_forever(self) -> None:
        """Write closed windows every flush interval; compact about once a minute."""
        flusher = self.default.flusher
        assert flusher is not None
        last_compaction = time.monotonic()
        while True:
            await asyncio.sleep(flusher.flush_interval_s)
            try:
                await asyncio.to_thread(self._flush_all)
                if time.monotonic() - last_compaction >= flusher.compact_interval_s:
                    last_compaction = time.monotonic()
                    await asyncio.to_thread(flusher.compact)  # the store is shared: one compaction for all
            except Exception:  # noqa: BLE001 - a failed flush is retried next interval; memory keeps the data
                _logger.exception("flushing to storage failed")

    async def _export_spanmetrics_forever(self) -> None:
        forwarders = self._spanmetrics_forwarders()
        if not forwarders:
            return
        while True:
            await asyncio.sleep(self.latency_config.window)
            await asyncio.to_thread(self._export_spanmetrics, forwarders)

    def _spanmetrics_forwarders(self) -> list[OtlpForwarder]:
        return [e.forwarder for e in self.exporters if e.forwarder is not None and "spanmetrics" in e.signals]

    def _export_spanmetrics(self, forwarders: list[OtlpForwarder]) -> None:
        for tenant in self.tenants:
            data = spanmetrics_data(tenant.aggregator, time.time_ns())
            if data is None:
                continue
            request = encode_metrics(data)
            for forwarder in forwarders:
                forwarder.send("metrics", request)

    # ---------------------------------------------------------------- stop

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop receiving, process everything acknowledged, flush exporters. Safe twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        for task in self._tasks:
            if task.get_name() in ("spanmetrics", "flush"):
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), grace_s)
        if self._grpc is not None:
            await self._grpc.stop(grace_s)
        self.stream.close()  # open event streams would hold the API server's graceful shutdown
        for server in reversed(self._servers):
            await server.stop()
        if self.alerting is not None:
            await self.alerting.stop()
        if self.audit is not None:
            self.audit.close()
        if self.dashboards is not None:
            self.dashboards.close()
        await asyncio.to_thread(self.pipeline.stop, grace_s * 3)
        if self.store is not None:
            rows = await asyncio.to_thread(self._flush_all, True)
            self.store.close()
            _logger.info("flushed %d rows to %s", rows, self.store.path)
        if self._spanmetrics_forwarders():  # the final totals, after the pipeline drained
            await asyncio.to_thread(self._export_spanmetrics, self._spanmetrics_forwarders())
        for forwarder in (e.forwarder for e in self.exporters if e.forwarder is not None):
            await asyncio.to_thread(forwarder.shutdown, grace_s)
        if self.hostmetrics is not None:
            self.hostmetrics.shutdown()
        if self._self_tracer is not None and self._self_meter is not None:
            self._self_tracer.shutdown()
            self._self_meter.shutdown()
        _logger.info("trm-otel stopped")

    def _reload(self) -> None:
        """SIGHUP: re-read the rule files and the token file; what is bad is logged and the current one stays."""
        if self.alerting is not None:
            try:
                self.alerting.reload()
                outcome = "ok"
            except Exception as err:  # noqa: BLE001 - ConfigError or unreadable file: keep running
                _logger.error("rule reload refused, keeping the current rules:\n%s", err)
                outcome = "failed"
            self._audit_reload("rules.reload", "rule_files", outcome)
        if self.config.auth.token_file is not None:
            try:
                count = self.authenticator.replace(self.config.auth.all_tokens())
                _logger.info("token file reloaded: %d tokens", count)  # names and counts only, never a token
                outcome = "ok"
            except ConfigError as err:
                _logger.error("token reload refused, keeping the current tokens:\n%s", err)
                outcome = "failed"
            self._audit_reload("tokens.reload", "auth.token_file", outcome)

    def _audit_reload(self, action: str, target: str, outcome: str) -> None:
        if self.audit is not None:
            self.audit.record(AuditEntry(time.time(), "SIGHUP", DEFAULT_TENANT, action, target, outcome))

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self._reload)
        try:
            await self.start()
            await stop.wait()
            _logger.info("signal received: draining and stopping")
        finally:
            await self.stop()
