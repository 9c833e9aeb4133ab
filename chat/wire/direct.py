"""
The fast write path: a room's bytes straight to the kernel.

Twisted's C{write} always buffers, and sends on the reactor's next
writable event: for every member of every busy room that is two more
epoll calls and one more turn of latency per batch.  When the transport
is plain TCP with nothing queued, the bytes go straight to the socket
instead; whatever the kernel does not take, and every other case (TLS,
Unix sockets, test transports, a connection going away), goes through
C{transport.write} as usual, so ordering and error handling stay
Twisted's.
"""

# test-case-name: tests.test_direct

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

__all__ = ["can_write_directly", "write"]


def can_write_directly(transport: object) -> bool:
    """
    Whether L{write} may try the socket of this transport: plain TCP
    only (a TLS transport wraps it, and must see every byte).
    """
    return isinstance(transport, tcp.Connection)


def write(transport: Any, data: bytes) -> None:
    """
    Write C{data} on a plain TCP transport, to the socket at once when
    nothing is queued before it, else (and for what the kernel does not
    take) through C{transport.write}.
    """
    if not (
        transport._tempDataLen
        or transport.dataBuffer
        or transport.disconnecting
        or not transport.connected
    ):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            # Let Twisted find the broken connection its own way.
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
