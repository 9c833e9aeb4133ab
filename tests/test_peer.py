"""
Tests for L{chat.wire.peer}: who is at the other end of a connection.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory
from twisted.trial.unittest import SynchronousTestCase

from chat.wire.peer import describe, known_at_connect


class DescribeTests(SynchronousTestCase):
    def test_host_and_port(self) -> None:
        self.assertEqual(describe(IPv4Address("TCP", "192.0.2.7", 40000)), "192.0.2.7:40000")
        self.assertEqual(describe(IPv6Address("TCP", "::1", 6667)), "::1:6667")


class KnownAtConnectTests(SynchronousTestCase):
    def test_a_plain_connection(self) -> None:
        self.assertTrue(known_at_connect(StringTransport()))

    def test_behind_a_load_balancer(self) -> None:
        """
        Through --port haproxy:..., the address comes in the PROXY header,
        after the connection is made.
        """
        factory = HAProxyWrappingFactory(Factory.forProtocol(Protocol))
        wrapper = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.assertFalse(known_at_connect(wrapper))  # type: ignore[arg-type]
