"""
Rooms, members and history: the domain of chatroom, with no sockets and no
wire format in it.

A L{ChatUser} is the avatar of one logged-in connection (one account may
have several) and carries every action a client can take: a front door
parses its input into a command and calls the avatar.  What happens is
told back as events: to the avatar's mind (L{Mind}, the connection) for
what concerns it alone, and to a whole room through L{Room.broadcast},
which has each front door's encoder (L{Encoder}) turn an event into bytes
once for all the members it serves.

Rooms count and list I{users}, so someone logged in twice is one member,
joins when the first of their connections enters and parts when the last
one leaves.
"""

# test-case-name: tests.test_service

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.errors import ChatError, ErrorCode
from chat.guard import Quota, has_visible, minutes
from chat.interfaces import (
    IChatBackend,
    IChatStore,
    IChatUser,
    IRoomEvents,
    NameTaken,
    StoreUnavailable,
)
from chat.message import Message, format_timestamp
from chat.storage.files.rooms import LocalBackend

__all__ = [
    "ChatRealm",
    "ChatService",
    "ChatUser",
    "Encoder",
    "LocalBackend",
    "Mind",
    "Outage",
    "Room",
    "RoomListing",
]


class Encoder(Protocol):
    """
    How one kind of front door writes a room's events
    (L{chat.interfaces.IEventEncoder}): one encoder serves every connection
    of its kind, so a room's event is encoded once per kind, not per member.
    """

    def messages(self, room: str, messages: Sequence[tuple[str, str, str]]) -> bytes: ...

    def joined(self, room: str, timestamp: str, user: str) -> bytes: ...

    def parted(self, room: str, timestamp: str, user: str) -> bytes: ...


class Mind(Protocol):
    """
    What the domain needs from a client connection
    (L{chat.interfaces.IChatClient}).
    """

    @property
    def encoder(self) -> Encoder: ...

    @property
    def closing(self) -> bool: ...

    def deliver(self, data: bytes) -> None:
        """
        Write what the encoder made of a room's events, in the room's order.
        """

    def error(self, code: ErrorCode, text: str) -> None: ...

    def shutdown(self, reason: str) -> Deferred[None]: ...


@implementer(IChatUser)
class ChatUser:
    """
    A logged-in connection, as the realm hands it out: the actions a
    client can take.  Each one either does what was asked or raises
    L{ChatError} with what the client is to be told.
    """

    __slots__ = ("key", "mind", "name", "room", "service")

    def __init__(self, name: str, service: ChatService, mind: Mind) -> None:
        self.name = name
        key = name.lower()
        # Share the name's string when it is already lower case.
        self.key = name if key == name else key
        self.service = service
        self.mind = mind
        self.room: Room | None = None

    def create(self, name: str) -> Deferred[Room]:
        """
        Create a room and enter it.

        @return: A Deferred firing with the room, entered unless the
            connection is closing by then, or failing with L{ChatError}.
        @raise ChatError: At once, when the room exists or a limit is
            reached.
        """
        service = self.service
        if service.room_exists(name):
            raise ChatError(ErrorCode.ROOM_EXISTS, f"{name} exists; /join it")
        limit = service.max_rooms
        if limit and service.room_count() >= limit:
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                f"this server has {limit} rooms, its limit; join one of them (/rooms lists them)",
            )
        key = self.key
        quota = service.room_quota
        wait = quota.wait(key)
        if wait:
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                f"you may create {quota.limit} rooms an hour; try again in {minutes(wait)}",
            )
        # Counted now, so that rooms still being created count too.
        quota.spend(key)

        def created(room: Room) -> Room:
            if not self.mind.closing:
                service.join(self, room)
            return room

        def failed(failure: Failure) -> Room:
            quota.refund(key)
            if failure.check(NameTaken):
                raise ChatError(ErrorCode.ROOM_EXISTS, f"{name} exists; /join it")
            raise ChatError(ErrorCode.UNAVAILABLE, "cannot create rooms right now; try again")

        return service.create(name).addCallbacks(created, failed)

    def join(self, name: str) -> Room:
        """
        Enter a room, leaving the one the user was in.
        """
        room = self.service.find(name)
        if room is None:
            raise ChatError(
                ErrorCode.NO_SUCH_ROOM, f"no room named {name}; /create {name} makes one"
            )
        self.service.join(self, room)
        return room

    def leave(self) -> Room:
        """
        Go back to the lobby.

        @return: The room left.
        """
        room = self.service.leave(self)
        if room is None:
            raise ChatError(ErrorCode.BAD_STATE, "you are not in a room")
        return room

    def say(self, text: str) -> None:
        """
        Post C{text} (cleaned by the front door) to the room, unless
        nothing of it would show.
        """
        if has_visible(text):
            self.service.say(self, text)

    def who(self) -> list[str]:
        """
        The names of the users in the room, in the order they came.
        """
        room = self.room
        if room is None:
            raise ChatError(ErrorCode.BAD_STATE, "you are not in a room")
        return room.users()

    def rooms(self) -> list[tuple[str, int]]:
        """
        Every room and how many are in it, sorted by name.  (The line
        front door sends its cached L{RoomListing} instead.)
        """
        return self.service.room_list()

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
        self.pending: list[Message] = []
        self.senders: list[ChatUser] = []

    def broadcast(self, event: Callable[[Encoder], bytes], skip: str | None = None) -> None:
        """
        Tell every member (but the user whose lower-case name is C{skip})
        of an event: C{event} makes its bytes with a member's encoder,
        once per encoder, whatever the size of the room.
        """
        encoder: Encoder | None = None
        data = b""
        made: dict[Encoder, bytes] | None = None
        for member in self.members:
            if skip is not None and member.key == skip:
                continue
            mind = member.mind
            kind = mind.encoder
            if kind is not encoder:
                # Another kind of front door than the last member's: keep
                # what each kind made, for rooms where kinds alternate.
                if encoder is not None:
                    if made is None:
                        made = {}
                    made[encoder] = data
                encoder = kind
                kept = made.get(kind) if made is not None else None
                data = kept if kept is not None else event(kind)
            mind.deliver(data)

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


