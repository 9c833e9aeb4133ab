"""
Each storage feature's two implementations, made the same way for the
contract suites: on files in a temporary directory, or on a real
redis-server (L{tests.redis_server}) on the test reactor.

A suite asks for C{kind} ("files" or "redis") through a parametrized
fixture and gets a L{Stores}: C{start()} gives a fresh process's view of
the same storage (call it again for a restart, or a second process), and
C{break_()} makes the storage unavailable (C{repair()} makes it available
again, to later processes), and C{raw_contains(text)} says whether a text
is anywhere in it (what an erasure must leave no trace of).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hiredis
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.task import Clock
from zope.interface import implementer

from chat.message import Message
from chat.resp import parse_redis_url
from chat.storage.direct import DirectMessage, IDirectEvents
from chat.storage.files import BcryptFileChecker, FileChatStore, LocalBackend
from chat.storage.moderation import Act, IModerationEvents, Rules
from chat.storage.redis import RedisAccounts, RedisBackend
from chat.storage.rooms import IChatBackend, IRoomEvents
from tests.helpers import run_inline
from tests.redis_server import RedisProcess

TIMEOUT = 10
STAMP = "2026-12-02T10:00:00.000Z"


async def within(d: Deferred[Any]) -> Any:
    """
    Wait for C{d}, failing the test if it takes more than a few seconds.
    """
    d.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
    return await d


@implementer(IRoomEvents, IDirectEvents, IModerationEvents)
class Recorder:
    """
    A server's ear: what the backend said, in order.  Private messages
    come as C{("dm", message, to_recipient)}, moderation acts as
    C{("act", act)}; the rules last loaded are kept in C{rules}.
    """

    def __init__(self, history: int = 10) -> None:
        self.history = history
        self.events: DeferredQueue[tuple[Any, ...]] = DeferredQueue()
        self.loaded: dict[str, tuple[list[str], list[str]]] = {}
        #: Every message heard, loaded or stored, as the backend gave it.
        self.messages: list[Message] = []
        #: Whether loading the rooms is news (it is not at start-up).
        self.started = False
        #: The moderation rules as last loaded whole, if ever.
        self.rules: Rules | None = None

    def room_created(self, name: str) -> None:
        self.events.put(("room", name))

    def room_loaded(self, name: str, recent: Sequence[Message], users: Sequence[str]) -> None:
        self.messages.extend(recent)
        self.loaded[name] = ([text for _, _, text in recent], list(users))
        if self.started:
            self.events.put(("loaded", name))

    def messages_stored(self, room: str, messages: Sequence[Message]) -> None:
        self.messages.extend(messages)
        for _, user, text in messages:
            self.events.put(("msg", room, user, text))

    def user_joined(self, room: str, user: str, timestamp: str) -> None:
        self.events.put(("join", room, user))

    def direct_stored(self, message: DirectMessage, to_recipient: bool) -> None:
        self.events.put(("dm", message, to_recipient))

    def user_parted(self, room: str, user: str, timestamp: str) -> None:
        self.events.put(("part", room, user))

    def rules_loaded(self, rules: Rules) -> None:
        self.rules = rules

    def acted(self, act: Act) -> None:
        self.events.put(("act", act))

    async def next(self) -> tuple[Any, ...]:
        return await within(self.events.get())

    def pending(self) -> list[tuple[Any, ...]]:
        """
        What was said and not taken yet.
        """
        return list(self.events.pending)


class Stores:
    """
    One storage (a directory, or a Redis) and the processes started on it.
    """

    kind: str

    def __init__(self) -> None:
        self.backends: list[IChatBackend] = []

    async def start(
        self, history: int = 10, accounts: bool = False
    ) -> tuple[IChatBackend, Recorder, Any]:
        """
        A process's rooms (loaded) and, if asked, its accounts.

        @return: The backend, what it told its server, and the account
            store (L{None} unless asked for).
        """
        raise NotImplementedError

    def break_(self) -> None:
        """
        Make the storage unavailable to everything started on it.
        """
        raise NotImplementedError

    def repair(self) -> None:
        """
        Make the storage available again to processes started from now
        on (those started before may stay broken).
        """

    def raw_contains(self, text: str) -> bool:
        """
        Whether C{text} (UTF-8) is anywhere in the storage, in any form
        the backend keeps, live or not: what an erasure must not leave.
        """
        raise NotImplementedError

    async def stop(self) -> None:
        for backend in self.backends:
            await within(backend.stop())


class FileStores(Stores):
    kind = "files"

    def __init__(self, data: Path) -> None:
        super().__init__()
        self.data = data
        self.clock = Clock()
        self.stores: list[FileChatStore] = []
        self.checkers: list[BcryptFileChecker] = []

    async def start(
        self, history: int = 10, accounts: bool = False
    ) -> tuple[IChatBackend, Recorder, Any]:
        store = FileChatStore(self.data, run=run_inline)
        backend = LocalBackend(store, self.clock, sync_interval=0)
        recorder = Recorder(history)
        await within(backend.start(recorder))
        recorder.started = True
        self.stores.append(store)
        self.backends.append(backend)
        checker = None
        if accounts:
            checker = BcryptFileChecker(self.data / "users.txt", rounds=4, run=run_inline)
            self.checkers.append(checker)
        return backend, recorder, checker

    def break_(self) -> None:
        # chmod does not stop root: put files where the directories were.
        (self.data / "users.txt").touch()
        for store in self.stores:
            for fd in store._fds.values():
                os.close(fd)
            store._fds.clear()
            store.rooms_dir = self.data / "users.txt" / "rooms"
        for backend in self.backends:
            assert isinstance(backend, LocalBackend)
            backend.direct.dms_dir = self.data / "users.txt" / "dms"
            moderation = getattr(backend, "moderation", None)
            if moderation is not None:
                moderation.data = self.data / "users.txt"
            tokens = getattr(backend, "tokens", None)
            if tokens is not None:
                tokens.dir = self.data / "users.txt" / "tokens"
        for checker in self.checkers:
            checker.path = self.data / "rooms"

    def raw_contains(self, text: str) -> bool:
        needle = text.encode()
        for path in self.data.rglob("*"):
            if path.is_file() and needle in path.read_bytes():
                return True
        return False


class RedisStores(Stores):
    kind = "redis"

    def __init__(self, redis: RedisProcess) -> None:
        super().__init__()
        self.redis = redis

    async def start(
        self, history: int = 10, accounts: bool = False, **options: Any
    ) -> tuple[IChatBackend, Recorder, Any]:
        """
        @param options: For L{RedisBackend}, beyond a heartbeat short
            enough that dying and coming back take a fraction of a second.
        """
        backend = RedisBackend(
            reactor, parse_redis_url(self.redis.url), heartbeat=0.1, presence_ttl=0.5, **options
        )
        checker = RedisAccounts(backend, rounds=4, run=run_inline) if accounts else None
        recorder = Recorder(history)
        await within(backend.start(recorder))
        recorder.started = True
        self.backends.append(backend)
        return backend, recorder, checker

    def break_(self) -> None:
        self.redis.kill()

    def repair(self) -> None:
        self.redis.start()

    def raw_contains(self, text: str) -> bool:
        """
        Whether any key holds the text, in the form C{DUMP} gives it: what
        RDB files and replicas get, a stream's nodes whole, entries marked
        deleted included.  Uncompressed, so that the text shows as itself.
        A blocking client: this is a test's look, not the reactor's.
        """
        needle = text.encode()
        with socket.create_connection(("127.0.0.1", self.redis.port), timeout=TIMEOUT) as sock:
            reader = hiredis.Reader()

            def command(*args: str | bytes) -> Any:
                sock.sendall(hiredis.pack_command(args))  # type: ignore[arg-type]
                while (reply := reader.gets()) is False:
                    reader.feed(sock.recv(65536))
                return reply

            command("CONFIG", "SET", "rdbcompression", "no")
            cursor = b"0"
            while True:
                cursor, keys = command("SCAN", cursor, "COUNT", "1000")
                for key in keys:
                    dump = command("DUMP", key)
                    if dump is not None and needle in dump:
                        return True
                if cursor == b"0":
                    return False

    async def stop(self) -> None:
        for backend in self.backends:
            assert isinstance(backend, RedisBackend)
            if backend.commands.running:
                await within(backend.stop())
