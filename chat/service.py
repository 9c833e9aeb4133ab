"""
The service: the rooms and the connections of this server, kept in step
with the backend, with no sockets and no wire format in it.

What members say is batched per turn of the reactor, stored through the
backend (L{IChatBackend}), and told to each room once it is stored: the
backend answers through L{IRoomEvents}.  The actions that lead here are
the avatar's (L{chat.avatar.ChatUser}).
"""

# test-case-name: tests.test_service

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.errors import ErrorCode
from chat.guard import Quota
from chat.interfaces import IAccountStore, IChatBackend, IRoomEvents, NameTaken, StoreUnavailable
from chat.message import Message, format_timestamp, next_timestamp
from chat.moderation import Keeper
from chat.outage import Outage
from chat.rooms import Member, Mind, Room, RoomListing
from chat.storage.direct import DirectMessage, IDirectEvents, IDirectMessages, Unread
from chat.storage.moderation import IModerationEvents, Rules
from chat.storage.tokens import DEFAULT_TTL, ITokenStore

__all__ = ["ChatService"]

#: Over how many seconds a restart's clients are asked to come back.
RECONNECT_SPREAD = 5


@implementer(IRoomEvents, IDirectEvents, IModerationEvents)
class ChatService(Service, Keeper):
    """
    Holds the rooms and the connections, and keeps the backend in step.

    @ivar ready: Fires once the backend has loaded the rooms.
    @ivar started: Whether C{ready} has fired: until then connections are
        answered C{ERR unavailable}.
    @ivar outage: Says when the store is unavailable, once per outage.
    @ivar accounts: Where names are spelled as registered, and known to
        exist; L{None} with an C{--auth} checker that cannot list accounts
        (then every well-formed name is taken to be a user's).
    @ivar users: The logged-in connections of this server by lower-case
        name: one avatar, or a list when a user has several.
    @ivar admins: The lower-case names of the admins (C{--admin}).
    @ivar rules: Every room's keepers, bans, mutes and topic, and the
        locked accounts, as the store last said (L{chat.moderation.Keeper}).
    """

    log = Logger()

    def __init__(
        self,
        backend: IChatBackend,
        clock: IReactorTime,
        history: int = 50,
        max_rooms: int = 0,
        rooms_per_hour: int = 0,
        accounts: IAccountStore | None = None,
        admins: Iterable[str] = (),
        token_ttl: float = DEFAULT_TTL,
    ) -> None:
        """
        @param backend: Where the rooms live: on files, a
            L{chat.storage.files.rooms.LocalBackend}; on Redis, a
            L{chat.storage.redis.rooms.RedisBackend}.
        @param max_rooms: How many rooms there may be (0: no limit).
        @param rooms_per_hour: How many rooms each user may create an hour
            (0: no limit).
        """
        self.backend = backend
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
        #: How many rooms there may be (0: no limit), and the rooms each
        #: user (by lower-case name) created in the last hour.
        self.max_rooms = max_rooms
        self.room_quota = Quota(clock, rooms_per_hour)
        self.accounts = accounts
        self.users: dict[str, Member | list[Member]] = {}
        #: Private messages for connections whose login is being answered:
        #: written after it, in the order they came.
        self._holding: dict[Member, list[DirectMessage]] = {}
        #: Private messages said this turn, stored together at its end, and
        #: what is to be written to each connection: one write per turn.
        self._direct_pending: list[tuple[Member, str, str, str]] = []
        self._direct_out: dict[Mind, list[bytes]] = {}
        self._flushing = False
        self.admins = frozenset(name.lower() for name in admins)
        #: How long a session token lasts, in seconds (C{--token-ttl}).
        self.token_ttl = token_ttl
        self.rules = Rules()

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
        connections = list(self.connections)
        # Restarting: clients that know RECONNECT come back spread over a
        # few seconds rather than all in the same millisecond.
        spread = len(connections) or 1
        goodbyes = [
            c.shutdown("server shutting down", 1 + (i * RECONNECT_SPREAD) // spread)
            for i, c in enumerate(connections)
        ]
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

    def room_loaded(self, name: str, recent: Sequence[Message], users: Sequence[str]) -> None:
        room = self.room_created(name)
        room.recent.clear()
        room.recent.extend(recent)
        if recent and (room.last is None or recent[-1][0] > room.last):
            room.last = recent[-1][0]
        room.present = {user.lower(): user for user in users}
        self._changed(room)

    def messages_stored(self, room: str, messages: Sequence[Message]) -> None:
        target = self.rooms.get(room.lower())
        if target is None:
            # Said in a room as it was dropped.
            return
        target.recent.extend(messages)
        last = messages[-1][0] if messages else None
        if last is not None and (target.last is None or last > target.last):
            # Said on another process (Redis), or stamped later by the store.
            target.last = last
        target.broadcast(lambda encoder: encoder.messages(room, messages))

    def user_joined(self, room: str, user: str, timestamp: str) -> None:
        target = self.rooms.get(room.lower())
        if target is None:
            return
        key = user.lower()
        if key not in target.present:
            target.present[key] = user
            self._changed(target)
            name = target.name
            target.broadcast(lambda encoder: encoder.joined(name, timestamp, user), skip=key)

    def user_parted(self, room: str, user: str, timestamp: str) -> None:
        target = self.rooms.get(room.lower())
        if target is None:
            # A dropped room's members, leaving it in the presence records.
            return
        key = user.lower()
        if target.present.pop(key, None) is not None:
            self._changed(target)
            name = target.name
            target.broadcast(lambda encoder: encoder.parted(name, timestamp, user), skip=key)

    def direct_stored(self, message: DirectMessage, to_recipient: bool) -> None:
        sender = message.sender.lower()
        recipient = message.recipient.lower()
        self._show(sender, message)
        if to_recipient and recipient != sender:
            self._show(recipient, message)

    def _show(self, key: str, message: DirectMessage) -> None:
        """
        Write a private message to every connection here of the user whose
        lower-case name is C{key}.
        """
        found = self.users.get(key)
        if found is None:
            return
        out = self._direct_out
        if not out and self._flush_call is None and not self._flushing:
            # Shown from another process's event (Redis): at the end of the
            # turn, with whatever else comes for the same connections.
            self._flush_call = self.clock.callLater(0, self.flush)
        for member in found if isinstance(found, list) else (found,):
            held = self._holding.get(member) if self._holding else None
            if held is not None:
                held.append(message)
                continue
            mind = member.mind
            data = mind.encoder.direct(member.key, message)
            chunks = out.get(mind)
            if chunks is None:
                out[mind] = [data]
            else:
                chunks.append(data)

    # Users

    @property
    def direct(self) -> IDirectMessages:
        """
        The backend's private messages.
        """
        return self.backend.direct  # type: ignore[attr-defined,no-any-return]

    @property
    def tokens(self) -> ITokenStore:
        """
        The backend's session tokens.
        """
        return self.backend.tokens  # type: ignore[attr-defined,no-any-return]

    def spelling(self, name: str) -> str | None:
        """
        A user's name as registered, or L{None} when there is no such
        account.
        """
        accounts = self.accounts
        return name if accounts is None else accounts.spelling(name)

    def logged_in(self, user: Member, unread: bool) -> Deferred[Unread | None]:
        """
        A connection logged in as C{user}: private messages reach it from
        now on, held back until the caller has welcomed it (L{welcomed}),
        so that they come after its login's lines.

        @param unread: Whether to take what the user missed meanwhile.
        @return: A Deferred firing once the user counts as online on every
            server, with what the user missed if asked (L{None} if not).
        """
        key = user.key
        found = self.users.get(key)
        self._holding[user] = []
        if found is None:
            self.users[key] = user
            online = self.direct.online(user.name)
        else:
            if isinstance(found, list):
                found.append(user)
            else:
                self.users[key] = [found, user]
            online = succeed(None)
        if not unread:
            return online.addCallback(lambda _: None)
        return online.addCallback(lambda _: self.direct.take_unread(user.name))

    def welcomed(self, user: Member) -> None:
        """
        The user's login has been answered: show what came meanwhile.
        """
        held = self._holding.pop(user, None)
        if held and not user.mind.closing:
            encoder = user.mind.encoder
            user.mind.deliver(b"".join([encoder.direct(user.key, m) for m in held]))

    def logged_out(self, user: Member) -> None:
        """
        A connection logged out (or is gone); nothing happens if it had
        not logged in.
        """
        self._holding.pop(user, None)
        key = user.key
        found = self.users.get(key)
        if found is user:
            del self.users[key]
            self.direct.offline(user.name)
        elif isinstance(found, list) and user in found:
            found.remove(user)
            if len(found) == 1:
                self.users[key] = found[0]

    def send_direct(self, user: Member, recipient: str, text: str) -> None:
        """
        Store and show a private message; the sender's connections are
        told if it cannot be stored.

        Whatever the sender said in its room this turn goes first, so that
        everyone sees the sender's lines in the order they were written.
        """
        if user.room is not None:
            self.flush_room(user.room)
        if not self._direct_pending and self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self.flush)
        stamp = format_timestamp(self.clock.seconds())
        self._direct_pending.append((user, recipient, stamp, text))

    def flush_direct(self) -> None:
        """
        Store and show the private messages said since the last flush,
        and write what each connection is to be shown of them: a turn's
        messages cost one write per conversation file and one per
        connection, as a room's do.
        """
        if not self._direct_pending and not self._direct_out:
            return
        self._flushing = True
        try:
            pending = self._direct_pending
            if pending:
                self._direct_pending = []
                batch = [
                    (user.name, recipient, stamp, text) for user, recipient, stamp, text in pending
                ]
                for (user, *_), d in zip(pending, self.direct.send_batch(batch), strict=True):
                    d.addCallbacks(self._stored, self._direct_not_stored, errbackArgs=(user,))
        finally:
            self._flushing = False
        out = self._direct_out
        if out:
            self._direct_out = {}
            for mind, chunks in out.items():
                mind.deliver(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _direct_not_stored(self, failure: Failure, user: Member) -> None:
        if failure.check(StoreUnavailable):
            self.outage.refuse(
                "private messages", 1, failure.value, action="store messages", who="senders"
            )
        else:
            self.log.failure("Could not store a private message", failure)
        user.mind.error(ErrorCode.UNAVAILABLE, "cannot store messages right now; not sent")

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

    def create(self, name: str, owner: str | None = None) -> Deferred[Room]:
        """
        Create a room; C{owner}, its creator, owns it.

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

        def claimed(_: object) -> Deferred[None] | None:
            return self.claim(name, owner) if owner is not None else None

        def done(result: Any) -> Any:
            self._creating.discard(key)
            return result

        d: Deferred[Any] = self.backend.create_room(name)
        return d.addCallback(claimed).addCallback(created).addBoth(done)

    def _forget(self, room: Room) -> None:
        """
        A room was dropped: it is no longer listed, and its name is free.
        """
        key = room.name.lower()
        if self.rooms.pop(key, None) is None:
            return
        at = bisect_left(self._order, key)
        del self._order[at]
        for listing in self._listings:
            listing.removed(at, room)
        if room.pending and room in self._dirty:
            self._dirty.remove(room)

    def join(self, user: Member, room: Room) -> None:
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

    def leave(self, user: Member) -> Room | None:
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

    def say(self, user: Member, text: str) -> None:
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
        stamp = format_timestamp(self.clock.seconds())
        last = room.last
        if last is not None and stamp <= last:
            # The room's stamps name its messages: one per millisecond, and
            # ahead of the clock while a room is busier than that.
            stamp = next_timestamp(last)
        room.last = stamp
        room.pending.append(Message(stamp, user.name, text))
        room.senders.append(user)

    def flush(self) -> None:
        """
        Store and send everything said since the last flush.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        self.flush_direct()
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
        if room.name.lower() not in self.rooms:
            # Dropped meanwhile: nowhere to store it.
            room.pending = []
            room.senders = []
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

    def _not_stored(self, failure: Failure, room: str, count: int, senders: list[Member]) -> None:
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
