"""
Rooms and their history in Redis, shared by every process pointed at it:
the L{IChatBackend} of C{--store redis://}.

A room is a field of the hash C{rooms} (event C{R} when added); its
history a stream, C{history:<room>}, appended to with the announcement
(event C{M}, the batch of messages) in one script, C{rooms_say.lua},
which also makes each stamp later than the room's last, so that a room's
name and a stamp name one message whichever process stamped it.
Presence is L{chat.storage.redis.presence}'s, private messages and paging
back L{chat.storage.redis.direct}'s, session tokens
L{chat.storage.redis.tokens}'s.
"""

# test-case-name: tests.storage.test_rooms, tests.storage.test_redis_rooms

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from chat.message import Message
from chat.resp import RedisAddress, RedisClient
from chat.storage.moderation import IModerationEvents
from chat.storage.redis.connection import Event, RedisConnection, added_or_taken, pairs
from chat.storage.redis.direct import RedisDirect
from chat.storage.redis.moderation import RedisModeration
from chat.storage.redis.presence import RedisPresence
from chat.storage.redis.tokens import RedisTokens
from chat.storage.rooms import IChatBackend, IRoomEvents

__all__ = ["RedisBackend"]


def _parse_messages(payload: str) -> list[Message]:
    messages = []
    for line in payload.split("\n"):
        parts = line.split(" ", 2)
        if len(parts) == 3:
            messages.append(Message(parts[0], parts[1], parts[2]))
    return messages


@implementer(IChatBackend)
class RedisBackend:
    """
    Rooms in Redis, shared by every process pointed at it.

    @ivar connection: The connection it shares with the other Redis
        features (accounts, say).
    @ivar presence: Who is where, across processes.
    @ivar direct: Private messages, and paging back through history.
    @ivar moderation: Rules, erasures and the audit log.
    @ivar tokens: Session tokens, revoked on every process at once.
    """

    log = Logger()
    #: What the log calls it when it is unavailable.
    label = "Redis"

    def __init__(
        self,
        reactor: Any,
        address: RedisAddress,
        history_cap: int = 100_000,
        events_cap: int = 100_000,
        heartbeat: float = 1.0,
        presence_ttl: float = 5.0,
        prefix: str = "chatroom:",
    ) -> None:
        """
        @param history_cap: About how many messages each room's stream
            keeps (the oldest are trimmed).
        @param events_cap: About how many events the shared stream keeps: a
            process cut off for longer than that many events reads the
            rooms again whole.
        @param presence_ttl: Seconds after its last heartbeat that a
            process's users are taken out of their rooms.
        """
        self.connection = connection = RedisConnection(reactor, address, events_cap, prefix)
        self.presence = RedisPresence(connection, heartbeat, presence_ttl)
        self.direct = RedisDirect(connection, self.presence, history_cap)
        self.history_cap = history_cap
        self._events: IRoomEvents | None = None
        self._say = connection.script("stamps.lua", "rooms_say.lua")
        self._add = connection.script("add.lua")
        #: Messages read from the stream and not shown yet, by room.
        self._said: dict[str, list[Message]] = {}
        connection.on_event("M", self._messages, batched=True)
        connection.on_event("R", self._created)
        connection.on_flush(self._flush)
        connection.on_snapshot("rooms_snapshot.lua", self._snapshot_args, self._loaded)
        # After the rooms' part: a process reloading learns the rooms, then
        # their rules.
        self.moderation = RedisModeration(connection)
        self.tokens = RedisTokens(connection)

    @property
    def events(self) -> IRoomEvents | None:
        """
        The server, told of every change to its rooms.
        """
        return self._events

    @events.setter
    def events(self, events: IRoomEvents | None) -> None:
        self._events = self.presence.events = events

    # The connection's parts, by the names the tests and the server use.

    @property
    def commands(self) -> RedisClient:
        return self.connection.commands

    @property
    def reader(self) -> RedisClient:
        return self.connection.reader

    @property
    def process_id(self) -> str:
        return self.presence.process_id

    # IChatBackend

    def start(self, events: IRoomEvents) -> Deferred[None]:
        self.events = events
        self.log.info(
            "Using Redis at {address} as process {id}",
            address=str(self.connection.address),
            id=self.process_id,
        )
        # The server hears of rooms and of private messages alike.
        self.direct.start(events)  # type: ignore[arg-type]
        if IModerationEvents.providedBy(events):
            self.moderation.start(events)  # type: ignore[arg-type]
        else:
            # A server from before moderation: it could not hear an act.
            self.log.warn("The server does not hear moderation: its rules are not loaded")
        ready = self.connection.start()
        self.presence.start()
        # Nothing to read (tokens are looked up when used): ready is ready.
        self.tokens.start()
        return ready

    def create_room(self, name: str) -> Deferred[None]:
        d = self.connection.call(self._add, "rooms", name.lower(), name, "R", "r", name)
        return d.addCallback(added_or_taken, name)

    def publish(self, room: str, messages: Sequence[Message]) -> Deferred[None]:
        args: list[str | int] = [room, self.history_cap]
        for message in messages:
            args.extend(message)
        return self.connection.call(self._say, *args).addCallback(lambda _: None)

    def entered(self, room: str, user: str, timestamp: str) -> None:
        self.presence.entered(room, user, timestamp)

    def left(self, room: str, user: str, timestamp: str) -> None:
        self.presence.left(room, user, timestamp)

    def stop(self) -> Deferred[None]:
        self.tokens.close()
        d = self.presence.leave()
        return d.addCallback(lambda _: self.connection.stop())

    # The event stream

    def _messages(self, entry: Event) -> None:
        """
        Collect a batch of messages: consecutive batches of one room are
        shown together, one write per member for all of them.
        """
        self._said.setdefault(entry["r"], []).extend(_parse_messages(entry["d"]))

    def _flush(self, room: str | None) -> None:
        said = self._said
        if not said:
            return
        events = self._events
        assert events is not None
        if room is None:
            self._said = {}
            for name, messages in said.items():
                events.messages_stored(name, messages)
        elif room in said:
            events.messages_stored(room, said.pop(room))

    def _created(self, entry: Event) -> None:
        assert self._events is not None
        self._events.room_created(entry["r"])

    def _snapshot_args(self) -> list[Any]:
        assert self._events is not None
        return [self._events.history]

    def _loaded(self, reply: list[Any]) -> None:
        rooms, histories, present = reply
        events = self._events
        assert events is not None
        here: dict[str, list[str]] = {name.lower(): [] for name in rooms}
        for field in present:
            room, _, user = field.partition(" ")
            if room.lower() in here:
                here[room.lower()].append(user)
        for name, history in zip(rooms, histories, strict=True):
            recent = []
            for _, fields in reversed(history):
                entry = pairs(fields)
                recent.append(Message(entry.get("t", ""), entry.get("u", ""), entry.get("m", "")))
            events.room_loaded(name, recent, sorted(here[name.lower()], key=str.lower))
