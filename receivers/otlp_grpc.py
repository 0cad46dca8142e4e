"""OTLP/gRPC receiver: the Trace, Metrics and Logs services on a ``grpc.aio`` server.

    >>> server, port = build_grpc_server(pipeline, endpoint="127.0.0.1:4317", max_age_s=86400)  # doctest: +SKIP
    >>> await server.start()                                                                    # doctest: +SKIP

The three servicers (subclasses of the generated ``*ServiceServicer``
classes) hold the transport-neutral part of an export: parse, decode or
count, offer to the :class:`~trm_otel.pipeline.Consumer`, answer. Their
:meth:`~TraceReceiver.export` raises :class:`~trm_otel.receivers.otlp_errors.OtlpError`;
the gRPC ``Export`` turns that into a status, and the OTLP/HTTP app calls
the same ``export`` (as the Collector's HTTP handler calls its gRPC
receiver), so both transports accept and reject exactly the same data.

Requests reach ``Export`` as raw bytes (the handlers are registered
without a deserializer): a body that is not protobuf must be
``INVALID_ARGUMENT``, which grpc's own deserialization failure is not.
Oversized messages never get that far: grpc's
``max_receive_message_length`` answers ``RESOURCE_EXHAUSTED`` itself.

Traces are decoded into a ``SpanBatch`` here (bad spans answered with
``partial_success``); metrics and logs are offered as the parsed request
with their item count, and their processing validates them.
"""

from __future__ import annotations

import abc
import logging
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from trm_otel.api.auth import Authenticator
from trm_otel.pipeline import DEFAULT_TENANT, Consumer
from trm_otel.receivers.otlp_errors import (
    RETRY_DELAY_S,
    InternalError,
    InvalidData,
    OtlpError,
    Overloaded,
    Unauthenticated,
    grpc_trailers,
)
from trm_otel.receivers.otlp_slim import SlimTraceRequest
from trm_otel.receivers.otlp_traces import decode_traces, require_upb
from trm_otel.tls import ServerTls

__all__ = [
    "MAX_CONCURRENT_STREAMS",
    "LogsReceiver",
    "MetricsReceiver",
    "TraceReceiver",
    "build_grpc_server",
    "count_data_points",
    "count_log_records",
    "otlp_services",
]

_logger = logging.getLogger(__name__)

_GRPC_CODES = {status.value[0]: status for status in grpc.StatusCode}

#: Requests one client connection may have in flight (HTTP/2 ``SETTINGS_MAX_CONCURRENT_STREAMS``).
#: grpc reads each request whole before the handler runs, so when senders
#: outpace the event loop, requests wait *in the daemon's memory*: 4500 in
#: flight held 270 MiB in the overload benchmark. With a limit, further
#: calls wait in the client (HTTP/2 flow control); OTLP exporters keep far
#: fewer in flight (the Collector: 10 per exporter, the SDKs: 1).
MAX_CONCURRENT_STREAMS = 100


