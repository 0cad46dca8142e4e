"""Mutual TLS on the real daemon: ``tls.client_ca_file`` on OTLP/gRPC, OTLP/HTTP and the API.

A CA made here signs the server certificate and one client certificate; a
second CA, which the daemon does not trust, signs another. On each listener
the trusted client gets through, while a client with no certificate or the
untrusted one is refused in the TLS handshake: nothing it sent is counted,
and the daemon goes on serving.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from ..certificates import LOOPBACK_NAMES, KeyPair, make_ca, make_leaf
from .daemon_process import DaemonProcess

# --- certificates ------------------------------------------------------------------


@dataclass(frozen=True)
class MtlsFiles:
    ca_file: Path  # trusted for the server and, as client_ca_file, for clients
    server: KeyPair
    client: KeyPair  # signed by the trusted CA
    stranger: KeyPair  # signed by another CA, unknown to the daemon


def make_mtls_files(directory: Path) -> MtlsFiles:
    """The trusted CA, the server's and a client's certificate it signed, and a stranger's from another CA."""
    ca = make_ca("trm-otel test CA")
    other = make_ca("someone else's CA")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    return MtlsFiles(
        ca_file=ca_file,
        server=make_leaf(ca, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, directory, "server", LOOPBACK_NAMES),
        client=make_leaf(ca, "trusted client", ExtendedKeyUsageOID.CLIENT_AUTH, directory, "client"),
        stranger=make_leaf(other, "stranger", ExtendedKeyUsageOID.CLIENT_AUTH, directory, "stranger"),
    )


# --- clients -----------------------------------------------------------------------


def client_context(files: MtlsFiles, pair: KeyPair | None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """Verifies the server against the test CA; presents ``pair`` if given."""
    context = ssl.create_default_context(cafile=str(files.ca_file))
    if pair is not None:
        context.load_cert_chain(pair.cert_file, pair.key_file)
    if maximum is not None:
        context.maximum_version = maximum
    return context


def grpc_credentials(files: MtlsFiles, pair: KeyPair | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=files.ca_file.read_bytes(),
        private_key=pair.key_file.read_bytes() if pair else None,
        certificate_chain=pair.cert_file.read_bytes() if pair else None,
    )


def export(exporter: Any, service: str, spans: int) -> SpanExportResult:
    """One export() call carrying ``spans`` finished spans of ``service``."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    tracer = provider.get_tracer("mtls")
    finished = []
    for _ in range(spans):
        span = tracer.start_span("GET /x")
        span.end()
        finished.append(span)
    try:
        return exporter.export(finished)  # type: ignore[no-any-return]
    finally:
        exporter.shutdown()


def handshake(port: int, context: ssl.SSLContext) -> None:
    """A bare TLS handshake with 127.0.0.1:``port``; raises one of ``REFUSED`` if the server refuses it.

    Pass a context capped at TLS 1.2: there the server's verdict on the
    client's certificate comes before the handshake ends (under 1.3 the
    client learns of it only on its first read). Against these servers the
    refusal shows up as an unexpected EOF rather than as a named alert.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.getpeercert()


REFUSED = (ssl.SSLError, ConnectionResetError)


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# --- the daemon --------------------------------------------------------------------


@dataclass
class Running:
    process: DaemonProcess
    files: MtlsFiles

    @property
    def grpc_port(self) -> int:
        return port_of(self.process.addresses["grpc"])

    @property
    def http_port(self) -> int:
        return port_of(self.process.addresses["http"])

    @property
    def api_port(self) -> int:
        return port_of(self.process.addresses["api"])

    def api(self, path: str) -> httpx.Response:
        """GET ``path`` from the API as the trusted client."""
        context = client_context(self.files, self.files.client)
        return httpx.get(f"https://127.0.0.1:{self.api_port}{path}", verify=context, timeout=5)

    def services(self) -> dict[str, int]:
        answer = self.api("/api/v1/services")
        answer.raise_for_status()
        return {s["name"]: s["count"] for s in answer.json()["services"]}

    def wait_for_services(self, expected: dict[str, int], timeout: float = 10.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        found = self.services()
        while time.monotonic() < deadline and not expected.items() <= found.items():
            time.sleep(0.1)
            found = self.services()
        return found


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("mtls")
    files = make_mtls_files(directory)
    tls = {"cert_file": str(files.server.cert_file), "key_file": str(files.server.key_file),
           "client_ca_file": str(files.ca_file)}
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
                                             "http": {"endpoint": "127.0.0.1:0", "tls": tls}}}},
        "api": {"endpoint": "127.0.0.1:0", "tls": tls},
    }
    with DaemonProcess(directory, config) as process:
        yield Running(process, files)


