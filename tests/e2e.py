"""
Real TCP for end-to-end tests: the server from L{chat.tap.makeService} on
the test reactor, and line clients that wait for what they expect (with a
timeout on every wait, never a sleep).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from chat.lines import ServerLine, parse_line
from chat.service import ChatService
from chat.tap import Options, makeService
from tests.helpers import walk

TIMEOUT = 10


class LineClient(Protocol):
    """
    A raw client: sends bytes, hands each received line to a queue.
    """

    def __init__(self) -> None:
        self.lines: DeferredQueue[str] = DeferredQueue()
        self.buffer = b""
        #: The server's answers to telnet commands sent to it, three bytes
        #: each; they come between lines.
        self.telnet: list[bytes] = []
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.buffer[:1] == b"\xff":
                if len(self.buffer) < 3:
                    return
                self.telnet.append(self.buffer[:3])
                self.buffer = self.buffer[3:]
                continue
            line, end, rest = self.buffer.partition(b"\n")
            if not end:
                return
            self.buffer = rest
            self.lines.put(line.decode("utf-8"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)

    def send(self, *lines: str | bytes) -> None:
        for line in lines:
            data = line if isinstance(line, bytes) else line.encode() + b"\n"
            assert self.transport is not None
            self.transport.write(data)

    async def line(self) -> str:
        d = self.lines.get()
        d.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
        return await d

    async def until(self, prefix: str) -> list[str]:
        """
        Every line up to and including the first that starts with C{prefix}.
        """
        seen = []
        while True:
            line = await self.line()
            seen.append(line)
            if line.startswith(prefix):
                return seen

    async def expect(self, *lines: str) -> None:
        for want in lines:
            got = await self.line()
            assert got == want, (got, want)

    async def parsed(self) -> ServerLine:
        return parse_line(await self.line())

    async def closed(self) -> None:
        d = self.lost
        d.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
        await d

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()


class RunningServer:
    """
    The service tree of C{twistd chatroom}, started on the test reactor.
    """

    def __init__(self, data: Path, *args: str, port: str = "tcp:0:interface=127.0.0.1") -> None:
        self.data = data
        self.args = args
        self.description = port
        self.port = 0
        self.clients: list[LineClient] = []

    async def start(self) -> None:
        options = Options()
        options.parseOptions(
            [
                "--port",
                self.description,
                "--data",
                str(self.data),
                "--bcrypt-rounds",
                "4",
                *self.args,
            ]
        )
        self.service = makeService(options, reactor)
        self.service.startService()
        services = list(walk(self.service))
        for child in services:
            if isinstance(child, ChatService):
                await child.ready
        for child in services:
            waiting = getattr(child, "_waitingForPort", None)
            if waiting is not None:
                port = await waiting
                self.port = port.getHost().port

    async def stop(self) -> None:
        for client in self.clients:
            client.close()
        await self.service.stopService()

    async def connect(self, proxy: str | None = None) -> LineClient:
        """
        A new connection, greeted.

        @param proxy: A PROXY protocol header to send first, as a load
            balancer in front of the server would.
        """
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        client = LineClient()
        d = connectProtocol(endpoint, client)
        d.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
        await d
        self.clients.append(client)
        if proxy is not None:
            client.send(proxy.encode() + b"\r\n")
        await client.until("HELLO ")
        return client

    async def user(self, name: str, password: str = "password1", verb: str = "register") -> Any:
        client = await self.connect()
        client.send(f"/{verb} {name} {password}")
        first = await client.line()
        assert first == f"OK {verb} {name}", first
        await client.until("END rooms")
        return client

    async def member(self, name: str, room: str = "general") -> LineClient:
        client: LineClient = await self.user(name)
        client.send(f"/join {room}")
        await client.until(f"END history {room}")
        return client
