"""OTLP/HTTP receiver: ``POST /v1/traces|metrics|logs`` as a Starlette app.

    >>> app = build_http_app(pipeline, max_age_s=86400)                 # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=4318)                   # doctest: +SKIP

The same services as OTLP/gRPC (:mod:`trm_otel.receivers.otlp_grpc`), so
both transports accept, reject and partially accept identical data; this
module adds what HTTP needs (OTLP specification, "OTLP/HTTP"):

- bodies in ``application/x-protobuf`` or ``application/json``, answered
  in the same encoding; anything else is 415;
- ``Content-Encoding: gzip`` (and ``deflate``), decompressed as it arrives
  with a cap on the output, so a gzip bomb costs at most the size limit in
  memory and is answered 413; the limit is checked on ``Content-Length``
  first, then on the bytes actually read;
- methods other than POST: 405 with ``Allow: POST``;
- every failure answered with a ``google.rpc.Status`` body
  (:func:`~trm_otel.receivers.otlp_errors.http_error`), 503 with
  ``Retry-After`` when the pipeline is full.

The endpoints are plain ASGI callables reading ``receive`` themselves: the
body must be read incrementally and, after an early error, the rest of it
drained (bounded) so the client reads the answer instead of a reset
connection.

JSON bodies larger than :data:`_JSON_INLINE_LIMIT` are converted on a worker
thread: ``json_format`` is pure Python (about 1 s for 4 MB, more to name
the field of a bad one), and on the event loop that second would stall
every other OTLP and API client of the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from trm_otel.api.auth import Authenticator
from trm_otel.pipeline import Consumer
from trm_otel.receivers.otlp_errors import (
    RETRY_DELAY_S,
    InternalError,
    InvalidData,
    MethodNotAllowed,
    OtlpError,
    TooLarge,
    UnsupportedMediaType,
    http_error,
)
from trm_otel.receivers.otlp_grpc import otlp_services
from trm_otel.receivers.otlp_json import parse_json
from trm_otel.receivers.otlp_traces import require_upb

__all__ = ["build_http_app"]

_logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# After an error, read and discard at most this much of the remaining body
# so the client sees the answer; beyond it the connection is just closed.
_DRAIN_LIMIT = 64 * 1024 * 1024
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
#: JSON bodies up to this size (a few ms of conversion) are parsed on the event loop, larger ones on a thread.
_JSON_INLINE_LIMIT = 64 * 1024


def build_http_app(
    consumer: Consumer,
    *,
    max_request_body_size: int = 20 * 1024 * 1024,
    max_age_s: float,
    max_future_s: float = 300.0,
    retry_delay_s: float = RETRY_DELAY_S,
    authenticator: Authenticator | None = None,
) -> Starlette:
    """The OTLP/HTTP app; ``max_request_body_size`` bounds bodies before and after decompression.

    Raises ``RuntimeError`` if protobuf is not on its upb backend.
    """
    require_upb()
    if max_request_body_size <= 0:
        raise ValueError(f"max_request_body_size must be > 0, got {max_request_body_size}")
    traces, metrics, logs = otlp_services(
        consumer,
        max_age_s=max_age_s,
        max_future_s=max_future_s,
        retry_delay_s=retry_delay_s,
        authenticator=authenticator,
    )
    routes = [
        Route(f"/v1/{signal}", _OtlpEndpoint(service, max_request_body_size))
        for signal, service in (("traces", traces), ("metrics", metrics), ("logs", logs))
    ]
    return Starlette(routes=routes)


class _OtlpEndpoint:
    """One signal's path: method and content checks, bounded body read, decode, export, answer."""

    def __init__(self, service: Any, limit: int) -> None:
        self.service = service
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        as_json = media_type == JSON
        body = _Body(receive, self.limit)
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {scope['path']}: OTLP/HTTP uses POST")
            if media_type not in (PROTOBUF, JSON):
                raise UnsupportedMediaType(
                    f"Content-Type {media_type or '(none)'!r} is not supported: use {PROTOBUF} or {JSON}"
                )
            tenant = self.service.tenant_of(headers.get("authorization"))
            data = await body.read(headers)
            json_class = self.service.json_class or self.service.request_class
            request = await _parse_json(data, json_class) if as_json else self.service.parse(data)
            answer = self.service.export(request, tenant)
            if as_json:
                response = Response(json_format.MessageToJson(answer, indent=None), 200, media_type=JSON)
            else:
                response = Response(answer.SerializeToString(), 200, media_type=PROTOBUF)
        except OtlpError as error:
            response = await _failure(error, body, as_json)
            if isinstance(error, TooLarge):  # worth a line: usually a client or limit misconfiguration
                _logger.info("OTLP/HTTP %s: %s", scope["path"], error)
        except Exception:  # a bug; still answered with a Status body, as OTLP requires of every 5xx
            _logger.exception("OTLP/HTTP %s: failed to handle the request", scope["path"])
            response = await _failure(InternalError("internal error while handling the request"), body, as_json)
        await response(scope, receive, send)


