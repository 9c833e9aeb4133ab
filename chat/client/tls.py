"""
The client's own check that a TLS server's certificate names the host it
meant to reach, and the words for every way a TLS connection can fail.
"""

# test-case-name: tests.client.test_connection

from __future__ import annotations

import ipaddress

from cryptography import x509
from OpenSSL import SSL
from OpenSSL.crypto import X509
from service_identity import VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.python.failure import Failure

__all__ = ["CertificateNotForHost", "NoHostToCheck", "check_certificate_host", "tls_failure"]


class CertificateNotForHost(Exception):
    """
    The server's certificate does not name the host the client meant to
    reach, or names it in a way that cannot be read: refused like a
    certificate from an unknown CA.

    @ivar host: The host name or address that was looked for.
    @ivar detail: Why the certificate could not be read, if that was the
        problem (no subjectAltName, a malformed entry), else empty.
    """

    def __init__(self, host: str, detail: str = "") -> None:
        super().__init__(host, detail)
        self.host = host
        self.detail = detail


class NoHostToCheck(Exception):
    """
    A TLS connection through an endpoint whose host the client does not
    know, so that it cannot check the certificate: refused.
    """


def check_certificate_host(certificate: X509 | x509.Certificate | None, host: str) -> None:
    """
    Check that C{certificate} names C{host}: an IP address entry of the
    subjectAltName for an address, a DNS entry for a name (the common name
    does not count).

    Every failure of the check, whatever the exception, is a refusal:
    Twisted 26.10's own check treats only L{VerificationError} as one and
    merely logs the L{service_identity.CertificateError} raised for a
    certificate with no subjectAltName, or with an address written as a DNS
    name, then lets the connection proceed.

    @raise CertificateNotForHost: The certificate does not name C{host}.
    """
    try:
        if certificate is None:
            raise ValueError("no certificate")
        if isinstance(certificate, X509):
            certificate = certificate.to_cryptography()
        try:
            ipaddress.ip_address(host)
        except ValueError:
            verify_certificate_hostname(certificate, host)
        else:
            verify_certificate_ip_address(certificate, host)
    except VerificationError:
        raise CertificateNotForHost(host) from None
    except Exception as error:
        detail = " ".join(str(error).split()).rstrip(".") or type(error).__name__
        raise CertificateNotForHost(host, detail) from None


def tls_failure(reason: Failure) -> str | None:
    """
    Say in words why a TLS connection failed, or return L{None} when
    C{reason} is not a TLS failure.

    A certificate that does not verify is the case people must be able to
    recognise (a private CA without C{--cafile}, a wrong host name, an
    attack); OpenSSL reports it as C{certificate verify failed}, and
    L{ServerProtocol} a wrong host name as a L{CertificateNotForHost}
    (Twisted's own check, as a L{VerificationError}).
    """
    if reason.check(NoHostToCheck):
        return (
            "the server's certificate could not be checked: no host name to check it "
            "against (use --tls, or --connect tls:HOST:PORT)"
        )
    if reason.check(CertificateNotForHost):
        error = reason.value
        assert isinstance(error, CertificateNotForHost)
        detail = f" ({error.detail[:1].lower()}{error.detail[1:]})" if error.detail else ""
        return f"the server's certificate could not be verified: it is not for {error.host}{detail}"
    if reason.check(VerificationError):
        names = []
        for mismatch in getattr(reason.value, "errors", ()):
            wanted = mismatch.mismatched_id
            name = getattr(wanted, "hostname", None) or getattr(wanted, "ip", None)
            if isinstance(name, bytes):
                name = name.decode("ascii", "replace")
            if name is not None:
                names.append(str(name))
        what = " or ".join(names) or "this server"
        return f"the server's certificate could not be verified: it is not for {what}"
    if reason.check(SSL.Error):
        message = " ".join(str(reason.value).split())
        if "certificate verify failed" in message:
            return (
                "the server's certificate could not be verified: not issued by a "
                "trusted CA, or expired (--cafile trusts a private CA)"
            )
        return f"TLS handshake failed (is it a TLS port?): {message}"
    return None
