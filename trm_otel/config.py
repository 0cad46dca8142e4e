"""Typed configuration, validated once at start-up.

    >>> LatencyProcessorConfig.model_validate({"window": "10s", "history": "1h"}).window_s
    10.0
    >>> config = parse_config({"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}}})
    >>> config.grpc_endpoint, config.http_endpoint
    ('127.0.0.1:4317', None)
    >>> sorted(config.pipelines())
    ['logs', 'metrics', 'traces']

The daemon's file has the OpenTelemetry Collector's shape (``receivers``,
``processors``, ``exporters``, ``service.pipelines`` of component ids
``type`` or ``type/name``) plus trm-otel's own ``storage``, ``api`` and
``insecure``, so people who run Collectors read it without a manual.

Durations are written the way Collector and Prometheus users write them
(``500ms``, ``10s``, ``5m``, ``1h``, ``7d``); a bare number is seconds. Every
model forbids unknown keys so a typo fails at load with its key path instead
of silently running on defaults, and :func:`load_config` reports every
problem of a file at once, each as ``file:line:col: key.path: message``.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from trm_otel.alerting.config import AlertingConfig
from trm_otel.api.auth import AuthConfig
from trm_otel.api.hardening import RateLimitSettings
from trm_otel.dashboards.errors import DashboardError
from trm_otel.dashboards.service import DashboardsConfig
from trm_otel.config_source import Positions, expand_env, located, read_yaml
from trm_otel.config_types import Duration, StrictModel, parse_duration
from trm_otel.errors import ConfigError
from trm_otel.slo import SloPolicy, SloTarget, slo_policy
from trm_otel.tls import TlsSettings

__all__ = [
    "ApiConfig",
    "DaemonConfig",
    "DebugExporterConfig",
    "Duration",
    "GrpcServerConfig",
    "HOSTMETRICS_SCRAPERS",
    "HostMetricsReceiverConfig",
    "HttpServerConfig",
    "LatencyProcessorConfig",
    "LogsTelemetryConfig",
    "OtlpExporterConfig",
    "OtlpProtocols",
    "OtlpReceiverConfig",
    "PipelineConfig",
    "QueueConfig",
    "RetentionConfig",
    "RetryConfig",
    "SendingQueueConfig",
    "PIPELINE_SIGNALS",
    "ServiceConfig",
    "Signal",
    "StorageConfig",
    "TelemetryConfig",
    "check_config",
    "component_type",
    "host_port",
    "latency_processor_config",
    "load_config",
    "parse_config",
    "parse_duration",
]

Loc = tuple[int | str, ...]  # a location in the input, as pydantic reports it

_SERIES_LABELS = ("service.name", "span.name", "span.kind", "status.code", "otel.metric.overflow")
_MAX_DIMENSIONS = 8


class DimensionConfig(BaseModel):
    """One ``processors.latency.dimensions`` entry, as the Collector's spanmetrics connector writes it.

    ``name`` is looked up in the span's attributes, then its resource's;
    without a value there, ``default`` is used, and without a default the
    label is left out of the series.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    default: str | None = Field(default=None, max_length=256)

    @field_validator("name")
    @classmethod
    def _not_a_series_label(cls, name: str) -> str:
        if name in _SERIES_LABELS:
            raise ValueError(f"{name!r} is already a label of every span series ({', '.join(_SERIES_LABELS[:4])})")
        return name


class ExemplarsConfig(BaseModel):
    """``processors.latency.exemplars``: spans kept per series and window (0 turns a kind off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slowest: int = Field(default=3, ge=0, le=10)
    sampled: int = Field(default=3, ge=0, le=10)


class LatencyProcessorConfig(BaseModel):
    """``processors.latency``: how spans become per-window latency views.

    ``window`` is the aggregation window (views are merges of windows);
    ``history`` is how much of it stays in memory for ``latency()``,
    ``bottlenecks()`` and ``trends()``; ``cardinality_limit`` caps the series
    per service before the overflow series takes the rest; ``buffer_size``
    bounds the spans waiting for the next aggregation (beyond it spans are
    dropped and counted, never blocking the application). ``dimensions``
    add series labels from span (else resource) attributes, like the
    Collector's spanmetrics connector (``[{name: http.route}, {name:
    enduser.id, default: anonymous}]``; at most 8, each counted against
    ``cardinality_limit``); ``exemplars`` bounds the exemplar spans kept
    per series and window.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Duration = 10.0
    history: Duration = 3600.0
    cardinality_limit: int = Field(default=2000, ge=1)
    buffer_size: int = Field(default=20_000, ge=16)
    slo: SloPolicy = SloPolicy()
    dimensions: tuple[DimensionConfig, ...] = Field(default=(), max_length=_MAX_DIMENSIONS)
    exemplars: ExemplarsConfig = ExemplarsConfig()

    @property
    def window_s(self) -> float:
        return self.window

    @model_validator(mode="after")
    def _history_holds_a_window(self) -> LatencyProcessorConfig:
        if self.history < self.window:
            raise ValueError("history must be at least one window")
        return self

    @field_validator("dimensions")
    @classmethod
    def _dimensions_unique(cls, dimensions: tuple[DimensionConfig, ...]) -> tuple[DimensionConfig, ...]:
        names = [d.name for d in dimensions]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"dimension {repeated[0]!r} is listed more than once")
        return dimensions


