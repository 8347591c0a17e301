"""TLS certificates for a Caucus server.

On first start without operator-supplied files, Caucus creates a private certificate
authority and a server certificate signed by it (``ca.pem``, ``server.pem``, ``server.key``
under the data directory's ``certs/``), and reuses them on later starts. Browsers can trust
``ca.pem`` once instead of clicking through a warning on every restart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerCertificate:
    """Paths of the certificate chain and private key a server presents."""

    cert_path: Path
    key_path: Path
    ca_path: Path | None

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Caucus"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def ensure_self_signed(directory: Path, hosts: list[str]) -> ServerCertificate:
    """The development CA and server certificate in ``directory``, created if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
    )
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return ServerCertificate(cert_path, key_path, ca_path)

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Caucus local certificate authority")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    all_hosts = list(dict.fromkeys([*hosts, "localhost", "127.0.0.1", "::1"]))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(all_hosts[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(_alt_names(all_hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    _write_private(
        key_path,
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    _write_private(
        directory / "ca.key",
        ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_path.write_bytes(server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    log.info("created self-signed certificate", extra={"directory": str(directory)})
    return ServerCertificate(cert_path, key_path, ca_path)


def load_certificate(
    cert: Path | None, key: Path | None, directory: Path, hosts: list[str]
) -> ServerCertificate:
    """Operator-supplied files when both are given, else the self-signed pair."""
    if cert and key:
        for path in (cert, key):
            if not path.is_file():
                raise FileNotFoundError(f"TLS file {path} does not exist")
        return ServerCertificate(cert, key, None)
    if cert or key:
        raise ValueError("give both tls_cert and tls_key, or neither")
    return ensure_self_signed(directory, hosts)
