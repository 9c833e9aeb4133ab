"""
Private messages (direct messages): conversations between two accounts,
the inbox of what arrived while an account had no connection, ignore
lists, and paging back through history.  What the server
(L{chat.service.ChatService}) asks of a backend, and what it hears back.

Every account keeps its own copy of each of its conversations: a message
is stored in the sender's copy and in the recipient's, unless the
recipient ignores the sender, when it is stored in the sender's copy
alone ("stored nowhere for you").  So what each party can read back, and
its list of conversations, is its own copy, and the sender of an ignored
message cannot tell from its history that it was ignored.

Names: the server passes names as registered (C{sender}, C{recipient});
backends key everything by the lower-case name and may answer with
lower-case names (the server spells them as registered again).

Implementations: L{chat.storage.files.direct} and
L{chat.storage.redis.direct}.  Contract: L{tests.storage.test_direct}.
"""

# test-case-name: tests.storage.test_direct

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from twisted.internet.defer import Deferred
from zope.interface import Interface

from chat.message import Message

__all__ = [
    "INBOX_CAP",
    "UNREAD_SHOWN",
    "DirectMessage",
    "IDirectEvents",
    "IDirectMessages",
    "Unread",
]

#: How many undelivered messages an account's inbox keeps; older ones are
#: dropped (and counted).
INBOX_CAP = 10_000
#: How many of them a login shows; the rest are counted in an INFO line.
UNREAD_SHOWN = 200


class DirectMessage(NamedTuple):
    """
    One private message, as stored: the same timestamp and text in both
    parties' copies and on every connection.
    """

    timestamp: str
    sender: str
    recipient: str
    text: str


class Unread(NamedTuple):
    """
    What an account missed while it had no connection.

    @ivar messages: The newest of them (at most L{UNREAD_SHOWN}), oldest
        first.
    @ivar older: How many more were missed than C{messages} holds,
        counting those the inbox dropped past L{INBOX_CAP}.
    """

    messages: list[DirectMessage]
    older: int


class IDirectEvents(Interface):
    """
    What a backend tells the server about private messages.
    """

    def direct_stored(message: DirectMessage, to_recipient: bool) -> None:
        """
        C{message} is durable.  Show it to every connection of the sender
        on this server, and, when C{to_recipient}, to every connection of
        the recipient here too.

        C{to_recipient} is false when the recipient ignores the sender, and
        when the recipient had no connection anywhere: then the message is
        in its inbox instead, for L{IDirectMessages.take_unread}.  (Shown
        once to each connection when sender and recipient are the same.)
        """


class IDirectMessages(Interface):
    """
    Private messages in a backend, with what the rooms lack: paging back
    through a room's history.

    Timestamps: a backend makes each message's timestamp later than every
    other in both copies of its conversation (and each room message's
    later than every other in its room): a stamp that is not is replaced
    by one millisecond after the latest (L{chat.message.next_timestamp}),
    also across restarts and processes.
    """

    def start(events: IDirectEvents) -> Deferred[None]:
        """
        Get ready (read what must be in memory) and tell C{events} of
        every private message stored from now on.  Called by the
        backend's own C{start}, before the server listens.
        """

    def online(user: str) -> Deferred[None]:
        """
        The first connection of C{user} on this server logged in: from now
        on, messages to C{user} are shown (C{to_recipient}) and not kept
        in its inbox.  Called before L{take_unread}.

        @return: A Deferred that fires once every server counts C{user}
            online (at once in one process; a round trip on Redis, or the
            next heartbeat if Redis cannot be reached now): a login is
            answered only then, so that a message sent to a user who has
            seen its C{OK login} is shown, not kept for later.  It does
            not fail.
        """

    def offline(user: str) -> None:
        """
        The last connection of C{user} on this server logged out.
        """

    def send(sender: str, recipient: str, timestamp: str, text: str) -> Deferred[None]:
        """
        Store a private message and have it shown
        (L{IDirectEvents.direct_stored}): in the sender's copy of the
        conversation, and in the recipient's unless the recipient ignores
        the sender; in the recipient's inbox when it is not ignored and has
        no connection anywhere (dropping the oldest past L{INBOX_CAP}).

        @param timestamp: The proposed stamp (now), made later if needed.
        @return: A Deferred that fires once the message is durable, or
            fails with L{chat.storage.common.StoreUnavailable}: then nothing
            is stored or shown.
        """

    def send_batch(batch: Sequence[tuple[str, str, str, str]]) -> list[Deferred[None]]:
        """
        L{send} each C{(sender, recipient, timestamp, text)} of a turn, in
        order: the server sends a turn's messages together so that a
        backend can store them with fewer writes (files: one per copy of
        each conversation).

        @return: One Deferred per message, as L{send} returns.
        """

    def take_unread(user: str) -> Deferred[Unread]:
        """
        Empty C{user}'s inbox: what arrived while it had no connection.
        """

    def conversations(user: str) -> Deferred[list[tuple[str, str]]]:
        """
        The conversations in C{user}'s copy: C{(partner, timestamp of the
        last message)}, the most recent first.  C{partner} may be
        lower-case.
        """

    def history(user: str, partner: str, before: str | None, count: int) -> Deferred[list[Message]]:
        """
        Up to C{count} messages of C{user}'s copy of its conversation with
        C{partner}, stamped before C{before} (or the newest, if L{None}),
        oldest first.  Without loading the whole conversation nor blocking
        the reactor.
        """

    def room_history(room: str, before: str | None, count: int) -> Deferred[list[Message]]:
        """
        The same for a room's history (C{room} as the server spells it).
        """

    def ignore(user: str, other: str, limit: int) -> Deferred[bool]:
        """
        Make C{user} ignore C{other}, durably.

        @return: A Deferred firing with C{False}, and changing nothing,
            when C{user} ignores C{limit} others already (C{other} not
            among them); with C{True} otherwise.
        """

    def unignore(user: str, other: str) -> Deferred[None]:
        """
        Stop C{user} ignoring C{other} (nothing happens if it did not).
        """

    def ignored(user: str) -> Deferred[list[str]]:
        """
        Whom C{user} ignores, sorted (possibly lower-case).
        """