@pytest.fixture(autouse=True)
def _no_exporter_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these override a session's CA file; OTEL_* would override the exporters' own TLS arguments
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    for variable in [v for v in os.environ if v.startswith("OTEL_EXPORTER_OTLP_")]:
        monkeypatch.delenv(variable)


# --- tests -------------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["grpc", "http", "api"])
def test_the_handshake_needs_a_client_certificate_from_the_trusted_ca(daemon: Running, listener: str) -> None:
    port = {"grpc": daemon.grpc_port, "http": daemon.http_port, "api": daemon.api_port}[listener]
    files = daemon.files
    handshake(port, client_context(files, files.client, ssl.TLSVersion.TLSv1_2))
    for pair in (None, files.stranger):
        with pytest.raises(REFUSED):
            handshake(port, client_context(files, pair, ssl.TLSVersion.TLSv1_2))
    handshake(port, client_context(files, files.client, ssl.TLSVersion.TLSv1_2))  # still serving
    assert daemon.process.process is not None and daemon.process.process.poll() is None


def test_otlp_grpc_takes_spans_only_from_the_trusted_client(daemon: Running) -> None:
    files = daemon.files
    endpoint = f"127.0.0.1:{daemon.grpc_port}"
    for pair, service in ((None, "grpc-anonymous"), (files.stranger, "grpc-stranger")):
        refused = GrpcSpanExporter(endpoint=endpoint, credentials=grpc_credentials(files, pair), timeout=1)
        assert export(refused, service, 4) == SpanExportResult.FAILURE
    trusted = GrpcSpanExporter(endpoint=endpoint, credentials=grpc_credentials(files, files.client), timeout=10)
    assert export(trusted, "grpc-trusted", 3) == SpanExportResult.SUCCESS
    found = daemon.wait_for_services({"grpc-trusted": 3})
    assert found.get("grpc-trusted") == 3
    assert "grpc-anonymous" not in found and "grpc-stranger" not in found


def test_otlp_http_takes_spans_only_from_the_trusted_client(daemon: Running) -> None:
    files = daemon.files
    endpoint = f"https://127.0.0.1:{daemon.http_port}/v1/traces"
    for pair, service in ((None, "http-anonymous"), (files.stranger, "http-stranger")):
        refused = HttpSpanExporter(
            endpoint=endpoint, certificate_file=str(files.ca_file), timeout=1,
            client_certificate_file=str(pair.cert_file) if pair else None,
            client_key_file=str(pair.key_file) if pair else None,
        )
        assert export(refused, service, 4) == SpanExportResult.FAILURE
    trusted = HttpSpanExporter(endpoint=endpoint, certificate_file=str(files.ca_file), timeout=10,
                               client_certificate_file=str(files.client.cert_file),
                               client_key_file=str(files.client.key_file))
    assert export(trusted, "http-trusted", 2) == SpanExportResult.SUCCESS
    found = daemon.wait_for_services({"http-trusted": 2})
    assert found.get("http-trusted") == 2
    assert "http-anonymous" not in found and "http-stranger" not in found


def test_the_api_answers_only_the_trusted_client(daemon: Running) -> None:
    files = daemon.files
    for pair in (None, files.stranger):
        context = client_context(files, pair)
        with pytest.raises(httpx.TransportError):  # refused in TLS: never an HTTP response
            httpx.get(f"https://127.0.0.1:{daemon.api_port}/api/v1/services", verify=context, timeout=5)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{daemon.api_port}/api/v1/services", timeout=5)  # plain text neither
    answer = daemon.api("/api/v1/services")
    assert answer.status_code == 200 and "services" in answer.json()
    assert daemon.process.process is not None and daemon.process.process.poll() is None