class RoomListing:
    """
    The room list as one front door sends it, made once and kept until a
    room is added or a population changes.

    Every login and every C{/rooms} sends it, and a server may have tens
    of thousands of rooms: sorting and formatting them each time took the
    reactor hundreds of milliseconds.  Now a change costs one row, and a
    list asked for after changes costs one join of the kept rows.
    """

    def __init__(
        self,
        order: list[str],
        rooms: dict[str, Room],
        row: Callable[[str, int], bytes],
        end: bytes,
    ) -> None:
        """
        @param order: The service's sorted room keys, kept up to date by it.
        @param row: Makes one room's row from its name and population.
        @param end: What follows the rows.
        """
        self._order = order
        self._row = row
        self._end = end
        # Each room's row in the order of the keys, where each key is
        # (rebuilt after a room is added), the rooms whose row is out of
        # date, and the whole list, end included, until something changes.
        self._rows: list[bytes] = [b""] * len(order)
        self._where: dict[str, int] | None = None
        self._stale: set[Room] = set(rooms.values())
        self._listing: bytes | None = None

    def added(self, at: int, room: Room) -> None:
        self._rows.insert(at, b"")
        self._where = None
        self.changed(room)

    def changed(self, room: Room) -> None:
        self._stale.add(room)
        self._listing = None

    def render(self) -> bytes:
        listing = self._listing
        if listing is None:
            where = self._where
            if where is None:
                where = self._where = {key: i for i, key in enumerate(self._order)}
            rows = self._rows
            row = self._row
            for room in self._stale:
                rows[where[room.name.lower()]] = row(room.name, room.population())
            self._stale.clear()
            listing = self._listing = b"".join(rows) + self._end
        return listing


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
        self.connections: set[Mind] = set()
        self.ready: Deferred[Any] = Deferred()
        self.started = False
        self.outage = Outage(getattr(backend, "label", "Storage"))
        self._creating: set[str] = set()
        self._dirty: list[Room] = []
        self._flush_call: IDelayedCall | None = None
        #: The rooms' keys, sorted, and the front doors' cached room lists.
        self._order: list[str] = []
        self._listings: list[RoomListing] = []
        #: How many rooms there may be (0: no limit), and how many each
        #: user may create an hour: set by the front door's factory from
        #: its L{chat.guard.Limits}.
        self.max_rooms = 0
        self.room_quota = Quota(clock, 0)

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
            for listing in self._listings:
                listing.added(at, room)
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
        target.broadcast(lambda encoder: encoder.messages(room, messages))

    def user_joined(self, room: str, user: str, timestamp: str) -> None:
        target = self.room_created(room)
        key = user.lower()
        if key not in target.present:
            target.present[key] = user
            self._changed(target)
            name = target.name
            target.broadcast(lambda encoder: encoder.joined(name, timestamp, user), skip=key)

    def user_parted(self, room: str, user: str, timestamp: str) -> None:
        target = self.room_created(room)
        key = user.lower()
        if target.present.pop(key, None) is not None:
            self._changed(target)
            name = target.name
            target.broadcast(lambda encoder: encoder.parted(name, timestamp, user), skip=key)

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

    def listing(self, row: Callable[[str, int], bytes], end: bytes) -> RoomListing:
        """
        A room list kept up to date for a front door, which says how a
        room's row and the list's end look in its format.
        """
        listing = RoomListing(self._order, self.rooms, row, end)
        self._listings.append(listing)
        return listing

    def _changed(self, room: Room) -> None:
        """
        The room is new or its population may have changed: its line in
        the room list is out of date.
        """
        for listing in self._listings:
            listing.changed(room)

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
        room.pending.append(Message(format_timestamp(self.clock.seconds()), user.name, text))
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
            sender.mind.error(ErrorCode.UNAVAILABLE, "cannot store messages right now; not sent")


@implementer(IRealm)
class ChatRealm:
    """
    Turns an authenticated name into a L{ChatUser} bound to its connection
    (the mind, an L{chat.interfaces.IChatClient}).
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
