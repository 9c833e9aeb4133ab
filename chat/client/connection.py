"""
The connection to the server, and the certificate checks of a TLS one.
"""

# test-case-name: tests.client.test_connection

from __future__ import annotations

from typing import TYPE_CHECKING

from OpenSSL import SSL
from OpenSSL.crypto import X509
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from chat.client.tls import NoHostToCheck, check_certificate_host

if TYPE_CHECKING:
    from chat.client.session import ChatClient

__all__ = ["ServerProtocol"]


class ServerProtocol(LineReceiver):
    """
    The connection to the server: LF-terminated lines in both directions.

    Over TLS it also checks that the server's certificate names the host,
    twice over: its own certificate callback replaces Twisted's (which lets
    some malformed certificates through, see L{check_certificate_host}) so
    that a bad certificate fails the handshake, and the certificate is
    checked again when the handshake completes, before any line from the
    server is read; the client sends nothing before the server's HELLO.

    @ivar tls_host: What the certificate must name (L{Options.tls_host}).
    """

    delimiter = b"\n"
    # Server lines are at most a 2048-byte message plus a few words; this
    # only guards against something that is not a chatroom server.
    MAX_LENGTH = 1 << 20

    def __init__(self, client: ChatClient, tls_host: str | None = None) -> None:
        self.client = client
        self.tls_host = tls_host
        self._refused: Failure | None = None

    def connectionMade(self) -> None:
        """
        Take over the certificate check of a TLS connection (whose
        handshake starts once this returns), and disable Nagle: chat lines
        are tiny and latency is what people see.
        """
        get_handle = getattr(self.transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if isinstance(handle, SSL.Connection):
            handle.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.client.server_connected(self)

    def _verify(
        self, connection: SSL.Connection, cert: X509, error: int, depth: int, ok: int
    ) -> bool:
        """
        OpenSSL's certificate callback: keep its verdict on the chain, and
        check the server's own certificate (depth 0) for the host.  Nothing
        may be raised here (OpenSSL would lose it), so any problem is a
        refusal.
        """
        if not ok:
            return False
        if depth != 0:
            return True
        try:
            self._check(cert)
        except Exception:
            self._refused = Failure()
            fail = getattr(self.transport, "failVerification", None)
            if fail is not None:
                fail(self._refused)
            return False
        return True

    def _check(self, cert: X509 | None) -> None:
        if self.tls_host is None:
            raise NoHostToCheck()
        check_certificate_host(cert, self.tls_host)

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is over and no data has been read yet: check the
        certificate once more, and drop the connection if it does not name
        the host.
        """
        get_peer_certificate = getattr(self.transport, "getPeerCertificate", None)
        try:
            if get_peer_certificate is None:
                raise NoHostToCheck()
            self._check(get_peer_certificate())
        except Exception:
            self._refused = Failure()
            assert self.transport is not None
            abort = getattr(self.transport, "abortConnection", self.transport.loseConnection)
            abort()

    def dataReceived(self, data: bytes) -> None:
        """
        Read nothing from a server whose certificate was refused.
        """
        if self._refused is None:
            super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        """
        Hand each server line to the client.
        """
        self.client.server_line(line)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Tell the client, which decides whether this was expected.
        """
        self.client.server_lost(self._refused or reason)
