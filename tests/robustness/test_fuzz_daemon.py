"""Thousands of mutated OTLP requests at the real daemon: only documented answers, and it keeps working.

Protobuf and JSON bodies for traces, metrics and logs, broken by
:mod:`tests.robustness.mutations`, go over real OTLP/HTTP (with and
without gzip or deflate, some compressed streams broken too, odd content
types) and real OTLP/gRPC (some gzip-compressed, some over the size
limit), from several threads at once. Then:

- HTTP answers are 200, 400, 413 or 415, or 503 (overloaded): never another
  5xx, which would mean a request crashed a handler;
- gRPC answers are OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED or UNAVAILABLE;
- the daemon is alive and ready, logged no traceback, and its pipeline
  failed no item (every accepted request was processable);
- a valid request sent afterwards, over each transport, is counted.

``TRM_FUZZ_REQUESTS`` sets how many requests (default 3000);
``TRM_FUZZ_SEED`` which ones (the seed is in every failure message).
"""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import os
import random
import threading
import time
import zlib
from collections.abc import Iterator

import grpc
import httpx
import pytest

from tests.e2e.daemon_process import DaemonProcess

from .daemon_tools import EXPORT_PATHS, scrape, signal_total, span_request
from .mutations import RandomChooser, mutate_bytes, mutate_json, mutate_message, otlp_json, valid_request
from .settings import FUZZ_REQUESTS

SEED = int(os.environ.get("TRM_FUZZ_SEED", "20261130"))
SIGNALS = ("traces", "metrics", "logs")
THREADS = 4
HTTP_OK = {200, 400, 413, 415, 503}
GRPC_OK = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAVAILABLE"}
# Mostly right, sometimes with parameters or capitals, rarely wrong (415, or JSON parsed as protobuf).
_CONTENT_TYPES = {
    "protobuf": ("application/x-protobuf",) * 8 + ("application/x-protobuf; charset=binary", "text/plain", ""),
    "json": ("application/json",) * 8 + ("application/json; charset=utf-8", "APPLICATION/JSON",
                                         "application/x-protobuf"),
}
#: 30 MiB of zeros in about 30 KiB: inflates past the 20 MiB limit (413, not memory).
_GZIP_BOMB = gzip.compress(bytes(30 * 2**20))


class Request:
    """One request to send: transport, signal, body, HTTP headers or gRPC compression."""

    def __init__(self, transport: str, signal: str, body: bytes, headers: dict[str, str] | None = None,
                 compressed: bool = False) -> None:
        self.transport, self.signal, self.body = transport, signal, body
        self.headers = headers or {}
        self.compressed = compressed


def requests(count: int, seed: int) -> Iterator[Request]:
    """``count`` mutated requests, the same ones for the same seed."""
    rng = random.Random(seed)
    ch = RandomChooser(rng)
    for n in range(count):
        signal = SIGNALS[n % 3]
        now = time.time_ns()
        valid = valid_request(signal, now)
        encoding = ch.choice(("protobuf", "protobuf", "json"))
        if encoding == "json":
            body = mutate_json(otlp_json(valid), ch)
        elif ch.choice((True, False)):
            body = mutate_bytes(valid.SerializeToString(), ch)
        else:
            body = mutate_message(valid, ch, now).SerializeToString()
        if encoding == "protobuf" and ch.integer(0, 2) == 0:
            oversize = ch.integer(0, 50) == 0
            yield Request("grpc", signal, body + bytes(5 * 2**20) if oversize else body,
                          compressed=ch.choice((False, False, True)))
            continue
        headers = {"Content-Type": ch.choice(_CONTENT_TYPES[encoding])}
        wrap = ch.choice(("none",) * 6 + ("gzip", "deflate", "broken-gzip", "unknown", "bomb"))
        if wrap == "gzip":
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        elif wrap == "deflate":
            body, headers["Content-Encoding"] = zlib.compress(body), "deflate"
        elif wrap == "broken-gzip":
            body, headers["Content-Encoding"] = mutate_bytes(gzip.compress(body), ch), "gzip"
        elif wrap == "unknown":
            headers["Content-Encoding"] = ch.choice(("br", "zstd", "gzip, gzip", "identity", "GZIP"))
        elif wrap == "bomb" and ch.integer(0, 20) == 0:
            body, headers["Content-Encoding"] = _GZIP_BOMB, "gzip"
        yield Request("http", signal, body, headers)


