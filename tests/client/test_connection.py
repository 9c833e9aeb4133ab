"""
The server connection: the certificate check after the TLS handshake.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from OpenSSL.crypto import FILETYPE_PEM, X509, load_certificate
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chat.client import (
    ServerProtocol,
)
from tests.certs import write_certificates
from tests.client.helpers import (
    Harness,
)


class TLSTransport(StringTransport):
    """
    A transport that says its TLS handshake is over, with C{certificate}.
    """

    def __init__(self, certificate: X509) -> None:
        super().__init__()
        self.certificate = certificate
        self.aborted = False

    def getPeerCertificate(self) -> X509:
        return self.certificate

    def abortConnection(self) -> None:
        self.aborted = True


@pytest.mark.parametrize(
    ("host", "refusal"),
    [
        ("localhost", None),
        ("127.0.0.1", "the server's certificate could not be verified: it is not for 127.0.0.1"),
        (None, "the server's certificate could not be checked: no host name to check it"),
    ],
)
def test_the_certificate_is_checked_again_after_the_handshake(
    tmp_path: Path, host: str | None, refusal: str | None
) -> None:
    """
    Should the certificate callback have been bypassed, the handshake's end
    still checks the certificate before any server line is read, so the
    login is never sent.
    """
    certs = write_certificates(tmp_path, ["localhost"])
    certificate = load_certificate(FILETYPE_PEM, certs.cert.read_bytes())
    h = Harness()
    server = ServerProtocol(h.client, host)
    transport = TLSTransport(certificate)
    server.makeConnection(transport)
    h.type("login\nalice\npassword1\n")
    server.handshakeCompleted()
    server.dataReceived(b"HELLO chatroom 1 :Welcome\n")
    if refusal is None:
        assert not transport.aborted
        assert transport.value() == b"/login alice password1\n"
        return
    assert transport.aborted
    assert transport.value() == b""
    server.connectionLost(Failure(ConnectionDone()))
    [outcome] = h.outcomes
    assert outcome.code == 1
    assert outcome.reason is not None
    assert outcome.reason.startswith(f"cannot connect to chat.test:5000: {refusal}")