class _Receiver(abc.ABC):
    """What the three services share: parsing, refusing when the consumer is full, the gRPC adapter."""

    request_class: type[Message]
    json_class: type[Message] | None = None  # what OTLP/JSON parses into, when not request_class
    response_class: type[Message]
    service_name: str

    def __init__(
        self, consumer: Consumer, *, retry_delay_s: float = RETRY_DELAY_S, authenticator: Authenticator | None = None
    ) -> None:
        self.consumer = consumer
        self.retry_delay_s = retry_delay_s
        self.authenticator = authenticator if authenticator is not None else Authenticator()

    def tenant_of(self, authorization: str | None) -> str:
        """The sender's tenant from its ``authorization`` value; :class:`Unauthenticated` if none fits."""
        principal = self.authenticator.principal(authorization)
        if principal is None:
            why = "missing bearer token" if not authorization else "invalid token"
            raise Unauthenticated(f"{why}: send 'authorization: Bearer <token>' (any role may send telemetry)")
        return principal.tenant

    def parse(self, data: bytes) -> Any:
        """The request in ``data`` (binary protobuf), or :class:`InvalidData`."""
        try:
            return self.request_class.FromString(data)
        except DecodeError as exc:
            why = str(exc).rsplit(": ", 1)[-1]  # upb's text repeats the type name before the cause
            name = (self.json_class or self.request_class).DESCRIPTOR.name
            raise InvalidData(f"body is not a valid protobuf {name}: {why}") from None

    @abc.abstractmethod
    def export(self, request: Any, tenant: str = DEFAULT_TENANT) -> Any:
        """Handle one parsed request of ``tenant``; returns the response or raises :class:`OtlpError`."""

    def _refused(self, what: str, count: int) -> Overloaded:
        return Overloaded(
            f"receiver queue is full, {count} {what} not accepted: retry later", retry_delay_s=self.retry_delay_s
        )

    async def Export(  # noqa: N802 - the generated servicer's name
        self, request: bytes | Any, context: grpc.aio.ServicerContext
    ) -> Any:
        """The gRPC method: ``export`` with its failures turned into status + details trailer.

        A failure that is not an :class:`OtlpError` is a bug: it is logged
        with its traceback and answered ``INTERNAL`` with the same Status
        trailer as every other failure (as the HTTP app answers 500), rather
        than grpc's bare ``UNKNOWN``.
        """
        try:
            authorization = next((v for k, v in context.invocation_metadata() or () if k == "authorization"), None)
            tenant = self.tenant_of(authorization if isinstance(authorization, str) else None)
            return self.export(self.parse(request) if isinstance(request, bytes) else request, tenant)
        except OtlpError as error:
            await context.abort(_GRPC_CODES[error.code], str(error), trailing_metadata=grpc_trailers(error))
        except Exception:
            _logger.exception("OTLP/gRPC %s: failed to handle the request", self.service_name)
            error = InternalError("internal error while handling the request")
            await context.abort(grpc.StatusCode.INTERNAL, str(error), trailing_metadata=grpc_trailers(error))

    def rpc_handler(self) -> grpc.GenericRpcHandler:
        """``Export`` registered to receive raw bytes (see the module docstring)."""
        method = grpc.unary_unary_rpc_method_handler(
            self.Export, request_deserializer=None, response_serializer=self.response_class.SerializeToString
        )
        return grpc.method_handlers_generic_handler(self.service_name, {"Export": method})


class TraceReceiver(_Receiver, trace_service_pb2_grpc.TraceServiceServicer):
    """TraceService: spans become a ``SpanBatch``; invalid spans are answered with partial success.

    ``max_age_s`` / ``max_future_s`` bound the accepted span end times
    (data older than the daemon keeps, or from clocks far off, is rejected).
    """

    request_class = SlimTraceRequest  # parses only what decoding reads; unknown fields are kept
    json_class = trace_service_pb2.ExportTraceServiceRequest
    response_class = trace_service_pb2.ExportTraceServiceResponse
    service_name = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name

    def __init__(
        self,
        consumer: Consumer,
        *,
        max_age_s: float,
        max_future_s: float = 300.0,
        retry_delay_s: float = RETRY_DELAY_S,
        authenticator: Authenticator | None = None,
    ) -> None:
        super().__init__(consumer, retry_delay_s=retry_delay_s, authenticator=authenticator)
        self.max_age_s = max_age_s
        self.max_future_s = max_future_s

    def export(self, request: Any, tenant: str = DEFAULT_TENANT) -> Any:
        decoded = decode_traces(request, max_age_s=self.max_age_s, max_future_s=self.max_future_s)
        spans = len(decoded.batch)
        if spans and not self.consumer.offer_traces(decoded.batch, request, tenant):
            raise self._refused("spans", spans)
        response = self.response_class()
        if decoded.rejected:
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = decoded.error_message
        return response