def latency_processor_config(key_path: str = "processors.latency", **values: Any) -> LatencyProcessorConfig:
    """Build and validate the latency processor config, errors naming ``key_path``.

    ``slo`` may be given in any form :func:`trm_otel.slo.slo_policy` accepts.
    """
    values = {k: v for k, v in values.items() if v is not None}
    if "slo" in values and not isinstance(values["slo"], SloPolicy):
        values["slo"] = slo_policy(values["slo"], key_path=f"{key_path}.slo" if key_path else "slo")
    try:
        return LatencyProcessorConfig.model_validate(values)
    except ValidationError as err:
        raise ConfigError.from_validation_error(err, key_path) from None


# --- addresses -----------------------------------------------------------------


def host_port(endpoint: str) -> tuple[str, int]:
    """``("127.0.0.1", 4317)`` from ``"127.0.0.1:4317"``; ``"[::1]:4317"`` gives ``("::1", 4317)``.

    Raises ``ValueError`` saying what is wrong with the text, so a validator
    can attach the key path. Port 0 is allowed: it asks the OS for a free
    port, which is what tests want.
    """
    if not isinstance(endpoint, str):
        raise ValueError(f"not host:port: {endpoint!r}")
    if "://" in endpoint:
        raise ValueError(f"not host:port: {endpoint!r} (leave out the scheme)")
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit():
        raise ValueError(f"not host:port: {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"not host:port: {endpoint!r} (not an IPv6 address in the brackets)") from None
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"not host:port: {endpoint!r} (write an IPv6 address in brackets: [::1]:4317)")
    elif not host:
        raise ValueError(f"not host:port: {endpoint!r} (give a host, e.g. 127.0.0.1{endpoint})")
    elif not _HOST.match(host):
        raise ValueError(f"not host:port: {endpoint!r}")
    if int(port) > 65535:
        raise ValueError(f"not host:port: {endpoint!r} (port must be 0..65535)")
    return host, int(port)


_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _listen_endpoint(value: Any) -> str:
    host_port(value)
    return str(value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A name other than localhost may resolve anywhere: treat it as exposed.
        return False


ListenEndpoint = Annotated[str, BeforeValidator(_listen_endpoint)]


def _exporter_endpoint(value: Any) -> str:
    """``host:port`` or an ``http://`` / ``https://`` URL, the forms OTLP exporters take."""
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"not host:port or an http(s) URL: {value!r} (port must be 0..65535)") from None
        if parts.scheme in ("http", "https") and parts.hostname:
            return value
        raise ValueError(f"not host:port or an http(s) URL: {value!r}")
    try:
        host_port(value)
    except ValueError:
        raise ValueError(f"not host:port or an http(s) URL: {value!r}") from None
    return str(value)


ExporterEndpoint = Annotated[str, BeforeValidator(_exporter_endpoint)]


# --- receivers -----------------------------------------------------------------


_Model = StrictModel


class _ServerConfig(_Model):
    """A server section: its ``endpoint`` split for binding, and optional TLS (:mod:`trm_otel.tls`)."""

    endpoint: str
    tls: TlsSettings | None = None

    @property
    def host(self) -> str:
        return host_port(self.endpoint)[0]

    @property
    def port(self) -> int:
        return host_port(self.endpoint)[1]


class GrpcServerConfig(_ServerConfig):
    """``protocols.grpc``: where OTLP/gRPC listens and the largest message it takes.

    4 MiB is gRPC's own default and the Collector's; bigger batches are
    refused with ``RESOURCE_EXHAUSTED`` so the client splits them.
    """

    endpoint: ListenEndpoint = "127.0.0.1:4317"
    max_recv_msg_size_mib: int = Field(default=4, gt=0)

    @property
    def max_recv_msg_size_bytes(self) -> int:
        return self.max_recv_msg_size_mib * 1024 * 1024


class HttpServerConfig(_ServerConfig):
    """``protocols.http``: where OTLP/HTTP listens and the largest body it takes.

    The limit applies after decompression (a gzip bomb is as large as what
    it inflates to); 20 MiB is the Collector's default.
    """

    endpoint: ListenEndpoint = "127.0.0.1:4318"
    max_request_body_size_mib: int = Field(default=20, gt=0)

    @property
    def max_request_body_size_bytes(self) -> int:
        return self.max_request_body_size_mib * 1024 * 1024


class OtlpProtocols(_Model):
    """Which OTLP transports are on; ``None`` means off.

    Collector rules: naming one protocol turns on only that one (``grpc:``
    with no value is on with defaults); naming neither (``protocols: {}``,
    or no ``protocols`` at all) turns both on, so the short config still
    receives from every SDK.
    """

    grpc: GrpcServerConfig | None = None
    http: HttpServerConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _named_protocols_are_on(cls, data: Any) -> Any:
        return _protocols_on(data)


