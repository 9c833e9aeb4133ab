"""
Rooms: who is in them, their recent history, and how an event reaches
every member.

A L{Room} tells its members of an event through L{Room.broadcast}, which
has each front door's encoder (L{Encoder}) turn the event into bytes once
for all the members it serves, and hands those bytes to each member's mind
(L{Mind}, the connection).

Rooms count and list I{users}, so someone logged in twice is one member,
joins when the first of their connections enters and parts when the last
one leaves.
"""

# test-case-name: tests.test_service

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from twisted.internet.defer import Deferred

from chat.errors import ErrorCode
from chat.message import Message
from chat.storage.direct import DirectMessage
from chat.storage.moderation import Act

__all__ = ["Encoder", "Member", "Mind", "Room", "RoomListing"]


class Encoder(Protocol):
    """
    How one kind of front door writes a room's events
    (L{chat.interfaces.IEventEncoder}): one encoder serves every connection
    of its kind, so a room's event is encoded once per kind, not per member.
    """

    def messages(self, room: str, messages: Sequence[Message]) -> bytes: ...

    def joined(self, room: str, timestamp: str, user: str) -> bytes: ...

    def parted(self, room: str, timestamp: str, user: str) -> bytes: ...

    def direct(self, viewer: str, message: DirectMessage) -> bytes: ...

    def act(self, act: Act) -> bytes: ...


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

    def shutdown(self, reason: str, reconnect: int = 0) -> Deferred[None]: ...


class Member(Protocol):
    """
    A connection in a room, as the room and the service see it: the
    avatar (L{chat.avatar.ChatUser}).
    """

    name: str
    #: The lower-case name.
    key: str
    mind: Mind
    room: Room | None


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
    @ivar last: The latest stamp of the room known here: a message said now
        is stamped after it, so the store seldom has to change a stamp.
    """

    __slots__ = ("counts", "last", "members", "name", "pending", "present", "recent", "senders")

    def __init__(self, name: str, history: int, recent: Iterable[Message] = ()) -> None:
        self.name = name
        self.members: dict[Member, None] = {}
        self.counts: dict[str, int] = {}
        self.present: dict[str, str] = {}
        self.recent: deque[Message] = deque(recent, maxlen=history)
        #: The stamp of the room's latest message known here, said or stored.
        self.last: str | None = self.recent[-1][0] if self.recent else None
        self.pending: list[Message] = []
        self.senders: list[Member] = []

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

    def removed(self, at: int, room: Room) -> None:
        del self._rows[at]
        self._where = None
        self._stale.discard(room)
        self._listing = None

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
