"""Fixtures shared by the notifier tests: a recording HTTP server and TLS files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerting.notifiers.servers import RecordingHttpServer, TlsFiles, free_port, make_tls_files


@pytest.fixture
def http_server() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(tls_files: TlsFiles) -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer(tls=tls_files.server_context()) as server:
        yield server


@pytest.fixture
def refused_url() -> str:
    """An http URL on a loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"