async def _parse_json(data: bytes, message_class: type[Any]) -> Any:
    """:func:`parse_json`, off the event loop when the body is large enough to stall it."""
    if len(data) <= _JSON_INLINE_LIMIT:
        return parse_json(data, message_class)
    return await asyncio.to_thread(parse_json, data, message_class)


async def _failure(error: OtlpError, body: _Body, as_json: bool) -> Response:
    await body.drain()
    status, headers, payload = http_error(error, as_json=as_json)
    return Response(payload, status, headers=headers)


class _Body:
    """One request's body, read from ASGI ``receive`` under the size limit."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.complete = False

    async def _next(self) -> bytes:
        message = await self.receive()
        if message["type"] != "http.request":  # http.disconnect
            self.complete = True
            raise InvalidData("client disconnected before sending the whole body")
        self.complete = not message.get("more_body", False)
        return message.get("body", b"")

    async def read(self, headers: Headers) -> bytes:
        """The whole (decompressed) body; :class:`TooLarge` as soon as it is over the limit."""
        limit = self.limit
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"request body of {int(declared)} bytes is over the {limit}-byte limit")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        inflater = None if encoding in ("", "identity") else _Inflater(encoding, limit)
        chunks: list[bytes] = []
        wire = 0
        while not self.complete:
            chunk = await self._next()
            wire += len(chunk)
            if wire > limit:
                raise TooLarge(f"request body is over the {limit}-byte limit")
            if chunk:
                chunks.append(inflater.feed(chunk) if inflater is not None else chunk)
        if inflater is not None:
            inflater.finish()
        return b"".join(chunks)

    async def drain(self) -> None:
        """Read and drop what is left (bounded), so the client reads the answer rather than a reset."""
        drained = 0
        while not self.complete and drained <= _DRAIN_LIMIT:
            try:
                drained += len(await self._next())
            except InvalidData:
                return


class _Inflater:
    """Incremental gzip/deflate decoding that never produces more than ``limit`` bytes in total."""

    def __init__(self, encoding: str, limit: int) -> None:
        wbits = _WBITS.get(encoding)
        if wbits is None:
            raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported: use gzip or deflate")
        self.encoding = encoding
        self.wbits = wbits
        self.limit = limit
        self.size = 0
        self.fed = False
        self._decoder = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> bytes:
        self.fed = True
        pieces = []
        try:
            while data:
                piece = self._decoder.decompress(data, self.limit - self.size + 1)
                self.size += len(piece)
                if self.size > self.limit:
                    raise TooLarge(f"request body is over the {self.limit}-byte limit once decompressed")
                pieces.append(piece)
                if self._decoder.eof:
                    data = self._decoder.unused_data
                    if data and self.wbits & 16:  # a gzip stream may hold several members
                        self._decoder = zlib.decompressobj(self.wbits)
                    elif data:
                        raise InvalidData(f"Content-Encoding {self.encoding}: data after the end of the stream")
                else:
                    data = self._decoder.unconsumed_tail
        except zlib.error as exc:
            raise InvalidData(
                f"Content-Encoding {self.encoding}: body is not valid {self.encoding} data ({exc})"
            ) from None
        return b"".join(pieces)

    def finish(self) -> None:
        if self.fed and not self._decoder.eof:
            raise InvalidData(f"Content-Encoding {self.encoding}: body is truncated")
