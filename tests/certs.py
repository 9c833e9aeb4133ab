"""
A throw-away certificate authority and server certificate for the TLS tests.

The tests need a certificate that a client can verify (against this CA,
never the system's) and ones that it must refuse (another host name, no
subjectAltName at all, an address written as a DNS name), made
fresh for each run so that nothing secret or expiring lives in the
repository.  EC P-256 keys: as good as RSA here, and generated instantly.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateFiles", "write_certificates"]


class CertificateFiles(NamedTuple):
    """
    Where L{write_certificates} put its PEM files.
    """

    ca: Path  # the CA certificate: what a client trusts
    key: Path  # the server's private key
    cert: Path  # the server's certificate, signed by the CA


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_certificates(
    directory: Path,
    names: Sequence[str] = ("localhost", "127.0.0.1"),
    *,
    common_name: str | None = None,
    addresses_as_dns: bool = False,
) -> CertificateFiles:
    """
    Make a new CA and a server certificate it signs, and write C{ca.pem},
    C{key.pem} and C{cert.pem} into C{directory} (created if missing).

    @param names: What the server certificate is valid for, as
        subjectAltName entries: an IP address literal becomes an IP entry
        (clients match addresses only against those), anything else a DNS
        name.  The common name is never used for matching by modern clients.
        No names: no subjectAltName extension at all, as C{openssl req
        -x509 -subj /CN=...} makes.
    @param common_name: The subject's common name; the first name by
        default.
    @param addresses_as_dns: Write IP address literals as DNS names too
        (C{DNS:127.0.0.1}), which no client may take for the address.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    # A day of slack on either side, for clocks that disagree a little.
    not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("chatroom test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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

    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            if addresses_as_dns:
                raise ValueError(name)
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name or names[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())

    files = CertificateFiles(directory / "ca.pem", directory / "key.pem", directory / "cert.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files
