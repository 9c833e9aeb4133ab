"""
Private messages in Redis (L{chat.storage.direct.IDirectMessages}), shared
by every process pointed at it, and paging back through rooms' history.

A message is one script call (C{direct_send.lua}), as a room message is:
it stamps the message, stores the sender's copy, the recipient's copy or
its inbox as the recipient's ignore set and online count say, and
announces it (event C{D}), all at once, so that an outage leaves nothing
half-done and every process shows the message to its own connections of
both parties from the event stream.

Who is online anywhere is presence's (L{chat.storage.redis.presence}): a
user online on a process is a field C{@user} of that process's record,
counted across processes in the hash C{online}, and taken away with the
rest of a process whose heartbeat stops.

Each stream entry's ID is its stamp's milliseconds (C{stamps.lua}), so
that reading older history seeks (C{history.lua}) instead of reading a
stream from its end.
"""

# test-case-name: tests.storage.test_direct, tests.storage.test_redis_direct

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from chat.message import Message
from chat.storage.direct import (
    INBOX_CAP,
    UNREAD_SHOWN,
    DirectMessage,
    IDirectEvents,
    IDirectMessages,
    Unread,
)
from chat.storage.redis.connection import Event, RedisConnection
from chat.storage.redis.presence import RedisPresence

__all__ = ["RedisDirect"]

_STAMPS = "stamps.lua"


def _messages(reply: list[list[str]]) -> list[Message]:
    """
    C{history.lua}'s reply, newest first, as messages oldest first.
    """
    return [Message(t, u, m) for t, u, m in reversed(reply)]


@implementer(IDirectMessages)
class RedisDirect:
    """
    Conversations, inboxes and ignore lists in Redis.

    Keys (lower-case names): C{dm:<owner>:<partner>}, a stream per copy of
    a conversation; C{dms:<owner>}, its partners by the milliseconds of
    the last message; C{inbox:<user>} and C{dropped:<user>}, what arrived
    while it was online nowhere and how many the cap dropped;
    C{ignores:<user>}, a set.

    @ivar inbox_cap: How many messages an inbox keeps.
    @ivar unread_shown: How many of them L{take_unread} gives.
    @ivar slack: How many milliseconds an entry's stream ID may be later
        than its stamp: entries of room histories written before IDs were
        made from stamps have IDs from Redis's clock when they were
        added, a little after their stamp was made.  Paging back looks
        that far past a page's first stamp for them, stopping at the
        first entry whose ID is its stamp (C{history.lua}).
    """

    inbox_cap = INBOX_CAP
    unread_shown = UNREAD_SHOWN
    slack = 1000

    def __init__(
        self, connection: RedisConnection, presence: RedisPresence, history_cap: int = 100_000
    ) -> None:
        """
        @param history_cap: About how many messages each copy of a
            conversation keeps, as each room does.
        """
        self.connection = connection
        self.presence = presence
        self.history_cap = history_cap
        self.events: IDirectEvents | None = None
        self._send = connection.script(_STAMPS, "direct_send.lua")
        self._history = connection.script(_STAMPS, "history.lua")
        self._unread = connection.script("direct_unread.lua")
        self._conversations = connection.script(_STAMPS, "direct_conversations.lua")
        self._ignore = connection.script("direct_ignore.lua")
        connection.on_event("D", self._stored)

    def start(self, events: IDirectEvents) -> Deferred[None]:
        self.events = events
        return succeed(None)

    def online(self, user: str) -> Deferred[None]:
        return self.presence.online(user.lower())

    def offline(self, user: str) -> None:
        self.presence.offline(user.lower())

    def send(self, sender: str, recipient: str, timestamp: str, text: str) -> Deferred[None]:
        d = self.connection.call(
            self._send, sender, recipient, timestamp, text, self.inbox_cap, self.history_cap
        )
        return d.addCallback(lambda _: None)

    def send_batch(self, batch: Sequence[tuple[str, str, str, str]]) -> list[Deferred[None]]:
        # One script each, pipelined on the one connection: no fewer writes
        # to gain.
        return [self.send(*message) for message in batch]

    def take_unread(self, user: str) -> Deferred[Unread]:
        d = self.connection.call(self._unread, user.lower(), self.unread_shown)

        def unread(reply: list[Any]) -> Unread:
            newest, older = reply
            return Unread([DirectMessage(*fields) for fields in reversed(newest)], older)

        return d.addCallback(unread)

    def conversations(self, user: str) -> Deferred[list[tuple[str, str]]]:
        d = self.connection.call(self._conversations, user.lower())
        return d.addCallback(lambda flat: list(zip(flat[::2], flat[1::2], strict=True)))

    def history(
        self, user: str, partner: str, before: str | None, count: int
    ) -> Deferred[list[Message]]:
        return self._page(f"dm:{user.lower()}:{partner.lower()}", before, count)

    def room_history(self, room: str, before: str | None, count: int) -> Deferred[list[Message]]:
        return self._page(f"history:{room.lower()}", before, count)

    def _page(self, key: str, before: str | None, count: int) -> Deferred[list[Message]]:
        d = self.connection.call(self._history, key, before or "", count, self.slack)
        return d.addCallback(_messages)

    def ignore(self, user: str, other: str, limit: int) -> Deferred[bool]:
        d = self.connection.call(self._ignore, user.lower(), other.lower(), limit)
        return d.addCallback(bool)

    def unignore(self, user: str, other: str) -> Deferred[None]:
        key = self.connection.key(f"ignores:{user.lower()}")
        d = self.connection.execute("SREM", key, other.lower())
        return d.addCallback(lambda _: None)

    def ignored(self, user: str) -> Deferred[list[str]]:
        d = self.connection.execute("SMEMBERS", self.connection.key(f"ignores:{user.lower()}"))
        return d.addCallback(sorted)

    # The event stream

    def _stored(self, entry: Event) -> None:
        assert self.events is not None
        message = DirectMessage(entry["t"], entry["u"], entry["p"], entry["m"])
        self.events.direct_stored(message, entry["x"] == "1")
