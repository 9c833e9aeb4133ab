"""
Rooms, members and history: the domain of chatroom, with no sockets in it.

A L{ChatUser} is one logged-in connection (one account may have several);
a L{Room} fans each message out to its members.  Rooms count and list
I{users}, so someone logged in twice is one member, joins when the first
of their connections enters and parts when the last one leaves.
"""

# test-case-name: tests.test_service

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from chat.interfaces import IChatStore, IChatUser, NameTaken, StoreUnavailable
from chat.lines import ErrorCode, format_line, format_timestamp

__all__ = ["ChatRealm", "ChatService", "ChatUser", "Connection", "Room"]


class Connection(Protocol):
    """
    What the domain needs from a client connection.
    """

    def deliver(self, data: bytes) -> None:
        """
        Write lines of a room's traffic, in the room's order.
        """

    def error(self, code: ErrorCode, text: str) -> None: ...

    def shutdown(self, reason: str) -> Deferred[None]: ...


@implementer(IChatUser)
class ChatUser:
    """
    A logged-in connection, as the realm hands it out.
    """

    __slots__ = ("connection", "key", "name", "room", "service")

    def __init__(self, name: str, service: ChatService, connection: Connection) -> None:
        self.name = name
        key = name.lower()
        # Share the name's string when it is already lower case.
        self.key = name if key == name else key
        self.service = service
        self.connection = connection
        self.room: Room | None = None

    def deliver(self, line: bytes) -> None:
        self.connection.deliver(line)

    def logout(self) -> None:
        """
        Leave the current room, telling its members; the realm's logout.
        """
        if self.room is not None:
            self.service.leave(self)


class Room:
    """
    A room: its members and the tail of its history, in memory.

    @ivar recent: The last messages as C{(timestamp, user, text)}, oldest
        first; joins are served from here, without touching the disk.
    @ivar pending: Messages said in this turn of the reactor and not yet
        stored or sent, with their senders in C{senders}.
    """

    __slots__ = ("counts", "members", "name", "pending", "recent", "senders")

    def __init__(
        self, name: str, history: int, recent: Iterable[tuple[str, str, str]] = ()
    ) -> None:
        self.name = name
        self.members: dict[ChatUser, None] = {}
        self.counts: dict[str, int] = {}
        self.recent: deque[tuple[str, str, str]] = deque(recent, maxlen=history)
        self.pending: list[tuple[str, str, str]] = []
        self.senders: list[ChatUser] = []

    def broadcast(self, data: bytes, skip: ChatUser | None = None) -> None:
        """
        Write formatted lines to every member: the bytes are made once,
        whatever the size of the room.
        """
        for member in self.members:
            if member is not skip:
                member.connection.deliver(data)

    def users(self) -> list[str]:
        """
        The names of the users in the room, each once, in the order they came.
        """
        seen: dict[str, str] = {}
        for member in self.members:
            seen.setdefault(member.key, member.name)
        return list(seen.values())