class MetricsReceiver(_Receiver, metrics_service_pb2_grpc.MetricsServiceServicer):
    """MetricsService: the request is offered as-is with its data point count."""

    request_class = metrics_service_pb2.ExportMetricsServiceRequest
    response_class = metrics_service_pb2.ExportMetricsServiceResponse
    service_name = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name

    def export(self, request: Any, tenant: str = DEFAULT_TENANT) -> Any:
        points = count_data_points(request)
        if points and not self.consumer.offer_metrics(request, points, tenant):
            raise self._refused("data points", points)
        return self.response_class()


class LogsReceiver(_Receiver, logs_service_pb2_grpc.LogsServiceServicer):
    """LogsService: the request is offered as-is with its log record count."""

    request_class = logs_service_pb2.ExportLogsServiceRequest
    response_class = logs_service_pb2.ExportLogsServiceResponse
    service_name = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name

    def export(self, request: Any, tenant: str = DEFAULT_TENANT) -> Any:
        records = count_log_records(request)
        if records and not self.consumer.offer_logs(request, records, tenant):
            raise self._refused("log records", records)
        return self.response_class()


def count_data_points(request: Any) -> int:
    """Data points in an ``ExportMetricsServiceRequest`` (per metric, not per point: cheap)."""
    total = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    total += len(getattr(metric, kind).data_points)
    return total


def count_log_records(request: Any) -> int:
    """Log records in an ``ExportLogsServiceRequest``."""
    return sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)


def otlp_services(
    consumer: Consumer,
    *,
    max_age_s: float,
    max_future_s: float = 300.0,
    retry_delay_s: float = RETRY_DELAY_S,
    authenticator: Authenticator | None = None,
) -> tuple[TraceReceiver, MetricsReceiver, LogsReceiver]:
    """The three services over one consumer (shared by the gRPC server and the HTTP app)."""
    common: dict[str, Any] = {"retry_delay_s": retry_delay_s, "authenticator": authenticator}
    return (
        TraceReceiver(consumer, max_age_s=max_age_s, max_future_s=max_future_s, **common),
        MetricsReceiver(consumer, **common),
        LogsReceiver(consumer, **common),
    )


def build_grpc_server(
    consumer: Consumer,
    *,
    endpoint: str = "127.0.0.1:4317",
    max_recv_msg_size_mib: int = 4,
    max_age_s: float,
    max_future_s: float = 300.0,
    retry_delay_s: float = RETRY_DELAY_S,
    authenticator: Authenticator | None = None,
    tls: ServerTls | None = None,
) -> tuple[grpc.aio.Server, int]:
    """The OTLP/gRPC server bound to ``endpoint`` (not started) and its port (``:0`` picks a free one).

    Call it from the event loop that will run the server (``grpc.aio``
    servers belong to one loop). Raises ``RuntimeError`` if protobuf is not
    on its upb backend, ``OSError`` if the endpoint cannot be bound.
    """
    require_upb()
    if max_recv_msg_size_mib <= 0:
        raise ValueError(f"max_recv_msg_size_mib must be > 0, got {max_recv_msg_size_mib}")
    limit = int(max_recv_msg_size_mib * 1024 * 1024)
    # No SO_REUSEPORT: a second daemon on the same port must fail, not silently share the traffic.
    options = [
        ("grpc.max_receive_message_length", limit),
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
    ]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers(
        tuple(
            service.rpc_handler()
            for service in otlp_services(
                consumer,
                max_age_s=max_age_s,
                max_future_s=max_future_s,
                retry_delay_s=retry_delay_s,
                authenticator=authenticator,
            )
        )
    )
    try:
        port = server.add_secure_port(endpoint, tls.grpc_credentials()) if tls else server.add_insecure_port(endpoint)
    except RuntimeError as exc:  # grpc reports a failed bind this way
        raise OSError(f"OTLP/gRPC receiver cannot listen on {endpoint}: {exc}") from None
    if port == 0:
        raise OSError(f"OTLP/gRPC receiver cannot listen on {endpoint}")
    host = endpoint.rsplit(":", 1)[0]
    _logger.debug("OTLP/gRPC receiver bound to %s:%d", host, port)
    return server, port
