"""OTLP receivers: what other services' telemetry comes in through (gRPC :4317, HTTP :4318).

Installed as ``trm_otel.receivers``. The daemon builds both servers over one
:class:`~trm_otel.pipeline.Pipeline` (any :class:`~trm_otel.pipeline.Consumer`)
and runs them on its event loop:

    >>> from trm_otel.receivers import build_grpc_server, build_http_app
    >>> server, port = build_grpc_server(pipeline, max_age_s=86400)    # doctest: +SKIP
    >>> app = build_http_app(pipeline, max_age_s=86400)                # doctest: +SKIP

One module per concept:

- :mod:`~trm_otel.receivers.otlp_traces` -- a trace request -> ``SpanBatch``
  in bulk, with per-span validation for partial success; ``require_upb``;
- :mod:`~trm_otel.receivers.otlp_json` -- OTLP/JSON -> the protobuf request;
- :mod:`~trm_otel.receivers.otlp_errors` -- which failure is which gRPC
  status / HTTP answer;
- :mod:`~trm_otel.receivers.otlp_grpc` -- the three OTLP services (shared by
  both transports) and the ``grpc.aio`` server;
- :mod:`~trm_otel.receivers.otlp_http` -- the OTLP/HTTP Starlette app.

Accepted data is offered to the consumer; when it refuses (queue full) the
client is told to retry (UNAVAILABLE / 503), so nothing acknowledged is lost.
"""

from trm_otel.receivers.otlp_errors import InvalidData, OtlpError, Overloaded, TooLarge
from trm_otel.receivers.otlp_grpc import LogsReceiver, MetricsReceiver, TraceReceiver, build_grpc_server
from trm_otel.receivers.otlp_http import build_http_app
from trm_otel.receivers.otlp_json import parse_json
from trm_otel.receivers.otlp_traces import DecodedTraces, decode_traces, require_upb

__all__ = [
    "DecodedTraces",
    "InvalidData",
    "LogsReceiver",
    "MetricsReceiver",
    "OtlpError",
    "Overloaded",
    "TooLarge",
    "TraceReceiver",
    "build_grpc_server",
    "build_http_app",
    "decode_traces",
    "parse_json",
    "require_upb",
]