def _protocols_on(data: Any) -> Any:
    """``protocols`` as given, with the protocols that are on spelled out (``{}`` = defaults)."""
    if data is None:
        return {"grpc": {}, "http": {}}
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    named = [name for name in ("grpc", "http") if name in out]
    if not named:
        out.update(grpc={}, http={})
    for name in named:
        if out[name] is None:
            out[name] = {}
    return out


class OtlpReceiverConfig(_Model):
    """``receivers.otlp`` (and ``otlp/<name>``): OTLP over gRPC and HTTP."""

    protocols: OtlpProtocols = Field(default_factory=lambda: OtlpProtocols.model_validate({}))


#: The Collector's hostmetrics scraper names that trm-otel implements.
HOSTMETRICS_SCRAPERS = ("cpu", "load", "memory", "paging", "disk", "filesystem", "network", "processes", "process")


class HostMetricsReceiverConfig(_Model):
    """``receivers.hostmetrics``: this host's metrics, as the Collector's receiver scrapes them.

    ``scrapers`` names what to collect (``cpu: {}``, ``memory: {}``, ...);
    left out, all of them. Readings become series under their semantic
    convention names, queryable like any received metric.
    """

    collection_interval: Duration = 30.0
    scrapers: dict[str, None] | None = None

    @field_validator("scrapers", mode="before")
    @classmethod
    def _known_scrapers(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ValueError("expected a mapping of scraper names (e.g. {cpu: {}, memory: {}})")
        problems = []
        for name, settings in value.items():
            if name not in HOSTMETRICS_SCRAPERS:
                close = _closest(str(name), HOSTMETRICS_SCRAPERS)
                hint = f"did you mean {close!r}?" if close else f"known: {', '.join(HOSTMETRICS_SCRAPERS)}"
                problems.append(f"unknown scraper {name!r} ({hint})")
            elif settings not in (None, {}):
                problems.append(f"scraper {name!r} takes no settings")
        if problems:
            raise ValueError("; ".join(problems))
        return dict.fromkeys(value)

    def enabled_scrapers(self) -> tuple[str, ...]:
        return HOSTMETRICS_SCRAPERS if self.scrapers is None else tuple(self.scrapers)


# --- exporters -----------------------------------------------------------------

Signal = Literal["traces", "metrics", "logs", "spanmetrics"]


class SendingQueueConfig(_Model):
    """Requests waiting to be sent; when full, the oldest work is dropped and counted."""

    enabled: bool = True
    queue_size: int = Field(default=1000, ge=1)


class RetryConfig(_Model):
    """Exponential back-off for retryable failures (the OTLP spec's list).

    ``max_elapsed_time`` bounds how long one request is retried before it is
    dropped, so an unreachable backend cannot grow the queue forever.
    """

    enabled: bool = True
    initial_interval: Duration = 1.0
    max_interval: Duration = 30.0
    max_elapsed_time: Duration = 300.0

    @model_validator(mode="after")
    def _intervals_in_order(self) -> RetryConfig:
        if self.initial_interval > self.max_interval:
            raise ValueError(
                f"initial_interval ({self.initial_interval:g}s) must not exceed max_interval ({self.max_interval:g}s)"
            )
        return self


class OtlpExporterConfig(_Model):
    """``exporters.otlp`` (and ``otlp/<name>``): forward to any OTLP backend.

    ``insecure`` left unset follows the endpoint as ``configure()`` does: an
    ``https://`` URL is TLS, a bare ``host:port`` or ``http://`` URL is
    plaintext. ``signals`` filters what is forwarded: the received ``traces``,
    ``metrics`` and ``logs`` of the pipelines naming this exporter, and the
    aggregated ``spanmetrics``; by default all of them (see
    :meth:`DaemonConfig.exporter_signals`). ``compression`` defaults to gzip,
    as in the Collector.
    """

    endpoint: ExporterEndpoint
    protocol: Literal["grpc", "http/protobuf"] = "grpc"
    headers: dict[str, str] = Field(default_factory=dict)
    insecure: bool | None = None
    timeout: Duration = 10.0
    compression: Literal["none", "gzip"] = "gzip"
    sending_queue: SendingQueueConfig = Field(default_factory=SendingQueueConfig)
    retry_on_failure: RetryConfig = Field(default_factory=RetryConfig)
    signals: tuple[Signal, ...] = ("traces", "metrics", "logs", "spanmetrics")

    @field_validator("insecure")
    @classmethod
    def _agrees_with_the_scheme(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        endpoint = info.data.get("endpoint", "")
        if value is True and endpoint.startswith("https://"):
            raise ValueError("true contradicts the https:// endpoint (leave insecure out, or use http://)")
        if value is False and endpoint.startswith("http://"):
            raise ValueError("false contradicts the http:// endpoint (leave insecure out, or use https://)")
        return value

    @field_validator("signals")
    @classmethod
    def _some_signal(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("list at least one signal, or leave signals out for the default")
        return value

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS (see ``insecure``)."""
        if self.insecure is not None:
            return not self.insecure
        return self.endpoint.startswith("https://")

    @property
    def url(self) -> str:
        """The endpoint as a URL; a bare ``host:port`` gets the scheme ``tls`` implies."""
        if "://" in self.endpoint:
            return self.endpoint
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"


class DebugExporterConfig(_Model):
    """``exporters.debug`` (and ``debug/<name>``): log what passes, for trying pipelines out."""

    verbosity: Literal["basic", "normal", "detailed"] = "basic"


# --- storage, api, service -----------------------------------------------------


class RetentionConfig(_Model):
    """How long each resolution is kept: raw windows, 1-minute and 1-hour rollups."""

    raw: Duration = 24 * 3600.0
    one_minute: Duration = Field(default=7 * 86400.0, alias="1m")
    one_hour: Duration = Field(default=90 * 86400.0, alias="1h")


class StorageConfig(_Model):
    """``storage``: the data directory (relative paths are from the working directory).

    Closed windows are written every ``flush_interval``; a crash loses at
    most the open window, one grace window and one flush interval.
    """

    path: Path = Path("./trm-otel-data")
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    flush_interval: Duration = 10.0

    @field_validator("path", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value


class ApiConfig(_ServerConfig):
    """``api``: where the HTTP API and dashboards listen, and the limits every request meets.

    ``rate_limit`` is per caller (token, or client address without auth);
    ``null`` turns it off. See :mod:`trm_otel.api.hardening`.
    """

    endpoint: ListenEndpoint = "127.0.0.1:8080"
    max_request_body_size_mib: float = Field(default=4.0, gt=0)
    rate_limit: RateLimitSettings | None = Field(default_factory=RateLimitSettings)


class AuditConfig(_Model):
    """``audit``: how long the audit trail of changes and refused requests is kept."""

    retention: Duration = 90 * 86400.0


class PipelineConfig(_Model):
    """One ``service.pipelines`` entry: component ids, in order."""

    receivers: tuple[str, ...] = Field(default=(), validate_default=True)
    processors: tuple[str, ...] = ()
    exporters: tuple[str, ...] = ()

    @field_validator("receivers", "processors", "exporters", mode="before")
    @classmethod
    def _a_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            raise ValueError(f"expected a list of {info.field_name[:-1]} ids, e.g. [{value}]")
        if value is not None and not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list of {info.field_name[:-1]} ids")
        return () if value is None else value

    @field_validator("receivers")
    @classmethod
    def _fed_by_something(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a pipeline needs at least one receiver")
        return value


class LogsTelemetryConfig(_Model):
    """``service.telemetry.logs``: the daemon's own log level."""

    level: Literal["debug", "info", "warn", "warning", "error"] = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def python_level(self) -> int:
        """The :mod:`logging` level number."""
        return {"debug": logging.DEBUG, "info": logging.INFO, "error": logging.ERROR}.get(self.level, logging.WARNING)


class TelemetryConfig(_Model):
    """``service.telemetry``: how the daemon reports on itself."""

    logs: LogsTelemetryConfig = Field(default_factory=LogsTelemetryConfig)


class QueueConfig(_Model):
    """``service.queue``: how much received data may wait for processing.

    Beyond ``max_pending_items`` (spans, metric points and log records
    together) receivers answer with a retryable status (gRPC UNAVAILABLE,
    HTTP 503) instead of accepting: clients keep the data and memory stays
    bounded. About 200 bytes per pending span.
    """

    max_pending_items: int = Field(default=500_000, ge=1)


# --- component maps ------------------------------------------------------------

PIPELINE_SIGNALS = ("traces", "metrics", "logs")
_ID = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(?:/(\S+))?$")


def component_type(component_id: str) -> str:
    """``"otlp"`` from ``"otlp/upstream"``: the part that picks the factory."""
    return component_id.split("/", 1)[0]


def _closest(word: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _custom(loc: Loc, message: str, kind: str = "config") -> InitErrorDetails:
    # No context, so pydantic keeps the message text verbatim (braces too).
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)


def _details(err: ValidationError, prefix: Loc = ()) -> list[InitErrorDetails]:
    """Re-raisable copies of ``err``'s errors, located under ``prefix``.

    Type and message are kept, which is all :class:`ConfigError` reads.
    """
    return [
        InitErrorDetails(
            type=PydanticCustomError(item["type"], item["msg"]),
            loc=(*prefix, *item["loc"]),
            input=item.get("input"),
        )
        for item in err.errors(include_url=False)
    ]


def _component_map(
    kind: str, types: Mapping[str, type[BaseModel]], default: Callable[[], dict[str, Any]] | None = None
) -> WrapValidator:
    """Validate ``{id: settings}`` choosing each model by the id's type.

    Problems with an id are reported at the id itself, not as a mapping-key
    error. When the section mixes models, the model's name goes into the
    error location the way pydantic tags union members, so
    :meth:`ConfigError.from_validation_error` suggests keys of the right one.
    """
    tagged = len(set(types.values())) > 1

    def validate(value: Any, _handler: Any) -> dict[str, Any]:
        if value is None:
            return default() if default is not None else {}
        if not isinstance(value, Mapping):
            raise PydanticCustomError(
                "dict_type", f"expected a mapping of {kind} ids to their settings, got {type(value).__name__}"
            )
        out: dict[str, Any] = {}
        errors: list[InitErrorDetails] = []
        for cid, body in value.items():
            problem = _id_problem(cid, kind, types)
            if problem is not None:
                errors.append(_custom((cid if isinstance(cid, str) else str(cid),), problem, "component_id"))
                continue
            model = types[component_type(cid)]
            if isinstance(body, model):
                out[cid] = body
                continue
            try:
                out[cid] = model.model_validate({} if body is None else body)
            except ValidationError as err:
                errors.extend(_details(err, (cid, model.__name__) if tagged else (cid,)))
        if errors:
            raise ValidationError.from_exception_data(kind, errors)
        return out

    return WrapValidator(validate)


def _id_problem(cid: Any, kind: str, types: Mapping[str, Any]) -> str | None:
    match = _ID.match(cid) if isinstance(cid, str) else None
    if match is None:
        return f"invalid {kind} id {cid!r} (use 'type' or 'type/name')"
    if match.group(1) in types:
        return None
    close = _closest(match.group(1), types)
    hint = f"did you mean {close!r}?" if close else f"known: {', '.join(sorted(types))}"
    return f"unknown {kind} type {match.group(1)!r} ({hint})"


_RECEIVER_TYPES: dict[str, type[BaseModel]] = {"otlp": OtlpReceiverConfig, "hostmetrics": HostMetricsReceiverConfig}
_PROCESSOR_TYPES: dict[str, type[BaseModel]] = {"latency": LatencyProcessorConfig}
_EXPORTER_TYPES: dict[str, type[BaseModel]] = {"otlp": OtlpExporterConfig, "debug": DebugExporterConfig}
_PIPELINE_TYPES: dict[str, type[BaseModel]] = dict.fromkeys(PIPELINE_SIGNALS, PipelineConfig)


def _default_receivers() -> dict[str, Any]:
    return {"otlp": OtlpReceiverConfig()}


def _default_processors() -> dict[str, Any]:
    return {"latency": LatencyProcessorConfig()}


class ServiceConfig(_Model):
    """``service``: the pipelines and the daemon's own telemetry.

    ``pipelines`` left out wires every receiver through every latency
    processor for traces, metrics and logs (see :meth:`DaemonConfig.pipelines`).
    """

    pipelines: Annotated[dict[str, PipelineConfig], _component_map("pipeline", _PIPELINE_TYPES)] | None = None
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)

    @field_validator("pipelines")
    @classmethod
    def _some_pipeline(cls, value: dict[str, PipelineConfig] | None) -> dict[str, PipelineConfig] | None:
        if value is not None and not value:
            raise ValueError("no pipelines (leave pipelines out to wire every receiver through the latency processor)")
        return value


# --- the whole file ------------------------------------------------------------


class DaemonConfig(_Model):
    """Everything ``trm-otel serve`` runs on; ``DaemonConfig()`` is the no-file default.

    Validation checks each value, then the whole: pipelines name only
    configured components, no two listeners share an address, no listener
    leaves loopback without ``auth.tokens`` (or an explicit ``insecure:
    true``), and the alerting section names only receivers, intervals and
    policies it defines. All of it is reported in one error.
    """

    receivers: Annotated[
        dict[str, OtlpReceiverConfig | HostMetricsReceiverConfig],
        _component_map("receiver", _RECEIVER_TYPES, _default_receivers),
    ] = Field(default_factory=_default_receivers)
    processors: Annotated[
        dict[str, LatencyProcessorConfig], _component_map("processor", _PROCESSOR_TYPES, _default_processors)
    ] = Field(default_factory=_default_processors)
    exporters: Annotated[
        dict[str, OtlpExporterConfig | DebugExporterConfig], _component_map("exporter", _EXPORTER_TYPES)
    ] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    insecure: bool = False
    auth: AuthConfig = Field(default_factory=AuthConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    dashboards: DashboardsConfig = Field(default_factory=DashboardsConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @model_validator(mode="wrap")
    @classmethod
    def _check_the_whole(cls, data: Any, handler: Callable[[Any], DaemonConfig]) -> DaemonConfig:
        # Cross-section checks read the input itself, so they run (and are
        # reported) even when some section failed validation.
        errors: list[InitErrorDetails] = []
        config: DaemonConfig | None = None
        try:
            config = handler(data)
        except ValidationError as err:
            errors.extend(_details(err))
        if isinstance(data, Mapping):
            errors.extend(_cross_section_errors(data))
        if errors or config is None:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return config

    # --- what the daemon reads ---

    def pipelines(self) -> dict[str, PipelineConfig]:
        """The pipelines to build: ``service.pipelines``, or the default wiring.

        The default is one pipeline per signal (traces, metrics, logs) from
        every receiver through every latency processor into no exporters
        (the daemon's own storage and views consume every pipeline).
        """
        if self.service.pipelines is not None:
            return dict(self.service.pipelines)
        if not self.receivers:
            return {}
        latency = tuple(pid for pid in self.processors if component_type(pid) == "latency")
        pipelines = {}
        for signal in PIPELINE_SIGNALS:
            # hostmetrics produces metrics only, as in the Collector
            receivers = tuple(r for r in self.receivers if signal == "metrics" or component_type(r) != "hostmetrics")
            if receivers:
                pipelines[signal] = PipelineConfig(receivers=receivers, processors=latency)
        return pipelines

    def latency(self) -> LatencyProcessorConfig:
        """The first latency processor's settings, or the defaults when there is none."""
        for pid, processor in self.processors.items():
            if component_type(pid) == "latency":
                return processor
        return LatencyProcessorConfig()

    def receivers_in_use(self) -> dict[str, OtlpReceiverConfig]:
        """OTLP receivers some pipeline names, in config order: the ones to start (as in the Collector)."""
        used = {rid for pipeline in self.pipelines().values() for rid in pipeline.receivers}
        return {
            rid: receiver
            for rid, receiver in self.receivers.items()
            if rid in used and isinstance(receiver, OtlpReceiverConfig)
        }

    def hostmetrics(self) -> HostMetricsReceiverConfig | None:
        """The first hostmetrics receiver a pipeline names, if any."""
        used = {rid for pipeline in self.pipelines().values() for rid in pipeline.receivers}
        return next(
            (r for rid, r in self.receivers.items() if rid in used and isinstance(r, HostMetricsReceiverConfig)), None
        )

    def grpc_settings(self) -> GrpcServerConfig | None:
        """OTLP/gRPC settings of the first receiver in use that has gRPC on."""
        return next((r.protocols.grpc for r in self.receivers_in_use().values() if r.protocols.grpc), None)

    def http_settings(self) -> HttpServerConfig | None:
        """OTLP/HTTP settings of the first receiver in use that has HTTP on."""
        return next((r.protocols.http for r in self.receivers_in_use().values() if r.protocols.http), None)

    @property
    def grpc_endpoint(self) -> str | None:
        """``grpc_settings().endpoint``, or ``None`` when no receiver in use has gRPC on."""
        settings = self.grpc_settings()
        return settings.endpoint if settings is not None else None

    @property
    def http_endpoint(self) -> str | None:
        """``http_settings().endpoint``, or ``None`` when no receiver in use has HTTP on."""
        settings = self.http_settings()
        return settings.endpoint if settings is not None else None

    def endpoints(self) -> dict[str, str]:
        """Every address the daemon binds, by key path: for the start-up log line."""
        out: dict[str, str] = {}
        for rid, receiver in self.receivers_in_use().items():
            for name in ("grpc", "http"):
                server = getattr(receiver.protocols, name)
                if server is not None:
                    out[f"receivers.{rid}.protocols.{name}.endpoint"] = server.endpoint
        out["api.endpoint"] = self.api.endpoint
        return out

    def exporter_signals(self, exporter_id: str) -> frozenset[str]:
        """What ``exporter_id`` gets: the signals of the pipelines naming it, plus spanmetrics.

        An otlp exporter's ``signals`` filters that; an exporter no pipeline
        names gets nothing (it is not started, as in the Collector), and a
        debug exporter shows only what its pipelines carry.
        """
        received = {
            component_type(pid) for pid, pipeline in self.pipelines().items() if exporter_id in pipeline.exporters
        }
        exporter = self.exporters[exporter_id]
        if not received or not isinstance(exporter, OtlpExporterConfig):
            return frozenset(received)
        return frozenset((received | {"spanmetrics"}) & set(exporter.signals))


# --- cross-section checks on the (env-expanded) input ----------------------------
#
# These read the input rather than the validated model so that they run even
# when a section is invalid; each piece is validated on its own and skipped
# when it does not validate (its own problem is already reported).

_SECTIONS: tuple[tuple[str, str, Mapping[str, type[BaseModel]], Callable[[], dict[str, Any]] | None], ...] = (
    ("receivers", "receiver", _RECEIVER_TYPES, _default_receivers),
    ("processors", "processor", _PROCESSOR_TYPES, _default_processors),
    ("exporters", "exporter", _EXPORTER_TYPES, None),
)


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    if isinstance(obj, BaseModel):
        return getattr(obj, key, None)
    return None


def _cross_section_errors(data: Mapping[str, Any]) -> list[InitErrorDetails]:
    problems = [*_reference_problems(data), *_listener_problems(data), *_alerting_problems(data)]
    return [_custom(loc, message) for loc, message in problems]


_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _alerting_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Names the alerting section uses but does not define (receivers, intervals, policies)."""
    section = _get(data, "alerting")
    if section is None:
        return []
    try:
        alerting = AlertingConfig.model_validate(section)
    except ValidationError:
        return []  # reported by the section's own validation
    out: list[tuple[Loc, str]] = []
    for path, message in alerting.reference_problems():
        loc: Loc = ("alerting", *(int(i) if i else key for i, key in _PATH_PART.findall(path)))
        out.append((loc, message))
    return out


def _configured_ids(data: Mapping[str, Any]) -> dict[str, list[str] | None]:
    ids: dict[str, list[str] | None] = {}
    for section, _, _, default in _SECTIONS:
        value = _get(data, section)
        if value is None:
            value = default() if default is not None else {}
        ids[section] = [k for k in value if isinstance(k, str)] if isinstance(value, Mapping) else None
    return ids


def _reference_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    pipelines = _get(_get(data, "service"), "pipelines")
    if not isinstance(pipelines, Mapping):
        return []
    ids = _configured_ids(data)
    problems: list[tuple[Loc, str]] = []
    for pid, pipeline in pipelines.items():
        if not isinstance(pid, str):
            continue
        for section, kind, types, _ in _SECTIONS:
            names = _get(pipeline, section)
            known = ids[section]
            if not isinstance(names, (list, tuple)):
                continue
            seen: set[str] = set()
            for index, name in enumerate(names):
                if not isinstance(name, str):
                    continue
                loc = ("service", "pipelines", pid, section, index)
                if name in seen:
                    problems.append((loc, f"{kind} {name!r} is listed twice"))
                elif known is not None and name not in known:
                    # Any key counts as configured (no cascade from a bad id); only valid ones are offered.
                    offered = [k for k in known if _id_problem(k, kind, types) is None]
                    problems.append((loc, _unknown_reference(kind, section, name, offered)))
                seen.add(name)
    return problems


def _unknown_reference(kind: str, section: str, name: str, known: list[str]) -> str:
    if not known:
        return f"unknown {kind} {name!r} (no {section} are configured)"
    close = _closest(name, known)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"unknown {kind} {name!r} (configured: {', '.join(known)}{hint})"


_Listener = tuple[Loc, str, str, bool]  # loc, endpoint, owner, written in the file


def _listeners(data: Mapping[str, Any]) -> list[_Listener]:
    found: list[_Listener] = []
    receivers = _get(data, "receivers")
    if receivers is None:
        receivers = _default_receivers()
    if isinstance(receivers, Mapping):
        for rid, body in receivers.items():
            if _id_problem(rid, "receiver", _RECEIVER_TYPES) is not None or component_type(rid) != "otlp":
                continue
            if body is not None and not isinstance(body, (Mapping, BaseModel)):
                continue
            protocols = _get(body, "protocols")
            if not isinstance(protocols, OtlpProtocols):
                protocols = _protocols_on(protocols)  # each server on its own: one bad one hides no other
            for name, model in (("grpc", GrpcServerConfig), ("http", HttpServerConfig)):
                settings = _get(protocols, name)
                if settings is None:
                    continue  # off
                try:
                    server = model.model_validate(settings)
                except ValidationError:
                    continue
                written = isinstance(body, BaseModel) or _get(settings, "endpoint") is not None
                loc = ("receivers", rid, "protocols", name, "endpoint")
                found.append((loc, server.endpoint, f"receiver {rid!r} ({name})", written))
    try:
        api = ApiConfig.model_validate(_get(data, "api") or {})
    except ValidationError:
        return found
    found.append((("api", "endpoint"), api.endpoint, "the api", _get(_get(data, "api"), "endpoint") is not None))
    return found


def _listener_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    listeners = _listeners(data)
    try:
        insecure: bool | None = TypeAdapter(bool).validate_python(_get(data, "insecure") or False)
    except ValidationError:
        insecure = None  # reported as a bad value; do not guess
    auth = _get(data, "auth")
    has_tokens = bool(_get(auth, "tokens")) or _get(auth, "token_file") is not None
    for loc, endpoint, _, _ in listeners:
        if insecure is False and not has_tokens and not _is_loopback(host_port(endpoint)[0]):
            problems.append(
                (
                    loc,
                    f"{endpoint!r} is not a loopback address and no auth.tokens are configured; "
                    "add auth.tokens, or set 'insecure: true' at the top level to serve it without auth",
                )
            )
    for later, (loc, endpoint, owner, written) in enumerate(listeners):
        for earlier_loc, earlier_endpoint, earlier_owner, earlier_written in listeners[:later]:
            if _same_address(endpoint, earlier_endpoint):
                if written or not earlier_written:
                    problems.append((loc, f"{endpoint!r} is already used by {earlier_owner}"))
                else:
                    problems.append((earlier_loc, f"{earlier_endpoint!r} is already used by {owner}"))
                break
    return problems


_WILDCARDS = {"0.0.0.0", "::"}


def _same_address(a: str, b: str) -> bool:
    (host_a, port_a), (host_b, port_b) = host_port(a), host_port(b)
    if port_a != port_b or port_a == 0:
        return False
    return host_a == host_b or host_a in _WILDCARDS or host_b in _WILDCARDS


def _rendered(problems: list[tuple[Loc, str]]) -> list[tuple[str, str]]:
    """Key-path text for locations, through the one translation in :mod:`trm_otel.errors`."""
    if not problems:
        return []
    err = ValidationError.from_exception_data(DaemonConfig.__name__, [_custom(loc, msg) for loc, msg in problems])
    return list(ConfigError.from_validation_error(err, "", DaemonConfig).problems)


def _parse(data: Any, source: str, positions: Positions | None, found: list[tuple[Loc, str]]) -> DaemonConfig:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        where = f"{source}:1:1" if positions is not None else source
        sections = "receivers, processors, exporters, storage, api, auth, audit, alerting, dashboards, service"
        raise ConfigError([(where, f"the config must be a mapping of sections ({sections}), got {type(data).__name__}")])
    env_problems: list[tuple[Loc, str]] = []
    expanded = expand_env(data, (), env_problems)
    structural: list[tuple[str, str]] = []
    ignored: list[str] = []
    config: DaemonConfig | None = None
    try:
        config = DaemonConfig.model_validate(expanded)
    except ValidationError as err:
        structural = _slo_hints(ConfigError.from_validation_error(err, "", DaemonConfig).problems)
        # A missing variable inside an unknown key or component is noise.
        ignored = [path for path, _ in _rendered([(i["loc"], "") for i in err.errors() if i["type"] in _IGNORED_BELOW])]
    env = [p for p in _rendered(env_problems) if not _under(p[0], ignored)]
    # A value whose variable is missing fails validation too: say it once.
    problems = [*_rendered(found), *env, *(p for p in structural if not _under(p[0], [path for path, _ in env]))]
    if problems or config is None:
        raise ConfigError(located(problems, source, positions))
    return config


_IGNORED_BELOW = ("extra_forbidden", "component_id")


def _under(path: str, parents: Iterable[str]) -> bool:
    return any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in parents)


_FLAT_SLO = re.compile(rf"^processors\.(.+)\.slo\.({'|'.join(SloTarget.model_fields)})$")


def _slo_hints(problems: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``slo: {p95_ms: 300}`` means ``slo: {default: {p95_ms: 300}}``; say so, as ``configure()`` does."""
    out = []
    for path, message in problems:
        match = _FLAT_SLO.match(path)
        if match and message == "unknown key":
            message = f"unknown key (did you mean 'default.{match.group(2)}'?)"
        out.append((path, message))
    return out


# --- public entry points -------------------------------------------------------


def parse_config(mapping: Mapping[str, Any] | None, *, source: str = "<config>") -> DaemonConfig:
    """Validate an already-loaded config (``${env:VAR}`` expanded first).

    Raises :class:`ConfigError` with every problem, each located as
    ``source: key.path`` (``source=""`` leaves the bare key path).
    """
    return _parse(mapping, source, None, [])


def load_config(path: str | Path | None = None, *, data_dir: str | Path | None = None) -> DaemonConfig:
    """Read, expand and validate the daemon's YAML file; ``None`` is all defaults.

    ``data_dir`` (the ``--data-dir`` flag) overrides ``storage.path``.
    Raises :class:`ConfigError` with every problem located as
    ``file:line:col: key.path``, in file order; a YAML syntax error is one
    problem at its line and column; an empty file means all defaults.
    """
    if path is None:
        config = DaemonConfig()
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError([(source, "cannot read the config file: not UTF-8 text")]) from None
        except OSError as err:
            raise ConfigError([(source, f"cannot read the config file: {err.strerror or err}")]) from None
        data, positions, duplicates = read_yaml(text, source)
        config = _parse(data, source, positions, duplicates)
        config = _with_rule_files_from(config, Path(path).resolve().parent)
        config.auth.all_tokens()  # a token file that cannot be read or parsed stops start-up here
    if data_dir is not None:
        storage = config.storage.model_copy(update={"path": Path(data_dir)})
        config = config.model_copy(update={"storage": storage})
    return config


def _with_rule_files_from(config: DaemonConfig, base_dir: Path) -> DaemonConfig:
    """Rule files and provisioned dashboards are relative to the config file (as Prometheus' rule files);
    they are read now, so a bad rule or dashboard stops start-up with its location."""
    from trm_otel.alerting.rules import load_rule_files, reference_problems

    from trm_otel.dashboards.service import read_provisioned

    alerting = config.alerting
    if alerting.rule_files:
        resolved = tuple(str(base_dir / f) if not Path(f).is_absolute() else f for f in alerting.rule_files)
        rules = load_rule_files(resolved)
        problems = reference_problems(rules, alerting.receiver_names())
        if problems:
            raise ConfigError(problems)
        config = config.model_copy(update={"alerting": alerting.model_copy(update={"rule_files": resolved})})
    provision = config.dashboards.provision
    if provision:
        paths = tuple(str(base_dir / p) if not Path(p).is_absolute() else p for p in provision)
        try:
            read_provisioned(paths)
        except DashboardError as err:
            raise ConfigError(err.problems) from None
        dashboards = config.dashboards.model_copy(update={"provision": paths})
        config = config.model_copy(update={"dashboards": dashboards})
    return config


def check_config(path: str | Path) -> list[str]:
    """The problems of a config file, one line each; ``[]`` when it is valid."""
    try:
        load_config(path)
    except ConfigError as err:
        return [f"{where}: {message}" if where else message for where, message in err.problems]
    return []
