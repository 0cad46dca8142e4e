"""Certificates made in the tests: a CA, server and client certificates it signs (EC keys: fast to make).

    >>> ca = make_ca("test CA")                                                         # doctest: +SKIP
    >>> make_leaf(ca, "client", ExtendedKeyUsageOID.CLIENT_AUTH, tmp_path, "client")   # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issuer", "KeyPair", "LOOPBACK_NAMES", "TlsFiles", "make_ca", "make_leaf", "make_tls_files"]

#: What a server on loopback is reached by: its certificate's subject alternative names.
LOOPBACK_NAMES: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


@dataclass(frozen=True)
class Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class KeyPair:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class TlsFiles:
    """A private CA and a server certificate for ``localhost`` / ``127.0.0.1`` it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def make_ca(common_name: str) -> Issuer:
    """A self-signed CA that can sign leaves with :func:`make_leaf`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _validity(x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issuer(name, key, cert)


def make_leaf(issuer: Issuer, common_name: str, usage: x509.ObjectIdentifier, directory: Path, stem: str,
               names: list[x509.GeneralName] | None = None) -> KeyPair:
    """A certificate for ``usage`` signed by ``issuer``, written with its key as ``{stem}.pem`` / ``{stem}-key.pem``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _validity(
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(issuer.name)
            .public_key(key.public_key())
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer.key, hashes.SHA256())
    pair = KeyPair(directory / f"{stem}.pem", directory / f"{stem}-key.pem")
    pair.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pair


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate the CA and server certificate into ``directory`` (EC keys: fast to make)."""
    ca = make_ca("trm-otel test CA")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    make_leaf(ca, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, directory, "server", LOOPBACK_NAMES)
    return files
