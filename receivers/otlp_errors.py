"""Why an OTLP export failed, and how each transport must say so: the one mapping.

    >>> error = InvalidData("must be 16 bytes, got 3", field="resource_spans[0].scope_spans[0].spans[3].trace_id")
    >>> str(error)
    'resource_spans[0].scope_spans[0].spans[3].trace_id: must be 16 bytes, got 3'
    >>> error.http_status, error.grpc_code_name
    (400, 'INVALID_ARGUMENT')

Clients decide whether to retry from the status alone, so the mapping is a
contract, not a detail (OTLP specification, "Failures"):

============================  ======================  ===========================
failure                       gRPC                    HTTP
============================  ======================  ===========================
bad data (permanent)          INVALID_ARGUMENT        400
too large                     RESOURCE_EXHAUSTED      413
overloaded (retry later)      UNAVAILABLE+RetryInfo   503 + ``Retry-After``
a bug in the receiver         INTERNAL                500
missing or unknown token      UNAUTHENTICATED         401 + ``WWW-Authenticate``
unsupported content type      --                      415
method other than POST        --                      405 + ``Allow: POST``
============================  ======================  ===========================

Every answer carries a ``google.rpc.Status`` whose message names the
problem (the OTLP field path when there is one): on gRPC in the
``grpc-status-details-bin`` trailer, where standard clients find
``RetryInfo``; on HTTP as the body, protobuf or JSON like the request.
RESOURCE_EXHAUSTED is deliberately sent *without* RetryInfo: OTLP clients
retry it only when RetryInfo is present, and resending the same oversized
request cannot succeed.

This module knows nothing about grpc or starlette; the transports turn
:func:`grpc_trailers` and :func:`http_error` into their own objects.
"""

from __future__ import annotations

import math

from google.protobuf import duration_pb2, json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2

from trm_otel.errors import TrmOtelError

__all__ = [
    "RETRY_DELAY_S",
    "InternalError",
    "InvalidData",
    "MethodNotAllowed",
    "OtlpError",
    "Overloaded",
    "TooLarge",
    "Unauthenticated",
    "UnsupportedMediaType",
    "grpc_trailers",
    "http_error",
]

#: How long an overloaded receiver asks clients to wait: long enough for the
#: pipeline worker to drain a full queue, short enough that client-side
#: queues do not overflow meanwhile.
RETRY_DELAY_S = 1.0

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Read by the OpenTelemetry Python gRPC exporter instead of the status
# details, so both are sent; other clients ignore it.
_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"


class OtlpError(TrmOtelError):
    """A failed export. Subclasses fix the status; the message says what was wrong.

    ``field`` is the OTLP field path (``resource_spans[0]...trace_id``, or
    the lowerCamelCase JSON path for JSON requests) when one field is to
    blame; it goes into a ``BadRequest`` detail and prefixes the message.
    """

    code: int = code_pb2.UNKNOWN
    http_status: int = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)

    @property
    def grpc_code_name(self) -> str:
        """The gRPC status code's name (``INVALID_ARGUMENT``, ...)."""
        return code_pb2.Code.Name(self.code)

    def http_headers(self) -> dict[str, str]:
        """Headers the HTTP answer needs besides ``Content-Type``."""
        return {}

    def status(self) -> status_pb2.Status:
        """The ``google.rpc.Status`` sent on both transports."""
        status = status_pb2.Status(code=self.code, message=str(self))
        if self.field:
            violation = error_details_pb2.BadRequest.FieldViolation(field=self.field, description=self.message)
            status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        return status


class InvalidData(OtlpError):
    """The request cannot be decoded or is invalid as a whole: never retried."""

    code = code_pb2.INVALID_ARGUMENT
    http_status = 400


class TooLarge(OtlpError):
    """The request (after decompression) is over the size limit: never retried."""

    code = code_pb2.RESOURCE_EXHAUSTED
    http_status = 413


class Overloaded(OtlpError):
    """The pipeline's queue is full: the client keeps the data and retries after ``retry_delay_s``."""

    code = code_pb2.UNAVAILABLE
    http_status = 503

    def __init__(self, message: str = "receiver queue is full, retry later", *, retry_delay_s: float = RETRY_DELAY_S):
        super().__init__(message)
        self.retry_delay_s = retry_delay_s

    def retry_info(self) -> error_details_pb2.RetryInfo:
        seconds = math.floor(self.retry_delay_s)
        nanos = int(round((self.retry_delay_s - seconds) * 1e9))
        return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos))

    def http_headers(self) -> dict[str, str]:
        # delay-seconds is an integer (RFC 9110); round up so clients never come back early.
        return {"Retry-After": str(max(1, math.ceil(self.retry_delay_s)))}

    def status(self) -> status_pb2.Status:
        status = super().status()
        status.details.add().Pack(self.retry_info())
        return status


class InternalError(OtlpError):
    """Handling failed for a reason that is not the client's (a bug, logged with its traceback)."""

    code = code_pb2.INTERNAL
    http_status = 500


class Unauthenticated(OtlpError):
    """No bearer token, or one no configured token matches: the client must fix its credentials."""

    code = code_pb2.UNAUTHENTICATED
    http_status = 401

    def http_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="trm-otel"'}


class UnsupportedMediaType(OtlpError):
    """An HTTP body that is neither ``application/x-protobuf`` nor ``application/json`` (or an unknown encoding)."""

    code = code_pb2.INVALID_ARGUMENT
    http_status = 415


class MethodNotAllowed(OtlpError):
    """An HTTP method other than POST on an OTLP path."""

    code = code_pb2.UNIMPLEMENTED
    http_status = 405

    def http_headers(self) -> dict[str, str]:
        return {"Allow": "POST"}


def grpc_trailers(error: OtlpError) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying the serialized ``google.rpc.Status`` (and RetryInfo when overloaded)."""
    trailers: tuple[tuple[str, bytes], ...] = ((_STATUS_DETAILS_KEY, error.status().SerializeToString()),)
    if isinstance(error, Overloaded):
        trailers += ((_RETRY_INFO_KEY, error.retry_info().SerializeToString()),)
    return trailers


def http_error(error: OtlpError, *, as_json: bool = False) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of the HTTP answer; the body is the Status in the request's encoding."""
    status = error.status()
    if as_json:
        body = json_format.MessageToJson(status, indent=None).encode()
        content_type = "application/json"
    else:
        body = status.SerializeToString()
        content_type = "application/x-protobuf"
    return error.http_status, {"Content-Type": content_type, **error.http_headers()}, body
