"""
The seams of chatroom: the avatar (L{IChatUser}, what a client can do),
the mind (L{IChatClient}, what the domain tells a connection, as events)
with its encoder (L{IEventEncoder}), and where storage and accounts plug in.

Storage is by feature, in L{chat.storage}: L{chat.storage.rooms} (rooms,
history, presence: L{IChatBackend}, L{IRoomEvents}) and
L{chat.storage.accounts} (L{IAccountStore}), each with a file and a Redis
implementation.  They are named here too, for the code that imports them
from here.
"""

# test-case-name: tests.storage.test_rooms, tests.storage.test_accounts

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import Attribute, Interface

from chat.errors import ErrorCode
from chat.message import Message
from chat.storage.accounts import IAccountStore
from chat.storage.common import NameTaken, StoreUnavailable
from chat.storage.direct import DirectMessage
from chat.storage.files.rooms import IChatStore
from chat.storage.moderation import Act
from chat.storage.rooms import IChatBackend, IRoomEvents

__all__ = [
    "IAccountStore",
    "IChatBackend",
    "IChatClient",
    "IChatStore",
    "IChatUser",
    "IEventEncoder",
    "IRoomEvents",
    "NameTaken",
    "StoreUnavailable",
]


class IChatUser(Interface):
    """
    The avatar a logged-in connection gets from the realm: every action a
    client can take.  A front door parses its input into a command and
    calls one of these; each does what was asked or raises
    L{chat.errors.ChatError} with what the client is to be told.
    """

    name = Attribute("The user's name, spelled as registered.")
    room = Attribute("The room the user is in, or None in the lobby.")

    def create(name: str) -> object:
        """
        Create a room and enter it.

        @return: A Deferred firing with the room.
        """

    def join(name: str) -> object:
        """
        Enter a room, leaving the one the user was in; returns the room.
        """

    def leave() -> object:
        """
        Go back to the lobby; returns the room left.
        """

    def say(text: str) -> None:
        """
        Post a message to the room.
        """

    def who() -> list[str]:
        """
        The names of the users in the room.
        """

    def rooms() -> list[tuple[str, int]]:
        """
        Every room and how many users are in it, sorted by name.
        """

    def logout() -> None:
        """
        Leave the room; the realm's logout.
        """


class IEventEncoder(Interface):
    """
    How one kind of front door (the line protocol, say) puts a room's
    events into bytes.  One encoder serves every connection of its kind,
    so that a room's event is encoded once per kind, however many members
    it has.
    """

    def messages(room: str, messages: Sequence[Message]) -> bytes:
        """
        A batch of messages, C{(timestamp, user, text)}, stored in this order.
        """

    def joined(room: str, timestamp: str, user: str) -> bytes:
        """
        A user entered the room.
        """

    def parted(room: str, timestamp: str, user: str) -> bytes:
        """
        A user left the room.
        """

    def direct(viewer: str, message: DirectMessage) -> bytes:
        """
        A private message, as the user whose lower-case name is C{viewer}
        (its sender, its recipient, or both) sees it.
        """

    def act(act: Act) -> bytes:
        """
        A moderation or admin act, as a room (or everyone) is shown it.
        """


class IChatClient(Interface):
    """
    The mind: what the domain tells a connection.  Events for a room come
    as bytes its L{encoder} made (once for every connection of the kind);
    events for this connection alone come as calls.
    """

    encoder = Attribute("The IEventEncoder of this kind of connection.")
    closing = Attribute("Whether the connection is closing: nothing more is sent to it.")

    def deliver(data: bytes) -> None:
        """
        Write what the encoder made of a room's events, in the room's order.
        """

    def error(code: ErrorCode, text: str) -> None:
        """
        Something this connection asked for failed.
        """

    def shutdown(reason: str, reconnect: int = 0) -> object:
        """
        Say goodbye and close; when C{reconnect} is given (a restart), say
        first in how many seconds the client may come back.

        @return: A Deferred that fires once the connection is gone.
        """