class ChatService(Service):
    """
    Holds the rooms and the connections, and keeps the store in step.
    """

    log = Logger()

    def __init__(
        self,
        store: IChatStore,
        clock: IReactorTime,
        history: int = 50,
        sync_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.history = history
        self.sync_interval = sync_interval
        self.rooms: dict[str, Room] = {}
        self.connections: set[Connection] = set()
        self._creating: set[str] = set()
        self._sync_call: IDelayedCall | None = None
        self._dirty: list[Room] = []
        self._flush_call: IDelayedCall | None = None

    def startService(self) -> None:
        loaded = self.store.load(self.history)
        self.rooms = {
            name.lower(): Room(name, self.history, recent) for name, recent in loaded.items()
        }
        self.log.info("Loaded {count} rooms", count=len(self.rooms))
        super().startService()
        self._schedule_sync()

    def _schedule_sync(self) -> None:
        if self.sync_interval > 0:
            self._sync_call = self.clock.callLater(self.sync_interval, self._sync)

    def _sync(self) -> None:
        d: Deferred[None] = self.store.sync()  # type: ignore[assignment]
        d.addErrback(lambda f: self.log.failure("Periodic sync failed", f))
        d.addBoth(lambda _: self._schedule_sync() if self.running else None)

    def stopService(self) -> Deferred[Any]:
        """
        Say C{BYE} to everyone, wait (a little) for the goodbyes to leave,
        then flush the store.
        """
        super().stopService()
        if self._sync_call is not None and self._sync_call.active():
            self._sync_call.cancel()
        self.flush()
        goodbyes = [c.shutdown("server shutting down") for c in list(self.connections)]
        d: Deferred[Any] = DeferredList(goodbyes, consumeErrors=True)
        timeout = self.clock.callLater(3, d.cancel)

        def close(_: object) -> None:
            if timeout.active():
                timeout.cancel()
            self.store.close()
            self.log.info("Store closed")

        d.addBoth(close)
        return d

    # Rooms

    def find(self, name: str) -> Room | None:
        return self.rooms.get(name.lower())

    def room_exists(self, name: str) -> bool:
        key = name.lower()
        return key in self.rooms or key in self._creating

    def room_list(self) -> list[tuple[str, int]]:
        """
        Every room with the number of users in it, sorted by name.
        """
        return [(room.name, len(room.counts)) for _, room in sorted(self.rooms.items())]

    def create(self, name: str) -> Deferred[Room]:
        """
        Create a room.

        @return: A Deferred firing with the new L{Room} once it is durable,
            or failing with L{NameTaken} or L{StoreUnavailable}.
        """
        key = name.lower()
        if self.room_exists(name):
            return fail(NameTaken(name))
        self._creating.add(key)

        def created(_: object) -> Room:
            room = self.rooms[key] = Room(name, self.history)
            self.log.info("Room {room} created", room=name)
            return room

        def done(result: Any) -> Any:
            self._creating.discard(key)
            return result

        d: Deferred[Any] = self.store.create_room(name)  # type: ignore[assignment]
        return d.addCallback(created).addBoth(done)

    def join(self, user: ChatUser, room: Room) -> None:
        """
        Move a user into a room, out of the one they were in.
        """
        self.flush_room(room)
        if user.room is room:
            return
        if user.room is not None:
            self.leave(user)
        room.members[user] = None
        user.room = room
        count = room.counts.get(user.key, 0)
        room.counts[user.key] = count + 1
        if count == 0:
            stamp = format_timestamp(self.clock.seconds())
            room.broadcast(format_line("JOIN", room.name, stamp, user.name), skip=user)

    def leave(self, user: ChatUser) -> Room | None:
        """
        Take a user out of their room, telling the others if it was that
        user's last connection there.

        @return: The room left, if any.
        """
        room = user.room
        if room is None:
            return None
        self.flush_room(room)
        user.room = None
        del room.members[user]
        count = room.counts[user.key] - 1
        if count:
            room.counts[user.key] = count
        else:
            del room.counts[user.key]
            stamp = format_timestamp(self.clock.seconds())
            room.broadcast(format_line("PART", room.name, stamp, user.name))
        return room

    def say(self, user: ChatUser, text: str) -> None:
        """
        Stamp a message now; store and send it at the end of this turn of
        the reactor, with every other message said in the room meanwhile.

        Batching is what makes fan-out cheap: a turn's messages cost one
        write to the file and one write per member, however many there are.
        The messages are on disk before anyone is sent them.
        """
        room = user.room
        assert room is not None
        if not room.pending:
            self._dirty.append(room)
            if self._flush_call is None:
                self._flush_call = self.clock.callLater(0, self.flush)
        room.pending.append((format_timestamp(self.clock.seconds()), user.name, text))
        room.senders.append(user)

    def flush(self) -> None:
        """
        Store and send everything said since the last flush.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        dirty, self._dirty = self._dirty, []
        for room in dirty:
            self.flush_room(room)

    def flush_room(self, room: Room) -> None:
        """
        Store and send a room's pending messages now: before anything else
        is said to one of its members, so that each connection sees lines in
        the order they happened.
        """
        pending = room.pending
        if not pending:
            return
        senders = room.senders
        room.pending = []
        room.senders = []
        name = room.name
        try:
            self.store.append(name, pending)
        except StoreUnavailable as e:
            self.log.error(
                "Could not store {count} messages in {room}: {error}",
                count=len(pending),
                room=name,
                error=e,
            )
            for sender in senders:
                sender.connection.error(
                    ErrorCode.UNAVAILABLE, "cannot store messages right now; not sent"
                )
            return
        room.recent.extend(pending)
        room.broadcast(
            b"".join([format_line("MSG", name, ts, user, text=text) for ts, user, text in pending])
        )


@implementer(IRealm)
class ChatRealm:
    """
    Turns an authenticated name into a L{ChatUser} bound to its connection
    (the mind).
    """

    def __init__(self, service: ChatService) -> None:
        self.service = service

    def requestAvatar(  # type: ignore[override]
        self, avatarId: bytes | str, mind: Any, *interfaces: Any
    ) -> tuple[Any, ChatUser, Any]:
        if IChatUser not in interfaces:
            raise NotImplementedError("chatroom only hands out IChatUser avatars")
        name = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else avatarId
        user = ChatUser(name, self.service, mind)
        return IChatUser, user, user.logout
