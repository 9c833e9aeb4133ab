"""
The fast write path (L{chat.wire.direct}): straight to the socket when it
may, through the transport whenever it must.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chat.wire import direct


class FakeTCP:
    """
    The parts of a L{tcp.Connection} that L{direct.write} reads, over a
    real socket, recording what goes through C{write}.
    """

    def __init__(self, sock: Any) -> None:
        self.socket = sock
        self._tempDataLen = 0
        self.dataBuffer = b""
        self.disconnecting = False
        self.connected = True
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class WriteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.ours.setblocking(False)
        self.theirs.setblocking(False)
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)
        self.transport = FakeTCP(self.ours)

    def received(self) -> bytes:
        try:
            return self.theirs.recv(1 << 20)
        except BlockingIOError:
            return b""

    def test_idle_connection_writes_to_the_socket(self) -> None:
        direct.write(self.transport, b"MSG general :hi\n")
        self.assertEqual(self.received(), b"MSG general :hi\n")
        self.assertEqual(self.transport.written, [])

    def test_queued_output_goes_first(self) -> None:
        for attribute, value in [
            ("dataBuffer", b"earlier"),
            ("_tempDataLen", 7),
            ("disconnecting", True),
            ("connected", False),
        ]:
            transport = FakeTCP(self.ours)
            setattr(transport, attribute, value)
            direct.write(transport, b"later\n")
            self.assertEqual(transport.written, [b"later\n"], attribute)
            self.assertEqual(self.received(), b"", attribute)

    def test_what_the_kernel_does_not_take_is_queued(self) -> None:
        self.ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = bytes(range(256)) * 8192
        direct.write(self.transport, data)
        (rest,) = self.transport.written
        self.assertTrue(0 < len(rest) < len(data))
        sent = b""
        while True:
            chunk = self.received()
            if not chunk:
                break
            sent += chunk
        self.assertEqual(sent + rest, data)

    def test_a_broken_socket_is_left_to_the_transport(self) -> None:
        self.theirs.close()
        direct.write(self.transport, b"bye\n")
        self.assertEqual(self.transport.written, [b"bye\n"])


class CanWriteDirectlyTests(SynchronousTestCase):
    def test_only_plain_tcp(self) -> None:
        connection = tcp.Connection.__new__(tcp.Connection)
        self.assertTrue(direct.can_write_directly(connection))
        self.assertFalse(direct.can_write_directly(StringTransport()))
