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
certificate signed by it (mutual TLS). The files are checked once, when
the config is loaded: each must be readable, the certificates PEM, and the
key the one for ``cert_file``; a problem is a config error naming its key
(``api.tls.key_file: does not match cert_file ...``) rather than a failure
to listen later.
"""

from __future__ import annotations

import re
import ssl
import stat
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo, field_validator

from trm_otel.config_types import StrictModel

__all__ = ["ServerTls", "TlsSettings"]


class TlsSettings(StrictModel):
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    # Checked per field, so a problem is reported at the key itself (``api.tls.client_ca_file``);
    # fields validate in order, so ``key_file`` sees ``cert_file`` only if that passed.
    @field_validator("cert_file", "client_ca_file")
    @classmethod
    def _certificates(cls, path: Path | None) -> Path | None:
        if path is not None:
            _check_readable(path)
            try:
                _context().load_verify_locations(cafile=path)
            except ssl.SSLError as exc:
                raise ValueError(f"not a PEM certificate: {path} ({_ssl_detail(exc)})") from None
        return path

    @field_validator("key_file")
    @classmethod
    def _key(cls, path: Path, info: ValidationInfo) -> Path:
        _check_readable(path)
        cert = info.data.get("cert_file")
        if cert is None:  # cert_file's own error is reported
            return path
        try:
            _context().load_cert_chain(cert, path, password=_refuse_password)
        except _EncryptedKey:
            raise ValueError(f"{path} is encrypted with a password, which is not supported") from None
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                raise ValueError(f"does not match cert_file ({cert})") from None
            raise ValueError(f"not a PEM private key: {path}") from None
        return path


class _EncryptedKey(Exception):
    pass


def _refuse_password() -> str:
    raise _EncryptedKey  # rather than OpenSSL prompting on the terminal


def _context() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)


def _check_readable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ValueError(f"cannot read {path}: is a directory")
        if not stat.S_ISREG(mode):  # a FIFO or device would block or never be PEM
            raise ValueError(f"cannot read {path}: not a regular file")
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise ValueError(f"cannot read {path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None


def _ssl_detail(exc: ssl.SSLError) -> str:
    """OpenSSL's reason without its ``[LIB: CODE]`` prefix and ``(_ssl.c:NNNN)`` suffix."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", re.sub(r"^\[[^\]]*\]\s*", "", text))
    return "malformed PEM" if text in ("", "PEM lib") else text  # "PEM lib": ssl drops OpenSSL's detail


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
