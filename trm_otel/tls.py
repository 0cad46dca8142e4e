"""TLS for the daemon's listeners: OTLP/gRPC, OTLP/HTTP and the API share one config shape.

    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 0.0.0.0:4317
            tls: {cert_file: /etc/trm-otel/server.crt, key_file: /etc/trm-otel/server.key}
    api:
      endpoint: 0.0.0.0:8080
      tls: {cert_file: ..., key_file: ..., client_ca_file: /etc/trm-otel/clients-ca.crt}

The keys are the Collector's (``cert_file``, ``key_file``,
``client_ca_file``); with ``client_ca_file`` clients must present a
certificate signed by it (mutual TLS). Files are read once at start-up and
a missing or unreadable one is a config error naming its key.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from pydantic import field_validator

from trm_otel.config_types import StrictModel

__all__ = ["ServerTls", "TlsSettings"]


class TlsSettings(StrictModel):
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    # Checked per field, so a problem is reported at the key itself (``api.tls.client_ca_file``).
    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"cannot read {path}: {'is a directory' if path.is_dir() else 'no such file'}")
        return path


class ServerTls:
    """Certificates loaded once; hands each server framework the form it takes."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self.cert = settings.cert_file.read_bytes()
        self.key = settings.key_file.read_bytes()
        self.client_ca = settings.client_ca_file.read_bytes() if settings.client_ca_file else None

    def grpc_credentials(self) -> Any:
        import grpc

        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.client_ca, require_client_auth=self.client_ca is not None
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """``ssl_*`` keyword arguments for ``uvicorn.Config``."""
        options: dict[str, Any] = {
            "ssl_certfile": str(self.settings.cert_file),
            "ssl_keyfile": str(self.settings.key_file),
        }
        if self.settings.client_ca_file is not None:
            options["ssl_ca_certs"] = str(self.settings.client_ca_file)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options