class Outcomes:
    """Answers by (transport, status), and the unexpected ones with what caused them."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.unexpected: list[str] = []
        self.lock = threading.Lock()

    def add(self, request: Request, status: str, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.counts[request.transport, status] += 1
            if not ok and len(self.unexpected) < 20:
                self.unexpected.append(
                    f"{request.transport} {request.signal} {request.headers} -> {status} {detail[:200]!r}; "
                    f"body {request.body[:120]!r}"
                )


def fire(daemon: DaemonProcess, batch: list[Request], outcomes: Outcomes) -> None:
    """Send ``batch`` in order over one HTTP client and one gRPC channel."""
    with httpx.Client(base_url=daemon.http_url, timeout=60) as client, \
            grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        exports = {s: channel.unary_unary(path, request_serializer=None, response_deserializer=None)
                   for s, path in EXPORT_PATHS.items()}
        for request in batch:
            if request.transport == "http":
                response = client.post(f"/v1/{request.signal}", content=request.body, headers=request.headers)
                outcomes.add(request, str(response.status_code), response.status_code in HTTP_OK, response.text)
                continue
            try:
                compression = grpc.Compression.Gzip if request.compressed else None
                exports[request.signal](request.body, timeout=60, compression=compression)
                outcomes.add(request, "OK", True)
            except grpc.RpcError as error:
                code = error.code().name
                outcomes.add(request, code, code in GRPC_OK, error.details() or "")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with DaemonProcess(tmp_path_factory.mktemp("fuzz-daemon")) as process:
        yield process


def test_mutated_requests_get_documented_answers_and_the_daemon_keeps_working(daemon: DaemonProcess) -> None:
    every = list(requests(FUZZ_REQUESTS, SEED))
    outcomes = Outcomes()
    threads = [threading.Thread(target=fire, args=(daemon, every[i::THREADS], outcomes)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seed = f"TRM_FUZZ_SEED={SEED}, {FUZZ_REQUESTS} requests: {dict(outcomes.counts)}"

    assert outcomes.unexpected == [], seed
    assert sum(outcomes.counts.values()) == len(every), seed
    # Not a fuzz of refusals only: much is accepted, much refused, on both transports.
    for transport, status in (("http", "200"), ("http", "400"), ("grpc", "OK"), ("grpc", "INVALID_ARGUMENT")):
        assert outcomes.counts[transport, status] > len(every) // 50, seed

    assert daemon.process is not None and daemon.process.poll() is None, seed
    assert httpx.get(f"{daemon.api_url}/readyz", timeout=10).status_code == 200
    assert not [line for line in daemon.log if "Traceback" in line], "\n".join(daemon.log[-60:])

    # A valid request afterwards is accepted and counted, over each transport.
    with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        channel.unary_unary(EXPORT_PATHS["traces"], request_serializer=None, response_deserializer=None)(
            span_request("after-fuzz", 7, seed=1), timeout=30)
    body = json.dumps(otlp_json(valid_request("traces"))).replace('"fuzz"', '"after-fuzz"', 1)
    response = httpx.post(f"{daemon.http_url}/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    daemon.wait_for_count(7 + 4, timeout=30, service="after-fuzz", range="1h")

    # Everything accepted was processed: no handler of the pipeline raised on fuzzed data.
    counters = scrape(daemon.api_url)
    for signal in SIGNALS:
        assert signal_total(counters, "trm_otel_pipeline_failed_items_total", signal) == 0, (signal, seed)
    pending = counters.get(("trm_otel_pipeline_pending_items", ()), 0.0)
    processed = sum(signal_total(counters, "trm_otel_pipeline_processed_items_total", s) for s in SIGNALS)
    accepted = sum(signal_total(counters, "trm_otel_pipeline_accepted_items_total", s) for s in SIGNALS)
    assert processed + pending == accepted, seed


def test_requests_are_reproducible_from_the_seed() -> None:
    """A failure message's seed must bring back the same requests."""
    first = [(r.transport, r.signal, r.headers) for r in itertools.islice(requests(40, 7), 40)]
    again = [(r.transport, r.signal, r.headers) for r in itertools.islice(requests(40, 7), 40)]
    assert first == again
