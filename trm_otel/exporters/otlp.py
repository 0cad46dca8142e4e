"""The ``otlp`` exporter: forward OTLP requests upstream through a bounded retry queue.

    >>> forwarder = OtlpForwarder("collector:4317")                   # doctest: +SKIP
    >>> forwarder.start()                                             # doctest: +SKIP
    >>> forwarder.send("traces", request)    # False when the queue is full (counted)
    True

Requests the daemon received are forwarded as they arrived: serialized once,
sent as bytes (gRPC with an identity serializer, or OTLP/HTTP protobuf), so
forwarding never re-encodes. The SDK's OTLP exporters take SDK objects, not
received protobuf, which is why this sender exists; the aggregated
spanmetrics go through the same queue after the SDK's own encoder.

Retries follow the OTLP spec: gRPC CANCELLED, DEADLINE_EXCEEDED, ABORTED,
OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS (and RESOURCE_EXHAUSTED with RetryInfo);
HTTP 429, 502, 503, 504 honouring ``Retry-After``. A request that cannot be
queued, or that is still failing after ``max_elapsed_s``, is dropped and
counted by signal and reason.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import httpx

__all__ = ["ForwarderStats", "OtlpForwarder", "RetryPolicy"]

_logger = logging.getLogger(__name__)

Signal = Literal["traces", "metrics", "logs"]

_GRPC_METHODS: Mapping[str, str] = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
_RETRYABLE_GRPC = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}
_RETRYABLE_HTTP = {429, 502, 503, 504}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The Collector's ``retry_on_failure`` settings."""

    enabled: bool = True
    initial_interval_s: float = 1.0
    max_interval_s: float = 30.0
    max_elapsed_s: float = 300.0


@dataclass(frozen=True, slots=True)
class ForwarderStats:
    sent: dict[str, int]
    dropped: dict[str, int]
    retries: int
    queued: int


class _Attempt(Exception):
    """One failed send; ``retry_after`` is the server's hint, if any."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class OtlpForwarder:
    """One upstream endpoint, one worker thread, one bounded queue of serialized requests."""

    def __init__(
        self,
        endpoint: str,
        *,
        protocol: Literal["grpc", "http/protobuf"] = "grpc",
        headers: Mapping[str, str] | None = None,
        insecure: bool | None = None,
        timeout_s: float = 10.0,
        compression: Literal["none", "gzip"] = "none",
        queue_size: int = 1000,
        retry: RetryPolicy = RetryPolicy(),
        name: str = "otlp",
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.name = name
        self.endpoint = endpoint
        self.protocol = protocol
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s
        self._compression = compression
        self._queue_size = queue_size
        self._retry = retry
        self._queue: deque[tuple[Signal, bytes]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._in_flight = False
        self._sent: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._retries = 0
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._sleep = sleep or (lambda seconds: self._wake.wait(seconds))
        secure = endpoint.startswith("https://") if insecure is None else not insecure
        if protocol == "grpc":
            target = endpoint.split("://", 1)[-1]
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if secure else (
                grpc.insecure_channel(target)
            )
            self._calls = {
                signal: self._channel.unary_unary(path, request_serializer=None, response_deserializer=None)
                for signal, path in _GRPC_METHODS.items()
            }
            self._http: httpx.Client | None = None
        else:
            base = endpoint if "://" in endpoint else f"{'https' if secure else 'http'}://{endpoint}"
            self._base_url = base.rstrip("/")
            self._http = httpx.Client(timeout=timeout_s)
            self._channel = None

    # ---------------------------------------------------------------- input

    def send(self, signal: Signal, request: Any) -> bool:
        """Queue a protobuf request (or its bytes); False, counted, when the queue is full."""
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        with self._cond:
            if self._stopping or len(self._queue) >= self._queue_size:
                self._dropped[f"{signal}:queue_full"] += 1
                return False
            self._queue.append((signal, payload))
            self._cond.notify()
        return True

    # --------------------------------------------------------------- worker

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"trm-otel-{self.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                signal, payload = self._queue.popleft()
                self._in_flight = True
            try:
                self._deliver(signal, payload)
            finally:
                with self._cond:
                    self._in_flight = False
                    self._cond.notify_all()

    def _deliver(self, signal: Signal, payload: bytes) -> None:
        started = time.monotonic()
        interval = self._retry.initial_interval_s
        while True:
            try:
                self._attempt(signal, payload)
                with self._cond:
                    self._sent[signal] += 1
                return
            except _Attempt as failure:
                elapsed = time.monotonic() - started
                if not (failure.retryable and self._retry.enabled) or self._stopping:
                    reason = "rejected" if not failure.retryable else "shutdown" if self._stopping else "no_retry"
                    self._drop(signal, reason, failure)
                    return
                delay = failure.retry_after if failure.retry_after is not None else interval * random.uniform(0.5, 1.5)
                if elapsed + delay > self._retry.max_elapsed_s:
                    self._drop(signal, "retries_exhausted", failure)
                    return
                with self._cond:
                    self._retries += 1
                self._sleep(delay)
                interval = min(interval * 2, self._retry.max_interval_s)

    def _drop(self, signal: Signal, reason: str, failure: Exception) -> None:
        with self._cond:
            self._dropped[f"{signal}:{reason}"] += 1
        _logger.warning("%s: dropped a %s request to %s (%s): %s", self.name, signal, self.endpoint, reason, failure)

    def _attempt(self, signal: Signal, payload: bytes) -> None:
        if self._http is None:
            metadata = tuple(self._headers.items())
            try:
                self._calls[signal](
                    payload,
                    timeout=self._timeout_s,
                    metadata=metadata or None,
                    compression=grpc.Compression.Gzip if self._compression == "gzip" else None,
                )
            except grpc.RpcError as error:
                code = error.code()
                raise _Attempt(f"gRPC {code.name}: {error.details()}", code in _RETRYABLE_GRPC) from None
            return
        headers = {"Content-Type": "application/x-protobuf", **self._headers}
        body = payload
        if self._compression == "gzip":
            body = gzip.compress(payload)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._http.post(f"{self._base_url}/v1/{signal}", content=body, headers=headers)
        except httpx.HTTPError as error:
            raise _Attempt(f"HTTP {type(error).__name__}: {error}", True) from None
        if response.status_code < 300:
            return
        retry_after = response.headers.get("Retry-After")
        raise _Attempt(
            f"HTTP {response.status_code}",
            response.status_code in _RETRYABLE_HTTP,
            float(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    # ------------------------------------------------------------ lifecycle

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty and nothing is in flight."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._in_flight, timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Send what is queued (within ``timeout``), then stop and close connections."""
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            for signal, _ in self._queue:
                self._dropped[f"{signal}:shutdown"] += 1
            self._queue.clear()
        if self._channel is not None:
            self._channel.close()
        if self._http is not None:
            self._http.close()

    def stats(self) -> ForwarderStats:
        with self._cond:
            return ForwarderStats(dict(self._sent), dict(self._dropped), self._retries, len(self._queue))
