"""
An in-memory chatroom for unit tests: real service, store and checker on a
temporary directory, a L{Clock} for time, and bcrypt run inline at the
lowest cost so a test never waits on a thread.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from chat.avatar import ChatRealm
from chat.guard import Limits
from chat.protocol import ChatFactory, ChatProtocol
from chat.service import ChatService
from chat.sessions import TokenChecker
from chat.storage.files.accounts import BcryptFileChecker
from chat.storage.files.rooms import FileChatStore, LocalBackend


def temp_dir(case: SynchronousTestCase) -> Path:
    """
    A new, empty directory, removed after the test.

    Not C{case.mktemp()}: that is relative to the working directory, which
    only trial moves into C{_trial_temp}.
    """
    path = Path(tempfile.mkdtemp(prefix=f"{case._testMethodName[:32]}-"))
    case.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


def walk(service: Any) -> Iterator[Any]:
    """
    A service and every service under it.
    """
    yield service
    for child in getattr(service, "services", ()):
        yield from walk(child)


def run_inline(f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args, **kwargs)


class HeldRunner:
    """
    A thread pool stand-in that holds each job until the test releases it,
    to look at the server while bcrypt is still running.
    """

    def __init__(self) -> None:
        self.jobs: list[tuple[Deferred[Any], Any, tuple[Any, ...]]] = []

    def __call__(self, f: Any, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.jobs.append((d, f, args))
        return d

    def release(self) -> None:
        jobs, self.jobs = self.jobs, []
        for d, f, args in jobs:
            maybeDeferred(f, *args).chainDeferred(d)


class Client:
    """
    One connection driven by hand: C{send} lines, read back what the server
    wrote with C{take}.
    """

    def __init__(
        self, protocol: ChatProtocol, lingering: bool = False, peer: str = "127.0.0.1"
    ) -> None:
        """
        @param lingering: Whether the connection stays open after the server
            asks to close it (as a real one does until its buffer drains),
            instead of closing at once.
        """
        self.protocol = protocol
        address = IPv4Address("TCP", peer, 40000)
        self.transport = (
            StringTransport(peerAddress=address)
            if lingering
            else StringTransportWithDisconnection(peerAddress=address)
        )
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)

    def send(self, *lines: str | bytes) -> None:
        for line in lines:
            data = line if isinstance(line, bytes) else line.encode() + b"\n"
            self.protocol.dataReceived(data)

    def take(self) -> list[str]:
        """
        The lines written since the last call, once the reactor turn in
        which they were sent has ended (rooms send at the end of a turn).
        """
        self.protocol.factory.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        assert data == b"" or data.endswith(b"\n"), data
        # split, not splitlines: the protocol's only line end is LF.
        return data.decode("utf-8").split("\n")[:-1] if data else []

    @property
    def closed(self) -> bool:
        return not self.transport.connected or self.transport.disconnecting


class Chat:
    """
    A whole server, in memory.
    """

    def __init__(
        self,
        data: Path,
        history: int = 50,
        limits: Limits | None = None,
        run: Any = run_inline,
        checker: Any = None,
        backend: Any = None,
        admins: tuple[str, ...] = (),
    ) -> None:
        """
        @param backend: Where the rooms live, if not in files under C{data}.
        @param admins: The names C{--admin} would give.
        """
        self.data = data
        self.clock = Clock()
        self.store = FileChatStore(data, run=run_inline)
        limits = limits or Limits()
        self.service = ChatService(
            backend or LocalBackend(self.store, self.clock),
            self.clock,
            history=history,
            max_rooms=limits.max_rooms,
            rooms_per_hour=limits.max_rooms_per_hour,
            admins=admins,
        )
        self.service.startService()
        if checker is None:
            checker = BcryptFileChecker(data / "users.txt", rounds=4, run=run)
        self.checker = checker
        self.realm = ChatRealm(self.service)
        checkers = [checker]
        if hasattr(checker, "add_user") and hasattr(self.service.backend, "tokens"):
            checkers.append(TokenChecker(self.service.backend.tokens, checker, self.clock))
        self.portal = Portal(self.realm, checkers)
        accounts = checker if hasattr(checker, "add_user") else None
        self.service.accounts = accounts
        self.factory = ChatFactory(
            self.service, self.portal, self.realm, accounts, self.clock, limits=limits
        )

    def connect(self, lingering: bool = False, peer: str = "127.0.0.1") -> Client:
        return Client(self.factory.buildProtocol(None), lingering, peer)

    def user(self, name: str, password: str = "password1", register: bool = True) -> Client:
        """
        A connection logged in as C{name}, its output so far taken.
        """
        client = self.connect()
        verb = "register" if register else "login"
        client.send(f"/{verb} {name} {password}")
        lines = client.take()
        assert f"ok {verb} {name}".lower() in [line.lower() for line in lines], lines
        return client

    def in_room(self, name: str, room: str = "general") -> Client:
        client = self.user(name)
        client.send(f"/join {room}")
        client.take()
        return client

    def stop(self) -> None:
        self.service.stopService()
