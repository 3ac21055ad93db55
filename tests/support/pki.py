"""A throwaway certificate authority for TLS tests (the ``cryptography`` package).

``Pki(folder)`` makes a CA; ``server()`` a server certificate (a broker's, InfluxDB's)
for 127.0.0.1 and localhost, or for other names, or one that has expired;
``client(name)`` a client certificate whose subject CN is ``name``. All are
PEM files in the folder, EC P-256 keys, valid for a day.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class Pki:
    def __init__(self, folder: Path, name: str = "kienco test CA") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        self._ca = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .sign(self._key, hashes.SHA256())
        )
        slug = name.replace(" ", "-")
        self.ca_file = folder / f"{slug}.crt"
        self.ca_file.write_bytes(self._ca.public_bytes(serialization.Encoding.PEM))

    def _issue(
        self,
        common_name: str,
        usage: x509.ObjectIdentifier,
        alt: list[x509.GeneralName],
        *,
        expired: bool = False,
    ) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC) - (timedelta(days=2) if expired else timedelta(0))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        stem = self.folder / common_name.replace("/", "_")
        pair = KeyPair(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair

    def server(
        self,
        common_name: str = "broker",
        names: tuple[str, ...] = ("127.0.0.1", "localhost"),
        *,
        expired: bool = False,
    ) -> KeyPair:
        """A server's certificate for ``names`` (IP addresses or DNS names); ``expired``:
        its day of validity ended yesterday."""
        alt = [_alt_name(name) for name in names]
        return self._issue(common_name, ExtendedKeyUsageOID.SERVER_AUTH, alt, expired=expired)

    def client(self, common_name: str) -> KeyPair:
        """A client certificate (an agent's, a collector's) whose subject CN is ``common_name``."""
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])
