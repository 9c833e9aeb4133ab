"""
Rooms, members and history: the domain of chatroom, with no sockets in it.

A L{ChatUser} is one logged-in connection (one account may have several);
a L{Room} fans each message out to its members.  Rooms count and list
I{users}, so someone logged in twice is one member, joins when the first
of their connections enters and parts when the last one leaves.
"""

# test-case-name: tests.test_service

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.interfaces import (
    IChatBackend,
    IChatStore,
    IChatUser,
    IRoomEvents,
    NameTaken,
    StoreUnavailable,
)
from chat.lines import ErrorCode, format_line, format_timestamp
from chat.storage.files.rooms import LocalBackend

__all__ = [
    "ChatRealm",
    "ChatService",
    "ChatUser",
    "Connection",
    "LocalBackend",
    "Outage",
    "Room",
]

_END_ROOMS = format_line("END", "rooms")


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
    A room: its members here, who is in it anywhere, and the tail of its
    history, in memory.

    @ivar members: The connections of this server in the room.
    @ivar counts: How many of those each user (by lower-case name) has.
    @ivar present: Everyone in the room on any server, lower-case name to
        name, in the order they came: what C{/who} lists and C{ROOM}
        counts.
    @ivar recent: The last messages as C{(timestamp, user, text)}, oldest
        first; joins are served from here, without touching the store.
    @ivar pending: Messages said in this turn of the reactor and not yet
        stored or sent, with their senders in C{senders}.
    """

    __slots__ = ("counts", "members", "name", "pending", "present", "recent", "senders")

    def __init__(
        self, name: str, history: int, recent: Iterable[tuple[str, str, str]] = ()
    ) -> None:
        self.name = name
        self.members: dict[ChatUser, None] = {}
        self.counts: dict[str, int] = {}
        self.present: dict[str, str] = {}
        self.recent: deque[tuple[str, str, str]] = deque(recent, maxlen=history)
        self.pending: list[tuple[str, str, str]] = []
        self.senders: list[ChatUser] = []

    def broadcast(self, data: bytes, skip: str | None = None) -> None:
        """
        Write formatted lines to every member (but the user whose
        lower-case name is C{skip}): the bytes are made once, whatever the
        size of the room.
        """
        if skip is None:
            for member in self.members:
                member.connection.deliver(data)
        else:
            for member in self.members:
                if member.key != skip:
                    member.connection.deliver(data)

    def users(self) -> list[str]:
        """
        The names of the users in the room, each once, in the order they came.

        Those on this server count even before the backend has announced
        them (from Redis, a round trip later): the asker is always listed.
        """
        names = dict(self.present)
        for member in self.members:
            names.setdefault(member.key, member.name)
        return list(names.values())

    def population(self) -> int:
        """
        How many users are in the room, as L{users} counts them.
        """
        present = self.present
        return len(present) + sum(1 for key in self.counts if key not in present)


class Outage:
    """
    Tells the log once that the store is unavailable, and once that it is
    back, however many messages, logins and registrations it refused
    meanwhile: an outage of a few seconds must not write a line per
    message.  The end is the next thing the store does.

    An outage is expected (Redis restarts, a disk fills up) and users are
    already told (C{ERR unavailable}), so the lines are warnings with no
    traceback; anything else that fails is a bug, logged as one by the
    caller.
    """

    log = Logger()

    def __init__(self, store: str) -> None:
        """
        @param store: What is unavailable, for the log: C{Redis}, C{Storage}.
        """
        self.store = store
        #: How many of each were refused in this outage ({} when there is none).
        self.refused: dict[str, int] = {}

    def refuse(self, what: str, count: int, error: object, action: str, who: str) -> None:
        """
        Count C{count} C{what} (messages, logins, ...) refused for want of
        the store, saying so the first time in an outage.

        @param action: What cannot be done, e.g. C{store messages}.
        @param who: Who gets C{ERR unavailable} for it, e.g. C{senders}.
        """
        refused = self.refused
        if what not in refused:
            refused[what] = 0
            self.log.warn(
                "{store} unavailable: cannot {action} ({error}); {who} get ERR unavailable",
                store=self.store,
                action=action,
                error=error,
                who=who,
            )
        refused[what] += count

    def over(self) -> None:
        """
        The store did something: if it was out, say it is back.
        """
        if self.refused:
            refused, self.refused = self.refused, {}
            counts = [
                f"{count} {what if count != 1 else what.removesuffix('s')}"
                for what, count in refused.items()
            ]
            self.log.warn(
                "{store} available again; {counts} {were} refused meanwhile",
                store=self.store,
                counts=", ".join(counts),
                were="was" if list(refused.values()) == [1] else "were",
            )


@implementer(IRoomEvents)
class ChatService(Service):
    """
    Holds the rooms and the connections, and keeps the backend in step.

    @ivar ready: Fires once the backend has loaded the rooms.
    @ivar started: Whether C{ready} has fired: until then connections are
        answered C{ERR unavailable}.
    @ivar outage: Says when the store is unavailable, once per outage.
    """

    log = Logger()

    def __init__(
        self,
        backend: IChatBackend | IChatStore,
        clock: IReactorTime,
        history: int = 50,
        sync_interval: float = 5.0,
    ) -> None:
        """
        @param backend: Where the rooms live; a bare L{IChatStore} is served
            by a L{LocalBackend}, which fsyncs it every C{sync_interval}
            seconds.
        """
        if IChatStore.providedBy(backend):
            backend = LocalBackend(backend, clock, sync_interval)
        self.backend: IChatBackend = backend
        self.clock = clock
        self.history = history
        self.rooms: dict[str, Room] = {}
        self.connections: set[Connection] = set()
        self.ready: Deferred[Any] = Deferred()
        self.started = False
        self.outage = Outage(getattr(backend, "label", "Storage"))
        self._creating: set[str] = set()
        self._dirty: list[Room] = []
        self._flush_call: IDelayedCall | None = None
        # The room list, as sent: rooms' keys in order, each room's ROOM
        # line in the same order, where each key is (rebuilt after a room
        # is added), the rooms whose line is out of date, and the whole
        # list, END included, until something changes.
        self._order: list[str] = []
        self._lines: list[bytes] = []
        self._where: dict[str, int] | None = {}
        self._stale: set[Room] = set()
        self._listing: bytes | None = None

    def startService(self) -> None:
        super().startService()
        # Called directly: a store that cannot load stops the server here.
        started = self.backend.start(self)
        d = started if isinstance(started, Deferred) else succeed(started)
        d.addCallback(self._loaded)
        d.chainDeferred(self.ready)

    def _loaded(self, result: object) -> object:
        self.started = True
        self.log.info("Loaded {count} rooms", count=len(self.rooms))
        return result

    def stopService(self) -> Deferred[Any]:
        """
        Say C{BYE} to everyone, wait (a little) for the goodbyes to leave,
        then flush the backend.
        """
        super().stopService()
        self.flush()
        goodbyes = [c.shutdown("server shutting down") for c in list(self.connections)]
        d: Deferred[Any] = DeferredList(goodbyes, consumeErrors=True)
        timeout = self.clock.callLater(3, d.cancel)

        def close(_: object) -> Any:
            if timeout.active():
                timeout.cancel()
            return self.backend.stop()

        d.addBoth(close)
        d.addCallback(lambda _: self.log.info("Store closed"))
        return d

    # What the backend says (IRoomEvents)

    def room_created(self, name: str) -> Room:
        key = name.lower()
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(name, self.history)
            at = bisect_left(self._order, key)
            self._order.insert(at, key)
            self._lines.insert(at, b"")
            self._where = None
            self._changed(room)
        return room

    def room_loaded(
        self, name: str, recent: Sequence[tuple[str, str, str]], users: Sequence[str]
    ) -> None:
        room = self.room_created(name)
        room.recent.clear()
        room.recent.extend(recent)
        room.present = {user.lower(): user for user in users}
        self._changed(room)

    def messages_stored(self, room: str, messages: Sequence[tuple[str, str, str]]) -> None:
        target = self.room_created(room)
        target.recent.extend(messages)
        target.broadcast(
            b"".join([format_line("MSG", room, ts, user, text=text) for ts, user, text in messages])
        )

    def user_joined(self, room: str, user: str, timestamp: str) -> None:
        target = self.room_created(room)
        key = user.lower()
        if key not in target.present:
            target.present[key] = user
            self._changed(target)
            target.broadcast(format_line("JOIN", target.name, timestamp, user), skip=key)

    def user_parted(self, room: str, user: str, timestamp: str) -> None:
        target = self.room_created(room)
        key = user.lower()
        if target.present.pop(key, None) is not None:
            self._changed(target)
            target.broadcast(format_line("PART", target.name, timestamp, user), skip=key)

    # Rooms

    def find(self, name: str) -> Room | None:
        return self.rooms.get(name.lower())

    def room_exists(self, name: str) -> bool:
        key = name.lower()
        return key in self.rooms or key in self._creating

    def room_count(self) -> int:
        """
        How many rooms there are, counting those being created.
        """
        return len(self.rooms) + len(self._creating)

    def room_list(self) -> list[tuple[str, int]]:
        """
        Every room with the number of users in it, sorted by name.
        """
        return [(room.name, room.population()) for _, room in sorted(self.rooms.items())]

    def room_listing(self) -> bytes:
        """
        The room list as the protocol sends it (L{room_list} as C{ROOM}
        lines, then C{END rooms}), made once and kept until a room is
        added or a population changes.

        Every login and every C{/rooms} sends it, and a server may have
        tens of thousands of rooms: sorting and formatting them each time
        took the reactor hundreds of milliseconds.  Now a change costs one
        line, and a list asked for after changes costs one join of the
        kept lines.
        """
        listing = self._listing
        if listing is None:
            where = self._where
            if where is None:
                where = self._where = {key: i for i, key in enumerate(self._order)}
            lines = self._lines
            for room in self._stale:
                lines[where[room.name.lower()]] = format_line(
                    "ROOM", room.name, str(room.population())
                )
            self._stale.clear()
            listing = self._listing = b"".join(lines) + _END_ROOMS
        return listing

    def _changed(self, room: Room) -> None:
        """
        The room is new or its population may have changed: its line in
        the room list is out of date.
        """
        self._stale.add(room)
        self._listing = None

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
            self.log.info("Room {room} created", room=name)
            return self.room_created(name)

        def done(result: Any) -> Any:
            self._creating.discard(key)
            return result

        d: Deferred[Any] = self.backend.create_room(name)
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
            self._changed(room)
            self.backend.entered(room.name, user.name, format_timestamp(self.clock.seconds()))

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
            self._changed(room)
            self.backend.left(room.name, user.name, format_timestamp(self.clock.seconds()))
        return room

    def say(self, user: ChatUser, text: str) -> None:
        """
        Stamp a message now; store and send it at the end of this turn of
        the reactor, with every other message said in the room meanwhile.

        Batching is what makes fan-out cheap: a turn's messages cost one
        write to the store and one write per member, however many there
        are.  The messages are stored before anyone is sent them.
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
        Hand a room's pending messages to the backend now: before anything
        else is said to one of its members, so that each connection sees
        lines in the order they happened.
        """
        pending = room.pending
        if not pending:
            return
        senders = room.senders
        room.pending = []
        room.senders = []
        d: Deferred[Any] = self.backend.publish(room.name, pending)
        d.addCallbacks(
            self._stored, self._not_stored, errbackArgs=(room.name, len(pending), senders)
        )

    def _stored(self, result: object) -> None:
        if self.outage.refused:
            self.outage.over()

    def _not_stored(self, failure: Failure, room: str, count: int, senders: list[ChatUser]) -> None:
        if failure.check(StoreUnavailable):
            self.outage.refuse(
                "messages", count, failure.value, action="store messages", who="senders"
            )
        else:
            self.log.failure(
                "Could not store {count} messages in {room}", failure, count=count, room=room
            )
        for sender in senders:
            sender.connection.error(
                ErrorCode.UNAVAILABLE, "cannot store messages right now; not sent"
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
