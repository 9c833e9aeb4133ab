"""
Who is at the other end of a connection: its address as the logs show
it, and when that address is known.

Behind a load balancer (C{--port haproxy:...}) the address the socket
shows is the balancer's; the client's comes in the PROXY header, which
Twisted's wrapper reads before it hands on the client's first bytes.
"""

# test-case-name: tests.test_peer

from __future__ import annotations

from twisted.internet.interfaces import IAddress, ITransport
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper

__all__ = ["describe", "known_at_connect"]


def describe(address: IAddress) -> str:
    """
    An address for the logs: C{host:port}, or a UNIX socket's path.
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None:
        return f"{host}:{port}"
    return str(getattr(address, "name", None) or address)


def known_at_connect(transport: ITransport | None) -> bool:
    """
    Whether the client's address is known when the connection is made:
    not behind a load balancer, whose PROXY header gives it only with the
    client's first bytes.
    """
    return not isinstance(transport, HAProxyProtocolWrapper)
